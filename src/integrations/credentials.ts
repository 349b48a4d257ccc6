import { decrypt, encrypt } from '../crypto.js';

/** What an integration authenticates with. Stored encrypted; never logged or returned. */
export type Credentials = { readonly kind: 'token'; readonly token: string };

export function sealCredentials(key: Buffer, integrationId: string, credentials: Credentials): Buffer {
  return encrypt(key, JSON.stringify(credentials), integrationId);
}

export function openCredentials(key: Buffer, integrationId: string, envelope: Buffer): Credentials {
  return JSON.parse(decrypt(key, envelope, integrationId)) as Credentials;
}
