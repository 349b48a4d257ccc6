import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, ensureDatabase, migrateToLatest } from '../../src/db/database.js';
import { resetFigures, writeFaultReport } from '../faults/support/report.js';

/**
 * One fresh database per test run, migrated once, dropped at the end. Its URL reaches the
 * test workers through the environment, which they inherit.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const base = new URL(process.env.DIRSYNC_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const name = `dirsync_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  base.pathname = `/${name}`;
  const url = base.toString();
  await ensureDatabase(url);
  const db = createDb(url);
  const { error } = await migrateToLatest(db);
  await db.destroy();
  if (error) throw error;
  process.env.DATABASE_URL = url;
  process.env.DIRSYNC_TEST_DB_NAME = name;
  resetFigures();

  return async () => {
    const report = writeFaultReport();
    if (report) process.stdout.write(`\n${report}\n(written to test-artifacts/fault-report.md)\n`);
    base.pathname = '/postgres';
    const client = new pg.Client({ connectionString: base.toString() });
    await client.connect();
    // The template, and whatever a test file or CLI test left behind if it failed half-way.
    const { rows } = await client.query<{ datname: string }>(`select datname from pg_database where datname = $1 or datname like $2`, [name, `${name}\\_%`]);
    for (const { datname } of rows) await client.query(`drop database if exists "${datname}" with (force)`);
    await client.end();
  };
}
