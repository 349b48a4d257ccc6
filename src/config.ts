import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import dotenv from 'dotenv';
import { z } from 'zod';
import type { Keyring } from './crypto.js';
import { parseDuration } from './integrations/schedule.js';
import { GRACE_RULE, parseGrace } from './integrations/webhook-secret-grace.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  /** The address the HTTP server listens on: 127.0.0.1 unless HOST says otherwise (0.0.0.0 in a container). */
  readonly host: string;
  readonly adminToken: string | undefined;
  /** 32 bytes; undefined until a command that touches credentials asks for it. */
  readonly encryptionKey: Buffer | undefined;
  /** Older keys that still decrypt during a key rotation; never used to encrypt. */
  readonly previousEncryptionKeys: readonly Buffer[];
  readonly allowHttp: boolean;
  /** Outbound requests may go to loopback, private and link-local addresses (src/egress.ts). */
  readonly allowPrivateNetwork: boolean;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** BullMQ queue name; tests give each run its own. */
  readonly queueName: string;
  /** Public base URL that webhook URLs are built on. */
  readonly publicUrl: string;
  /** How long a rotated webhook secret keeps working when the rotation names no grace period. */
  readonly webhookSecretGraceMs: number;
  /**
   * DIRSYNC_RETENTION, in ms: how long finished runs with their change logs, events, webhook
   * deliveries and endpoint deliveries are kept (src/runs/retention.ts).
   */
  readonly retentionMs: number;
  /**
   * DIRSYNC_RATE_LIMIT_SHARE as a fraction: the share of each of the IdP's rate-limit buckets
   * (Okta's X-Rate-Limit-* headers, per endpoint family) an integration's runs use before they
   * wait for the bucket's reset; the rest is left to the customer's other clients. Default 0.5.
   */
  readonly rateLimitShare: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const boolish = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', ''].includes(v), 'must be true or false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * DIRSYNC_RETENTION's bounds. At least 3 days: an event must outlive the 3 days its delivery
 * to an endpoint is retried (SPEC). At most ten years.
 */
export const MIN_RETENTION_MS = 3 * 86_400_000;
export const MAX_RETENTION_MS = 3_650 * 86_400_000;

const KEY_FORMAT = 'must be 32 random bytes in base64, as `openssl rand -base64 32` prints';

/** A 32-byte key from its base64 text, or undefined if the text is not exactly that. */
function decodeKey(text: string): Buffer | undefined {
  const key = Buffer.from(text, 'base64');
  return key.length === 32 && key.toString('base64') === text.trim() ? key : undefined;
}

const schema = z.object({
  DATABASE_URL: z
    .string()
    .default('postgres://postgres@127.0.0.1:5432/dirsync')
    .refine((v) => /^postgres(ql)?:\/\//.test(v) && URL.canParse(v), 'is not a valid postgres:// URL'),
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .refine((v) => /^rediss?:\/\//.test(v) && URL.canParse(v), 'is not a valid redis:// URL'),
  PORT: z.coerce.number({ message: 'must be a port number (1-65535)' }).int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535').default(3000),
  // Loopback by default, as docker-compose.yml publishes Postgres and Redis: the console and the
  // admin API are reachable from elsewhere only when the operator says so (HOST=0.0.0.0 in a container).
  HOST: z
    .string()
    .default('127.0.0.1')
    .refine((v) => isIP(v) !== 0, 'must be an IP address to listen on, such as 127.0.0.1 (this machine only), 0.0.0.0 (every IPv4 interface) or :: (every interface)'),
  DIRSYNC_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  DIRSYNC_ENCRYPTION_KEY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const key = decodeKey(v);
      if (!key) {
        ctx.addIssue({ code: 'custom', message: KEY_FORMAT });
        return z.NEVER;
      }
      return key;
    }),
  // Comma-separated; a bad entry is named by its position, never by its value.
  DIRSYNC_ENCRYPTION_KEY_PREVIOUS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const entries = (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
      const keys = entries.map(decodeKey);
      const bad = keys.flatMap((key, i) => (key ? [] : [i + 1]));
      if (bad.length > 0) {
        const which = bad.length === 1 ? `key ${bad[0]} is` : `keys ${bad.slice(0, -1).join(', ')} and ${bad.at(-1)} are`;
        const message =
          entries.length === 1
            ? `${KEY_FORMAT} (several old keys: separate them with commas)`
            : `has ${entries.length} comma-separated keys and ${which} not 32 random bytes in base64, as \`openssl rand -base64 32\` prints`;
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return keys.filter((key): key is Buffer => key !== undefined);
    }),
  DIRSYNC_ALLOW_HTTP: boolish.default(false),
  DIRSYNC_ALLOW_PRIVATE_NETWORK: boolish.default(false),
  LOG_LEVEL: z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  DIRSYNC_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, - and _')
    .default('dirsync'),
  DIRSYNC_PUBLIC_URL: z
    .string()
    .optional()
    .refine((v) => v === undefined || URL.canParse(v), 'is not a valid URL'),
  DIRSYNC_WEBHOOK_SECRET_GRACE: z
    .string()
    .default('24h')
    .transform((v, ctx) => {
      const ms = parseGrace(v);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `${GRACE_RULE}, not "${v}"` });
        return z.NEVER;
      }
      return ms;
    }),
  // One horizon for runs, their change logs and events, so a kept run always has its whole log.
  DIRSYNC_RETENTION: z
    .string()
    .default('90d')
    .transform((v, ctx) => {
      let ms: number | undefined;
      try {
        ms = parseDuration(v);
      } catch {
        ms = undefined;
      }
      if (ms === undefined || ms < MIN_RETENTION_MS || ms > MAX_RETENTION_MS) {
        ctx.addIssue({ code: 'custom', message: `must be a duration from 3d to 3650d, such as 30d or 90d, not "${v.slice(0, 40)}"` });
        return z.NEVER;
      }
      return ms;
    }),
  DIRSYNC_RATE_LIMIT_SHARE: z
    .string()
    .default('50')
    .transform((v, ctx) => {
      const percent = /^\s*\d+(\.\d+)?\s*%?\s*$/.test(v) ? Number.parseFloat(v) : NaN;
      if (!(percent >= 1 && percent <= 100)) {
        ctx.addIssue({ code: 'custom', message: `must be a percentage from 1 to 100, such as 50, not "${v.slice(0, 40)}"` });
        return z.NEVER;
      }
      return percent / 100;
    }),
  DIRSYNC_EVENT_RETENTION: z
    .string()
    .optional()
    .refine((v) => v === undefined, 'was replaced by DIRSYNC_RETENTION (one horizon for runs, change logs, events and deliveries): rename it'),
});

/**
 * Reads the environment (and `.env` when present) once, validates every variable and
 * returns a frozen config. Throws a ConfigError naming each bad variable and its fix.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, envFile = '.env'): Config {
  const merged: Record<string, string | undefined> = { ...env };
  if (envFile && existsSync(envFile)) {
    // Real environment variables win over the file, as dotenv does by default.
    const parsed = dotenv.parse(readFileSync(envFile, 'utf8'));
    for (const [k, v] of Object.entries(parsed)) if (merged[k] === undefined) merged[k] = v;
  }
  const result = schema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`);
    throw new ConfigError(problems.join('; ') + '.');
  }
  const e = result.data;
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    host: e.HOST,
    adminToken: e.DIRSYNC_ADMIN_TOKEN,
    encryptionKey: e.DIRSYNC_ENCRYPTION_KEY,
    previousEncryptionKeys: Object.freeze(e.DIRSYNC_ENCRYPTION_KEY_PREVIOUS),
    allowHttp: e.DIRSYNC_ALLOW_HTTP,
    allowPrivateNetwork: e.DIRSYNC_ALLOW_PRIVATE_NETWORK,
    logLevel: e.LOG_LEVEL,
    queueName: e.DIRSYNC_QUEUE,
    publicUrl: (e.DIRSYNC_PUBLIC_URL ?? `http://127.0.0.1:${e.PORT}`).replace(/\/+$/, ''),
    webhookSecretGraceMs: e.DIRSYNC_WEBHOOK_SECRET_GRACE,
    retentionMs: e.DIRSYNC_RETENTION,
    rateLimitShare: e.DIRSYNC_RATE_LIMIT_SHARE,
  });
}

export function requireEncryptionKey(config: Config): Buffer {
  if (!config.encryptionKey) {
    throw new ConfigError(
      'DIRSYNC_ENCRYPTION_KEY is not set: generate one with `openssl rand -base64 32` and put it in the environment or .env.',
    );
  }
  return config.encryptionKey;
}

/** The current key and the previous ones: what decrypts stored credentials. */
export function requireKeyring(config: Config): Keyring {
  return { current: requireEncryptionKey(config), previous: config.previousEncryptionKeys };
}
