import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const load = (env: Record<string, string>) => loadConfig(env, '');

describe('loadConfig', () => {
  it('defaults to the local services', () => {
    const config = load({});
    expect(config).toMatchObject({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/dirsync',
      redisUrl: 'redis://127.0.0.1:6379',
      port: 3000,
      allowHttp: false,
      logLevel: 'info',
      encryptionKey: undefined,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('accepts a key as `openssl rand -base64 32` prints it', () => {
    const key = randomBytes(32);
    expect(load({ DIRSYNC_ENCRYPTION_KEY: key.toString('base64') }).encryptionKey).toEqual(key);
  });

  it.each([
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL is not a valid postgres:// URL.'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL is not a valid redis:// URL.'],
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT must be 1-65535.'],
    [{ DIRSYNC_ENCRYPTION_KEY: 'c2hvcnQ=' }, 'DIRSYNC_ENCRYPTION_KEY must be 32 random bytes in base64'],
    [{ DIRSYNC_ALLOW_HTTP: 'maybe' }, 'DIRSYNC_ALLOW_HTTP must be true or false.'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent.'],
    [{ DIRSYNC_ADMIN_TOKEN: 'short' }, 'DIRSYNC_ADMIN_TOKEN must be at least 16 characters.'],
    [{ HOST: 'example.com' }, 'HOST must be an IP address to listen on'],
    [{ HOST: '0.0.0.0:3000' }, 'HOST must be an IP address to listen on'],
    [{ HOST: '' }, 'HOST must be an IP address to listen on'],
  ])('names the bad variable: %o', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });

  it('listens on loopback unless HOST names another address', () => {
    expect(load({}).host).toBe('127.0.0.1');
    expect(load({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(load({ HOST: '::' }).host).toBe('::');
  });

  it('reports every problem at once', () => {
    expect(() => load({ PORT: '0', LOG_LEVEL: 'x' })).toThrow(/PORT .*; LOG_LEVEL /);
  });
});
