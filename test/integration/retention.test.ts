import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import type { ChangeState, RunMode, RunStatus } from '../../src/db/schema.js';
import { StagingRepository } from '../../src/db/staging.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { RETENTION_SCHEDULER_ID } from '../../src/queue/jobs.js';
import { type DirsyncQueue, createQueue } from '../../src/queue/queue.js';
import { createRedis } from '../../src/queue/redis.js';
import { startWorker } from '../../src/queue/worker.js';
import { WEBHOOK_DEDUP_WINDOW_MS, describePrune, pruneExpired } from '../../src/runs/retention.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { waitFor } from '../support/wait.js';

/**
 * Retention (DIRSYNC_RETENTION, README "Operations"): what goes, what stays, and that the
 * hourly job is scheduled when a worker starts. Rows are written with backdated times, as a
 * deployment that has run for months holds them.
 */

let db: Db;
let dbUrl: string;
let drop: () => Promise<void>;
let config: Config;
const cleanups: (() => Promise<unknown>)[] = [];
const DAY = 86_400_000;
const RETENTION = 90 * DAY;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop, url: dbUrl } = created);
  config = testConfig({ DATABASE_URL: dbUrl });
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(async () => drop());

async function scimIntegration(): Promise<{ tenantId: string; integrationId: string }> {
  const slug = uniqueSlug('ret');
  const tenant = (await new TenantRepository(db).create(slug, slug))!;
  const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim' });
  return { tenantId: tenant.id, integrationId: integration.id };
}

const ago = (days: number) => sql<Date>`now() - ${days} * interval '1 day'`;

/** A run as the worker leaves it, finished `days` ago (null: not finished). */
async function run(integrationId: string, status: RunStatus, days: number | null, options: { dryRun?: boolean; mode?: RunMode } = {}): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('runs')
    .values({
      id,
      integration_id: integrationId,
      trigger: 'manual',
      status,
      mode: options.mode ?? 'full',
      dry_run: options.dryRun ?? false,
      queued_at: ago((days ?? 0) + 0.01),
      started_at: status === 'queued' ? null : ago((days ?? 0) + 0.005),
      finished_at: days === null ? null : ago(days),
    })
    .execute();
  return id;
}

/** `n` change-log rows of a run (or of none: an integration's deletion) in one state, written `days` ago. */
async function changes(t: { tenantId: string; integrationId: string }, runId: string | null, state: ChangeState, n: number, days: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sql`insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state, created_at)
      values (${runId}::uuid, ${t.tenantId}::uuid, ${t.integrationId}::uuid, 'user.created', ${`u${i}`}, ${`u${i}@x.test`}, '{}'::jsonb, ${state}, ${ago(days)})`.execute(db);
  }
}

const runIds = async (integrationId: string) =>
  (await db.selectFrom('runs').select('id').where('integration_id', '=', integrationId).execute()).map((r) => r.id).sort();
const changeCount = async (runId: string) =>
  Number((await db.selectFrom('run_changes').select((eb) => eb.fn.countAll<string>().as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow()).n);

describe('retention (DIRSYNC_RETENTION)', () => {
  it('prunes old finished runs with their change logs, old events, webhook deliveries and ids, and finished endpoint deliveries, in batches; keeps held, running, queued, recent and each integration\'s last runs, and deliveries still retried', async () => {
    const a = await scimIntegration();
    const oldOk = await run(a.integrationId, 'succeeded', 100);
    await changes(a, oldOk, 'applied', 2, 100);
    await changes(a, oldOk, 'skipped', 1, 100);
    const oldFailed = await run(a.integrationId, 'failed', 95);
    await changes(a, oldFailed, 'skipped', 1, 95);
    const oldDry = await run(a.integrationId, 'succeeded', 100, { dryRun: true });
    await changes(a, oldDry, 'planned', 3, 100);
    const held = await run(a.integrationId, 'held', 100);
    await changes(a, held, 'held', 2, 100);
    await changes(a, held, 'applied', 1, 100);
    const running = await run(a.integrationId, 'running', null);
    await db.updateTable('runs').set({ started_at: ago(100), heartbeat_at: sql`now()` }).where('id', '=', running).execute();
    await changes(a, running, 'applied', 1, 100);
    // Staged reads (issue 19): a killed attempt's of a run that failed since goes; the running run's stays.
    const staging = new StagingRepository(db);
    const leftBehind = await staging.begin(oldFailed);
    await staging.stageMembers(leftBehind, ['g1'], ['u1']);
    const reading = await staging.begin(running);
    await staging.stageMembers(reading, ['g1'], ['u1']);
    const queued = await run(a.integrationId, 'queued', null);
    await db.updateTable('runs').set({ queued_at: ago(100) }).where('id', '=', queued).execute();
    const recent = await run(a.integrationId, 'succeeded', 1);
    await changes(a, recent, 'applied', 1, 1);
    // Events of a deleted integration's runs: no run left.
    await changes(a, null, 'applied', 2, 100);
    await changes(a, null, 'applied', 1, 1);

    // An idle integration: its last run, last success and last full success stay however old.
    const b = await scimIntegration();
    const bOldest = await run(b.integrationId, 'succeeded', 300);
    await changes(b, bOldest, 'applied', 1, 300);
    const bLastSuccess = await run(b.integrationId, 'succeeded', 200);
    const bLast = await run(b.integrationId, 'failed', 100, { mode: 'incremental' });

    await sql`insert into webhook_deliveries (integration_id, source, event_types, event_ids, outcome, received_at) values
      (${a.integrationId}::uuid, 'okta', '{}', '{}', 'triggered', ${ago(100)}),
      (${a.integrationId}::uuid, 'okta', '{}', '{}', 'duplicate', ${ago(100)}),
      (${a.integrationId}::uuid, 'okta', '{}', '{}', 'rejected', ${ago(91)}),
      (${a.integrationId}::uuid, 'okta', '{}', '{}', 'triggered', ${ago(1)})`.execute(db);
    // Event ids are kept for the redelivery window, not for DIRSYNC_RETENTION.
    expect(WEBHOOK_DEDUP_WINDOW_MS).toBe(7 * DAY);
    await sql`insert into webhook_events (integration_id, event_id, received_at) values
      (${a.integrationId}::uuid, 'e-old-1', ${ago(8)}), (${a.integrationId}::uuid, 'e-old-2', ${ago(8)}), (${a.integrationId}::uuid, 'e-new', ${ago(6)})`.execute(db);
    const { id: endpointId } = await sql<{ id: string }>`
      insert into event_endpoints (url, secret, cursor_txid, cursor_id) values ('https://x.test/h', '\\x00'::bytea, '0', 0) returning id`
      .execute(db)
      .then((q) => q.rows[0]!);
    await sql`
      insert into event_deliveries (endpoint_id, event_id, event_cursor, event_type, status, attempts, updated_at) values
        (${endpointId}::uuid, 1, '1.1', 'user.created', 'delivered', 1, ${ago(100)}),
        (${endpointId}::uuid, 2, '1.2', 'user.created', 'failed', 9, ${ago(100)}),
        (${endpointId}::uuid, 3, '1.3', 'user.created', 'retrying', 3, ${ago(100)}),
        (${endpointId}::uuid, 4, '1.4', 'user.created', 'delivered', 1, ${ago(1)})`.execute(db);

    // Two rows per statement: every kind needs several statements, so the loops are exercised.
    const report = await pruneExpired(db, RETENTION, 2);
    expect(report).toEqual({ runs: 4, runChanges: 8, events: 2, webhookDeliveries: 3, webhookEventIds: 2, endpointDeliveries: 2, stagedReads: 1 });
    expect(describePrune(report)).toBe(
      'pruned 4 runs, 8 change-log rows, 2 events of removed runs, 3 webhook deliveries, 2 webhook event ids, 2 endpoint deliveries, 1 staged read of a run that ended',
    );
    expect(await staging.membersIn(reading, { after: null, upTo: null })).toEqual([{ group: 'g1', user: 'u1' }]);
    expect(await staging.membersIn(leftBehind, { after: null, upTo: null })).toEqual([]);

    expect(await runIds(a.integrationId)).toEqual([held, running, queued, recent].sort());
    expect(await runIds(b.integrationId)).toEqual([bLastSuccess, bLast].sort());
    for (const gone of [oldOk, oldFailed, oldDry, bOldest]) expect(await changeCount(gone)).toBe(0);
    expect([await changeCount(held), await changeCount(running), await changeCount(recent)]).toEqual([3, 1, 1]);
    const runless = await db.selectFrom('run_changes').select('created_at').where('run_id', 'is', null).where('integration_id', '=', a.integrationId).execute();
    expect(runless).toHaveLength(1);
    const deliveries = await db.selectFrom('webhook_deliveries').select('outcome').where('integration_id', '=', a.integrationId).execute();
    expect(deliveries.map((d) => d.outcome)).toEqual(['triggered']);
    const ids = await db.selectFrom('webhook_events').select('event_id').where('integration_id', '=', a.integrationId).execute();
    expect(ids.map((e) => e.event_id)).toEqual(['e-new']);
    const left = await db.selectFrom('event_deliveries').select('event_id').where('endpoint_id', '=', endpointId).orderBy('event_id').execute();
    expect(left.map((d) => String(d.event_id))).toEqual(['3', '4']);

    // Nothing more the second time.
    const again = await pruneExpired(db, RETENTION);
    expect(describePrune(again)).toBe('nothing to prune');
  });

  it('a starting worker schedules the hourly prune job, which runs and reports what it pruned', async () => {
    const cfg = testConfig({ DATABASE_URL: dbUrl });
    const redis = createRedis(cfg.redisUrl, 'worker');
    const queue: DirsyncQueue = createQueue(cfg.queueName, redis);
    cleanups.push(async () => {
      await queue.obliterate({ force: true });
      await queue.close();
      redis.disconnect();
    });
    const a = await scimIntegration();
    const old = await run(a.integrationId, 'failed', 100);
    await run(a.integrationId, 'succeeded', 1);
    expect(await queue.getJobScheduler(RETENTION_SCHEDULER_ID)).toBeUndefined();

    const worker = await startWorker({ db, config: cfg, log: silentLog, queue, concurrency: 1 });
    cleanups.push(() => worker.close(true));
    expect(await queue.getJobScheduler(RETENTION_SCHEDULER_ID)).toMatchObject({ name: 'prune', every: 3_600_000 });
    const done = await waitFor('the first prune job to complete', async () => (await queue.getJobs(['completed'])).find((j) => j.name === 'prune'));
    expect(done.returnvalue).toMatch(/^pruned 1 run\b/);
    expect(await runIds(a.integrationId)).not.toContain(old);
  });
});
