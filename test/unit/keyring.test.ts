import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, requireKeyring } from '../../src/config.js';
import { DecryptionError, decrypt, encrypt, isUnderCurrentKey } from '../../src/crypto.js';
import { openCredentials, sealCredentials } from '../../src/integrations/credentials.js';

const oldKey = randomBytes(32);
const olderKey = randomBytes(32);
const newKey = randomBytes(32);
const b64 = (key: Buffer) => key.toString('base64');
const load = (env: Record<string, string>) => loadConfig(env, '');
const messageOf = (env: Record<string, string>) => {
  try {
    load(env);
    return '';
  } catch (error) {
    return (error as Error).message;
  }
};

describe('keyring: decrypting mid-rotation', () => {
  it('opens credentials sealed under a previous key, picked by the envelope key id', () => {
    const keys = { current: newKey, previous: [olderKey, oldKey] };
    const underOld = sealCredentials(oldKey, 'integration-1', { kind: 'token', token: 'tok-old' });
    const underOlder = encrypt(olderKey, '{"kind":"token","token":"tok-older"}', 'integration-2');
    expect(openCredentials(keys, 'integration-1', underOld)).toEqual({ kind: 'token', token: 'tok-old' });
    expect(decrypt(keys, underOlder, 'integration-2')).toBe('{"kind":"token","token":"tok-older"}');
    expect(isUnderCurrentKey(keys, underOld)).toBe(false);
  });

  it('opens credentials sealed under the current key, and knows they are current', () => {
    const keys = { current: newKey, previous: [oldKey] };
    const sealed = sealCredentials(newKey, 'integration-1', { kind: 'token', token: 'tok-new' });
    expect(openCredentials(keys, 'integration-1', sealed)).toEqual({ kind: 'token', token: 'tok-new' });
    expect(isUnderCurrentKey(keys, sealed)).toBe(true);
  });

  it('reads what a new key sealed while that key is only listed as previous (staged rollout)', () => {
    const sealed = sealCredentials(newKey, 'integration-1', { kind: 'token', token: 'tok-new' });
    expect(openCredentials({ current: oldKey, previous: [newKey] }, 'integration-1', sealed)).toEqual({ kind: 'token', token: 'tok-new' });
  });

  it('names a key that is neither the current nor a previous one', () => {
    const sealed = encrypt(randomBytes(32), 'x', 'integration-1');
    expect(() => decrypt({ current: newKey, previous: [oldKey] }, sealed, 'integration-1')).toThrow(
      new DecryptionError(
        'stored credentials were encrypted with a key that is neither DIRSYNC_ENCRYPTION_KEY nor one of DIRSYNC_ENCRYPTION_KEY_PREVIOUS: add that key to DIRSYNC_ENCRYPTION_KEY_PREVIOUS, or enter the credentials again with `dirsync integration update`',
      ),
    );
  });

  it('without previous keys, points a changed key at DIRSYNC_ENCRYPTION_KEY_PREVIOUS', () => {
    const sealed = encrypt(oldKey, 'x', 'integration-1');
    expect(() => decrypt({ current: newKey, previous: [] }, sealed, 'integration-1')).toThrow(
      /^stored credentials were encrypted with a different DIRSYNC_ENCRYPTION_KEY than the one configured: if the key was changed, put the old one in DIRSYNC_ENCRYPTION_KEY_PREVIOUS$/,
    );
  });

  it('still refuses credentials copied from another integration under a previous key', () => {
    const sealed = encrypt(oldKey, 'x', 'integration-1');
    expect(() => decrypt({ current: newKey, previous: [oldKey] }, sealed, 'integration-2')).toThrow(/integrity check/);
  });
});

describe('keyring: DIRSYNC_ENCRYPTION_KEY_PREVIOUS', () => {
  it('is empty when unset', () => {
    const config = load({ DIRSYNC_ENCRYPTION_KEY: b64(newKey) });
    expect(config.previousEncryptionKeys).toEqual([]);
    expect(requireKeyring(config)).toEqual({ current: newKey, previous: [] });
  });

  it('takes one key, or several separated by commas (spaces and a trailing comma allowed)', () => {
    expect(load({ DIRSYNC_ENCRYPTION_KEY: b64(newKey), DIRSYNC_ENCRYPTION_KEY_PREVIOUS: b64(oldKey) }).previousEncryptionKeys).toEqual([oldKey]);
    const config = load({ DIRSYNC_ENCRYPTION_KEY: b64(newKey), DIRSYNC_ENCRYPTION_KEY_PREVIOUS: ` ${b64(oldKey)} , ${b64(olderKey)},` });
    expect(requireKeyring(config)).toEqual({ current: newKey, previous: [oldKey, olderKey] });
    expect(Object.isFrozen(config.previousEncryptionKeys)).toBe(true);
  });

  it.each([
    ['a short key', 'c2hvcnQ=', 'DIRSYNC_ENCRYPTION_KEY_PREVIOUS must be 32 random bytes in base64, as `openssl rand -base64 32` prints (several old keys: separate them with commas).'],
    ['two keys separated by a space', `${b64(oldKey)} ${b64(olderKey)}`, 'DIRSYNC_ENCRYPTION_KEY_PREVIOUS must be 32 random bytes in base64'],
    [
      'a list with one bad key',
      `${b64(oldKey)},not-a-key,${b64(olderKey)}`,
      'DIRSYNC_ENCRYPTION_KEY_PREVIOUS has 3 comma-separated keys and key 2 is not 32 random bytes in base64, as `openssl rand -base64 32` prints.',
    ],
    ['a list of bad keys', 'x,y,z', 'DIRSYNC_ENCRYPTION_KEY_PREVIOUS has 3 comma-separated keys and keys 1, 2 and 3 are not 32 random bytes in base64'],
  ])('names the variable and the bad key, never its value: %s', (_, previous, message) => {
    const env = { DIRSYNC_ENCRYPTION_KEY: b64(newKey), DIRSYNC_ENCRYPTION_KEY_PREVIOUS: previous };
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
    const said = messageOf(env);
    expect(said).not.toContain(b64(oldKey));
    expect(said).not.toContain('not-a-key');
  });

  it('does not stand in for DIRSYNC_ENCRYPTION_KEY', () => {
    const config = load({ DIRSYNC_ENCRYPTION_KEY_PREVIOUS: b64(oldKey) });
    expect(() => requireKeyring(config)).toThrow(/^DIRSYNC_ENCRYPTION_KEY is not set/);
  });
});
