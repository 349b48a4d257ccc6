import { Kysely, Migrator, PostgresDialect, type MigrationResultSet } from 'kysely';
import pg from 'pg';
import { migrations } from '../../migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/**
 * SQLSTATE classes of errors the data causes, not the database's availability: a value
 * Postgres cannot take (22), a constraint a row breaks (23), a program limit such as an
 * over-long index entry (54). Retrying them as an outage would fail the same way forever.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
const DATA_ERROR_CLASSES = new Set(['22', '23', '54']);

/** Whether a Postgres error is caused by the data (see DATA_ERROR_CLASSES), not by an outage. */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && DATA_ERROR_CLASSES.has(code.slice(0, 2));
}

/**
 * Whether a Postgres error says the transaction lost to a concurrent one and may simply be run
 * again: a deadlock (40P01) or a serialization failure (40001). Applying transactions of one
 * integration may run side by side (src/runs/read-stamps.ts), so two of them can deadlock on
 * rows they both write; Postgres aborts one, which then runs again.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function isTransactionConflict(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === '40P01' || code === '40001';
}

/** A data error (see isDataError) as one sentence for the person who sent the value. */
export function refusedValue(error: unknown): string {
  const message = (error as Error).message.replace(/\s+/g, ' ').slice(0, 200);
  return `a value in the request cannot be stored (${message}): remove control characters such as NUL and keep numbers and texts within their documented bounds`;
}

export function createDb(databaseUrl: string, options: { max?: number } = {}): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    // A dead Postgres must fail a query, not hang the run forever.
    connectionTimeoutMillis: 10_000,
  });
  // A client losing its connection (Postgres restarted) must not crash the process: idle ones
  // report on the pool; checked-out ones (inside a transaction, between two queries) on
  // themselves, and their next query fails, which is where the error is handled.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Creates the database named in the URL if it does not exist yet (first run on a laptop). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return false;
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`create database "${name.replace(/"/g, '""')}"`);
    } catch (error) {
      // Another process created it between our check and our create.
      if ((error as { code?: string }).code !== '42P04') throw error;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  return migrator.migrateToLatest();
}
