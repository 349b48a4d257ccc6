import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { hashSecret, secretMatchesEither } from '../../src/crypto.js';
import { parseGrace } from '../../src/integrations/webhook-secret-grace.js';

describe('parseGrace', () => {
  it.each([
    ['0', 0],
    ['00', 0],
    [' 0 ', 0],
    ['0m', 0],
    ['90s', 90_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['30d', 2_592_000_000],
  ])('reads %j', (text, ms) => {
    expect(parseGrace(text)).toBe(ms);
  });

  it.each(['', 'soon', '1', '-1h', '1.5h', '1w', 'h', '31d', '720h1s', '99999999999999999999d'])('refuses %j', (text) => {
    expect(parseGrace(text)).toBeUndefined();
  });
});

describe('DIRSYNC_WEBHOOK_SECRET_GRACE', () => {
  const load = (env: Record<string, string>) => loadConfig(env, '');

  it('defaults to 24 hours and takes 0 or a duration', () => {
    expect(load({}).webhookSecretGraceMs).toBe(86_400_000);
    expect(load({ DIRSYNC_WEBHOOK_SECRET_GRACE: '0' }).webhookSecretGraceMs).toBe(0);
    expect(load({ DIRSYNC_WEBHOOK_SECRET_GRACE: '2h' }).webhookSecretGraceMs).toBe(7_200_000);
  });

  it.each(['later', '', '45d'])('refuses %j, naming the variable in one sentence', (value) => {
    expect(() => load({ DIRSYNC_WEBHOOK_SECRET_GRACE: value })).toThrow(ConfigError);
    expect(() => load({ DIRSYNC_WEBHOOK_SECRET_GRACE: value })).toThrow(
      `DIRSYNC_WEBHOOK_SECRET_GRACE must be 0 or a duration of at most 30d, such as 15m, 1h or 7d, not "${value}".`,
    );
  });
});

describe('secretMatchesEither', () => {
  const current = hashSecret('new-secret');
  const previous = hashSecret('old-secret');

  it('matches the current secret, and the previous one only when it is given', () => {
    expect(secretMatchesEither('new-secret', { secretHash: current, previousSecretHash: previous })).toBe(true);
    expect(secretMatchesEither('old-secret', { secretHash: current, previousSecretHash: previous })).toBe(true);
    expect(secretMatchesEither('new-secret', { secretHash: current, previousSecretHash: null })).toBe(true);
    expect(secretMatchesEither('old-secret', { secretHash: current, previousSecretHash: null })).toBe(false);
    expect(secretMatchesEither('other', { secretHash: current, previousSecretHash: previous })).toBe(false);
    expect(secretMatchesEither('', { secretHash: current, previousSecretHash: previous })).toBe(false);
  });
});
