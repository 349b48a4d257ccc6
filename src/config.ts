import { existsSync, readFileSync } from 'node:fs';
import dotenv from 'dotenv';
import { z } from 'zod';
import { GRACE_RULE, parseGrace } from './integrations/webhook-secret-grace.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  readonly adminToken: string | undefined;
  /** 32 bytes; undefined until a command that touches credentials asks for it. */
  readonly encryptionKey: Buffer | undefined;
  readonly allowHttp: boolean;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** BullMQ queue name; tests give each run its own. */
  readonly queueName: string;
  /** Public base URL that webhook URLs are built on. */
  readonly publicUrl: string;
  /** How long a rotated webhook secret keeps working when the rotation names no grace period. */
  readonly webhookSecretGraceMs: number;
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
  DIRSYNC_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  DIRSYNC_ENCRYPTION_KEY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const key = Buffer.from(v, 'base64');
      if (key.length !== 32 || key.toString('base64') !== v.trim()) {
        ctx.addIssue({ code: 'custom', message: 'must be 32 random bytes in base64, as `openssl rand -base64 32` prints' });
        return z.NEVER;
      }
      return key;
    }),
  DIRSYNC_ALLOW_HTTP: boolish.default(false),
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
    adminToken: e.DIRSYNC_ADMIN_TOKEN,
    encryptionKey: e.DIRSYNC_ENCRYPTION_KEY,
    allowHttp: e.DIRSYNC_ALLOW_HTTP,
    logLevel: e.LOG_LEVEL,
    queueName: e.DIRSYNC_QUEUE,
    publicUrl: (e.DIRSYNC_PUBLIC_URL ?? `http://127.0.0.1:${e.PORT}`).replace(/\/+$/, ''),
    webhookSecretGraceMs: e.DIRSYNC_WEBHOOK_SECRET_GRACE,
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

