import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// Envelope: version(1) | key id(4) | iv(12) | tag(16) | ciphertext. The key id lets a wrong
// key be named as such instead of surfacing as a generic authentication failure.
const VERSION = 1;
const HEADER = 1 + 4 + 12 + 16;

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

export function keyId(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 4);
}

/**
 * Encrypts with AES-256-GCM. `context` (the integration id) is bound as associated data,
 * so a ciphertext copied onto another row does not decrypt.
 */
export function encrypt(key: Buffer, plaintext: string, context: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), keyId(key), iv, cipher.getAuthTag(), body]);
}

/**
 * The key that encrypts (DIRSYNC_ENCRYPTION_KEY) and older keys that still decrypt while a
 * rotation is under way (DIRSYNC_ENCRYPTION_KEY_PREVIOUS).
 *
 * @example
 * const keys: Keyring = { current: newKey, previous: [oldKey] };
 * decrypt(keys, sealedUnderOldKey, integrationId); // reads
 * isUnderCurrentKey(keys, sealedUnderOldKey); // false: `dirsync reencrypt` re-seals it
 */
export interface Keyring {
  readonly current: Buffer;
  readonly previous: readonly Buffer[];
}

/** Whether the envelope names the current key, so re-encrypting it would change nothing. */
export function isUnderCurrentKey(keys: Keyring, envelope: Buffer): boolean {
  return envelope.length >= HEADER && envelope[0] === VERSION && keyId(keys.current).equals(envelope.subarray(1, 5));
}

/** Decrypts with the key of the keyring that the envelope's key id names. */
export function decrypt(keys: Keyring, envelope: Buffer, context: string): string {
  if (envelope.length < HEADER || envelope[0] !== VERSION) {
    throw new DecryptionError('stored credentials are not in a format this version of dirsync can read');
  }
  const id = envelope.subarray(1, 5);
  const candidates = [keys.current, ...keys.previous].filter((key) => keyId(key).equals(id));
  if (candidates.length === 0) {
    throw new DecryptionError(
      keys.previous.length === 0
        ? 'stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured: if the key was changed, put the old one in DIRSYNC_ENCRYPTION_KEY_PREVIOUS'
        : 'stored credentials were encrypted with a key that is neither DIRSYNC_ENCRYPTION_KEY nor one of DIRSYNC_ENCRYPTION_KEY_PREVIOUS: add that key to DIRSYNC_ENCRYPTION_KEY_PREVIOUS, or enter the credentials again with `dirsync integration update`',
    );
  }
  // Two keys sharing a 4-byte id is unlikely but possible: the authentication tag tells them apart.
  for (const key of candidates) {
    const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(5, 17));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(envelope.subarray(17, HEADER));
    try {
      return Buffer.concat([decipher.update(envelope.subarray(HEADER)), decipher.final()]).toString('utf8');
    } catch {
      // Try the next key with this id, if any.
    }
  }
  throw new DecryptionError('stored credentials failed their integrity check (tampered or copied from another integration)');
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function secretMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Whether a presented secret matches the current secret's hash or, during a rotation's grace
 * period, the previous one's. Both are compared in constant time, whichever matches.
 */
export function secretMatchesEither(presented: string, hashes: { secretHash: string; previousSecretHash: string | null }): boolean {
  const current = secretMatches(presented, hashes.secretHash);
  const previous = hashes.previousSecretHash !== null && secretMatches(presented, hashes.previousSecretHash);
  return current || previous;
}
