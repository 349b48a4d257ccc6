import { randomUUID } from 'node:crypto';
import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { MetricsRepository } from '../../src/db/metrics.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { createTestDatabase } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';

/**
 * Upgrading to counters kept in Postgres (2026-11-30T0600-metric-counters) starts them from
 * what the database records, so a scrape after the upgrade shows no counter reset; and the
 * migration goes down and up again.
 */

const BEFORE = '2026-11-30T0500-subject-history';

let db: Db;
let drop: () => Promise<void>;
let okta: FakeOkta;
let migrator: Migrator;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  okta = await new FakeOkta().start();
  migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
});
afterAll(async () => {
  await okta.stop();
  await drop();
});

/** Every counter series as `name{label="value",...}` (labels sorted) -> value. */
const totals = async () =>
  Object.fromEntries(
    (await new MetricsRepository(db).counterTotals()).map((t) => {
      const labels = Object.entries(t.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}="${v}"`);
      return [`${t.name}{${labels.join(',')}}`, t.value];
    }),
  );

describe('migration 2026-11-30T0600-metric-counters', () => {
  it('starts the counters from recorded runs and deliveries, then counts on', async () => {
    expect((await migrator.migrateTo(BEFORE)).error).toBeUndefined();
    // Rows as the code of that schema wrote them (today's repositories write columns it lacks).
    const t = { integrationId: randomUUID() };
    const tenantId = randomUUID();
    await sql`insert into tenants (id, slug, name) values (${tenantId}::uuid, ${`m-${tenantId.slice(0, 8)}`}, 'm')`.execute(db);
    await sql`insert into integrations (id, tenant_id, provider, base_url, credentials, webhook_secret_hash, updated_at)
              values (${t.integrationId}::uuid, ${tenantId}::uuid, 'okta', ${okta.url}, ${Buffer.from('sealed')}, 'x', now())`.execute(db);
    const before = async (status: 'succeeded' | 'failed', dryRun = false) => {
      const counts = JSON.stringify({ ...zeroCounts(), usersCreated: 2 });
      await sql`insert into runs (id, integration_id, trigger, mode, status, dry_run, started_at, finished_at, counts, stats, warnings)
                values (${randomUUID()}::uuid, ${t.integrationId}::uuid, 'manual', 'full', ${status}, ${dryRun}, now(), now(), ${counts}::jsonb,
                        ${JSON.stringify({ requests: 3, retries: 1 })}::jsonb, ${JSON.stringify([{ externalId: 'x', subject: 'x', reason: 'bad' }])}::jsonb)`.execute(db);
    };
    await before('succeeded');
    await before('failed');
    await before('succeeded', true);
    const runs = new RunRepository(db);
    const finish = async (status: 'succeeded' | 'failed', dryRun = false) => {
      const { run } = await runs.trigger(t.integrationId, 'manual', dryRun);
      const counts = { ...zeroCounts(), usersCreated: 2 };
      await runs.finish(run.id, { status, counts, stats: { requests: 3, retries: 1 }, warnings: [{ externalId: 'x', subject: 'x', reason: 'bad' }] });
    };
    await db
      .insertInto('webhook_deliveries')
      .values({ integration_id: t.integrationId, source: 'okta', event_types: [], event_ids: [], outcome: 'triggered', run_id: null })
      .execute();

    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const upgraded = await totals();
    expect(upgraded).toMatchObject({
      'dirsync_runs_finished_total{dry_run="false",status="succeeded",trigger="manual"}': 1,
      'dirsync_runs_finished_total{dry_run="false",status="failed",trigger="manual"}': 1,
      'dirsync_runs_finished_total{dry_run="true",status="succeeded",trigger="manual"}': 1,
      // Dry runs apply nothing and skip nothing.
      'dirsync_changes_applied_total{kind="usersCreated"}': 4,
      'dirsync_records_skipped_total{provider="okta"}': 2,
      'dirsync_idp_requests_total{kind="request",provider="okta"}': 9,
      'dirsync_idp_requests_total{kind="retry",provider="okta"}': 3,
      'dirsync_webhook_deliveries_total{outcome="triggered",source="okta"}': 1,
    });
    expect(Object.keys(upgraded).some((k) => k.includes('kind="usersUpdated"'))).toBe(false);

    await finish('succeeded');
    expect((await totals())['dirsync_runs_finished_total{dry_run="false",status="succeeded",trigger="manual"}']).toBe(2);
    expect((await totals())['dirsync_changes_applied_total{kind="usersCreated"}']).toBe(6);

    expect((await migrator.migrateDown()).error).toBeUndefined();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect((await totals())['dirsync_runs_finished_total{dry_run="false",status="succeeded",trigger="manual"}']).toBe(2);
  });
});
