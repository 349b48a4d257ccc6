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

export function decrypt(key: Buffer, envelope: Buffer, context: string): string {
  if (envelope.length < HEADER || envelope[0] !== VERSION) {
    throw new DecryptionError('stored credentials are not in a format this version of dirsync can read');
  }
  if (!keyId(key).equals(envelope.subarray(1, 5))) {
    throw new DecryptionError(
      'stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured',
    );
  }
  const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(5, 17));
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(envelope.subarray(17, HEADER));
  try {
    return Buffer.concat([decipher.update(envelope.subarray(HEADER)), decipher.final()]).toString('utf8');
  } catch {
    throw new DecryptionError('stored credentials failed their integrity check (tampered or copied from another integration)');
  }
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
