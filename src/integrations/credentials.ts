import { type Keyring, decrypt, encrypt } from '../crypto.js';

/** What an integration authenticates with. Stored encrypted; never logged or returned. */
export type Credentials = TokenCredentials | OktaPrivateKeyCredentials;

/** An Okta SSWS API token or an authentik API token. */
export interface TokenCredentials {
  readonly kind: 'token';
  readonly token: string;
}

/** An Okta OAuth 2.0 service app: client credentials signed with its private key. */
export interface OktaPrivateKeyCredentials {
  readonly kind: 'okta-private-key';
  readonly clientId: string;
  /** The private key as JWK JSON text (see parseOktaPrivateKey). */
  readonly privateKey: string;
  readonly keyId: string | null;
}

export type { CredentialKind } from '../db/schema.js';

export function sealCredentials(key: Buffer, integrationId: string, credentials: Credentials): Buffer {
  return encrypt(key, JSON.stringify(credentials), integrationId);
}

/** Opens credentials sealed under the current key or, mid-rotation, under a previous one. */
export function openCredentials(keys: Keyring, integrationId: string, envelope: Buffer): Credentials {
  return JSON.parse(decrypt(keys, envelope, integrationId)) as Credentials;
}

/** The secret strings in credentials: what must never appear in an error, a log or a response. */
function secretsOf(credentials: Credentials): string[] {
  if (credentials.kind === 'token') return [credentials.token];
  const jwk = JSON.parse(credentials.privateKey) as Record<string, unknown>;
  // The private members of an RSA JWK; the public ones (n, e) may be shown.
  const members = ['d', 'p', 'q', 'dp', 'dq', 'qi'].map((name) => jwk[name]).filter((v): v is string => typeof v === 'string');
  return [credentials.privateKey, ...members];
}

/** `text` with every secret of the credentials replaced by [redacted]. */
export function redactCredentials(text: string, credentials: Credentials): string {
  // A secret this short is not a real one, and replacing it would garble the text.
  return secretsOf(credentials)
    .filter((secret) => secret.length >= 8)
    .reduce((t, secret) => t.split(secret).join('[redacted]'), text);
}

/**
 * Removes secrets from an error's message and stack, in place. IdP errors are quoted in run
 * errors and logs, and an IdP or a proxy in front of it may echo the Authorization header back.
 */
export function scrubCredentials<T>(error: T, credentials: Credentials): T {
  if (!(error instanceof Error)) return error;
  error.message = redactCredentials(error.message, credentials);
  if (error.stack) error.stack = redactCredentials(error.stack, credentials);
  return error;
}
