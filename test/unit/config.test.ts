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
      allowPrivateNetwork: false,
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
    [{ DIRSYNC_ALLOW_PRIVATE_NETWORK: 'maybe' }, 'DIRSYNC_ALLOW_PRIVATE_NETWORK must be true or false.'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent.'],
    [{ DIRSYNC_ADMIN_TOKEN: 'short' }, 'DIRSYNC_ADMIN_TOKEN must be at least 16 characters.'],
    [{ HOST: 'example.com' }, 'HOST must be an IP address to listen on'],
    [{ HOST: '0.0.0.0:3000' }, 'HOST must be an IP address to listen on'],
    [{ HOST: '' }, 'HOST must be an IP address to listen on'],
  ])('names the bad variable: %o', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });

  it('keeps runs, change logs, events and deliveries 90 days unless DIRSYNC_RETENTION says otherwise', () => {
    expect(load({}).retentionMs).toBe(90 * 86_400_000);
    expect(load({ DIRSYNC_RETENTION: '30d' }).retentionMs).toBe(30 * 86_400_000);
    expect(load({ DIRSYNC_RETENTION: '3650d' }).retentionMs).toBe(3_650 * 86_400_000);
    expect(load({ DIRSYNC_RETENTION: '72h' }).retentionMs).toBe(3 * 86_400_000);
  });

  it.each(['90', 'ninety days', '2d', '1h', '3651d', '99999999999999999999d', '0x10d', '-5d'])('refuses DIRSYNC_RETENTION=%s in one sentence naming the bounds', (value) => {
    let message = '';
    try {
      load({ DIRSYNC_RETENTION: value });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toBe(`DIRSYNC_RETENTION must be a duration from 3d to 3650d, such as 30d or 90d, not "${value}".`);
  });

  it('lets runs use half of each IdP rate-limit bucket unless DIRSYNC_RATE_LIMIT_SHARE says otherwise', () => {
    expect(load({}).rateLimitShare).toBe(0.5);
    expect(load({ DIRSYNC_RATE_LIMIT_SHARE: '25' }).rateLimitShare).toBe(0.25);
    expect(load({ DIRSYNC_RATE_LIMIT_SHARE: '100%' }).rateLimitShare).toBe(1);
    for (const bad of ['0', '101', 'half', '-5', '0.5x']) {
      expect(() => load({ DIRSYNC_RATE_LIMIT_SHARE: bad })).toThrow(`DIRSYNC_RATE_LIMIT_SHARE must be a percentage from 1 to 100, such as 50, not "${bad}".`);
    }
  });

  it('refuses the replaced DIRSYNC_EVENT_RETENTION, saying what took its place', () => {
    expect(() => load({ DIRSYNC_EVENT_RETENTION: '30d' })).toThrow(
      'DIRSYNC_EVENT_RETENTION was replaced by DIRSYNC_RETENTION (one horizon for runs, change logs, events and deliveries): rename it.',
    );
  });

  it('allows private networks only when told to', () => {
    expect(load({ DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true' }).allowPrivateNetwork).toBe(true);
    expect(load({ DIRSYNC_ALLOW_PRIVATE_NETWORK: 'false' }).allowPrivateNetwork).toBe(false);
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
