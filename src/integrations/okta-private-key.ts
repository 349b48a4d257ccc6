import { type JsonWebKey, type KeyObject, createPrivateKey } from 'node:crypto';
import { UserError } from '../errors.js';

/**
 * An Okta service app's private key, normalised to a JWK (JSON text) with its `kid` and `alg`,
 * the form the Okta SDK signs client assertions with. Okta's Admin Console hands out keys as
 * a JWK or as PEM; both are accepted, and any key that cannot sign is refused here, at
 * `integration create`, rather than at the first scheduled run.
 */
export function parseOktaPrivateKey(text: string, keyId: string | undefined, source = '--okta-private-key-file'): { jwk: string; keyId: string | null } {
  const trimmed = text.trim();
  if (trimmed === '') throw new UserError(`${source} is empty: give the service app's private key (PEM or JWK)`);
  let key: KeyObject;
  let givenKid: string | undefined;
  try {
    if (trimmed.startsWith('{')) {
      let parsed: JsonWebKey & { keys?: JsonWebKey[]; kid?: string };
      try {
        parsed = JSON.parse(trimmed) as typeof parsed;
      } catch {
        // Not the parser's message: it quotes the text around the mistake, which is key material.
        throw new UserError(`${source} starts like a JWK but is not valid JSON`);
      }
      // The Admin Console's download is sometimes a whole key set with the one key in it.
      if (Array.isArray(parsed.keys) && parsed.keys.length !== 1) {
        throw new UserError(`${source} holds a key set of ${parsed.keys.length} keys: give the one private key of the service app`);
      }
      const jwk = Array.isArray(parsed.keys) ? (parsed.keys[0] as JsonWebKey & { kid?: string }) : parsed;
      if (jwk.d === undefined) throw new UserError(`${source} holds a public key: give the private key (the JWK with a "d" member)`);
      givenKid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
      key = createPrivateKey({ key: jwk, format: 'jwk' });
    } else {
      if (/-----BEGIN (RSA )?PUBLIC KEY-----|-----BEGIN CERTIFICATE-----/.test(trimmed)) {
        throw new UserError(`${source} holds a public key or certificate: give the private key`);
      }
      if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(trimmed)) {
        throw new UserError(`${source} holds a passphrase-protected key: export it without a passphrase (dirsync stores it encrypted)`);
      }
      key = createPrivateKey({ key: trimmed, format: 'pem' });
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${source} is not a private key dirsync can read (PEM or JWK): ${(error as Error).message}`);
  }
  const alg = algorithmOf(key, source);
  const kid = keyId ?? givenKid ?? null;
  if (kid !== null && !/^[\x21-\x7e]{1,200}$/.test(kid)) {
    const from = keyId === undefined ? `the "kid" in ${source}` : '--okta-key-id';
    throw new UserError(`${from} "${kid}" is not a key id (printable characters, no spaces)`);
  }
  const jwk = { ...key.export({ format: 'jwk' }), alg, ...(kid === null ? {} : { kid }) };
  return { jwk: JSON.stringify(jwk), keyId: kid };
}

/**
 * The signing algorithm. Only RSA: Okta also takes EC keys, but the Okta SDK signs the DPoP
 * proof it sends with every token request as RS256, so an EC key cannot get a token.
 */
function algorithmOf(key: KeyObject, source: string): string {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new UserError(`${source} is an ${(key.asymmetricKeyType ?? 'unknown').toUpperCase()} key: dirsync needs an RSA key (2048 bits or more) for the Okta service app`);
  }
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new UserError(`${source} is an RSA key shorter than 2048 bits, which Okta refuses`);
  return 'RS256';
}
