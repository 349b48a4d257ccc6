import { type Keyring, decrypt, encrypt } from '../crypto.js';

/** What an integration authenticates with. Stored encrypted; never logged or returned. */
export type Credentials = { readonly kind: 'token'; readonly token: string };

export function sealCredentials(key: Buffer, integrationId: string, credentials: Credentials): Buffer {
  return encrypt(key, JSON.stringify(credentials), integrationId);
}

/** Opens credentials sealed under the current key or, mid-rotation, under a previous one. */
export function openCredentials(keys: Keyring, integrationId: string, envelope: Buffer): Credentials {
  return JSON.parse(decrypt(keys, envelope, integrationId)) as Credentials;
}

/**
 * Removes the token from an error's message and stack, in place. IdP errors are quoted in run
 * errors and logs, and an IdP or a proxy in front of it may echo the Authorization header back.
 */
export function scrubCredentials<T>(error: T, credentials: Credentials): T {
  // A token this short is not a real one, and replacing it would garble the message.
  if (!(error instanceof Error) || credentials.token.length < 8) return error;
  const scrub = (text: string) => text.split(credentials.token).join('[redacted]');
  error.message = scrub(error.message);
  if (error.stack) error.stack = scrub(error.stack);
  return error;
}
