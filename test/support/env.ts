import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type Config, loadConfig } from '../../src/config.js';
import { type Db, createDb } from '../../src/db/database.js';
import { createLogger } from '../../src/log.js';

export const TEST_KEY = randomBytes(32).toString('base64');

/** Config for a test: the run's database, a queue of its own, no .env file. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig(
    {
      DATABASE_URL: process.env.DATABASE_URL,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      DIRSYNC_ENCRYPTION_KEY: TEST_KEY,
      DIRSYNC_ALLOW_HTTP: 'true',
      // The fake IdPs and receivers listen on 127.0.0.1.
      DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true',
      DIRSYNC_QUEUE: `test-${randomBytes(4).toString('hex')}`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ...overrides,
    },
    '',
  );
}

/**
 * A database of this test file's own, copied from the run's migrated template (as
 * graphile-worker's tests do): files run in parallel without seeing each other's runs.
 */
export async function createTestDatabase(): Promise<{ url: string; db: Db; drop: () => Promise<void> }> {
  const template = process.env.DIRSYNC_TEST_DB_NAME!;
  const name = `${template}_${randomBytes(4).toString('hex')}`;
  const admin = new URL(process.env.DATABASE_URL!);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`create database "${name}" template "${template}"`);
  } finally {
    await client.end();
  }
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${name}`;
  const db = createDb(url.toString(), { max: 4 });
  return {
    url: url.toString(),
    db,
    drop: async () => {
      await db.destroy();
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
      await c.end();
    },
  };
}

export const silentLog = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export function uniqueSlug(prefix = 't'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
