import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, decrypt, encrypt, hashSecret, secretMatches } from '../../src/crypto.js';

const key = randomBytes(32);
const only = (k: Buffer) => ({ current: k, previous: [] });

describe('credential encryption', () => {
  it('round-trips and never stores the plaintext', () => {
    const sealed = encrypt(key, '{"token":"s3cr3t"}', 'integration-1');
    expect(sealed.includes(Buffer.from('s3cr3t'))).toBe(false);
    expect(decrypt(only(key), sealed, 'integration-1')).toBe('{"token":"s3cr3t"}');
  });

  it('names a wrong key as such', () => {
    const sealed = encrypt(key, 'x', 'integration-1');
    expect(() => decrypt(only(randomBytes(32)), sealed, 'integration-1')).toThrow(
      new DecryptionError(
        'stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured: if the key was changed, put the old one in DIRSYNC_ENCRYPTION_KEY_PREVIOUS',
      ),
    );
  });

  it('refuses a ciphertext copied onto another integration, or tampered with', () => {
    const sealed = encrypt(key, 'x', 'integration-1');
    expect(() => decrypt(only(key), sealed, 'integration-2')).toThrow(/integrity check/);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => decrypt(only(key), tampered, 'integration-1')).toThrow(/integrity check/);
  });

  it('compares webhook secrets against their hash', () => {
    const hash = hashSecret('abc');
    expect(secretMatches('abc', hash)).toBe(true);
    expect(secretMatches('abd', hash)).toBe(false);
  });
});
