import { loopbackEgress } from '../support/egress.js';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReadStats, SnapshotSource } from '../../src/connectors/connector.js';
import { emptyReadStats } from '../../src/connectors/connector.js';
import type { Snapshot } from '../../src/core/model.js';
import type { Db } from '../../src/db/database.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { schedulerId } from '../../src/queue/jobs.js';
import { type DirsyncQueue, createQueue, syncSchedule } from '../../src/queue/queue.js';
import { createRedis } from '../../src/queue/redis.js';
import { type DirsyncWorker, startWorker, stopWorker, sweep } from '../../src/queue/worker.js';
import { createConnector } from '../../src/connectors/index.js';
import type { PulledIntegration } from '../../src/db/integration.repository.js';
import type { Credentials } from '../../src/integrations/credentials.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { pino } from 'pino';
import { requestRun } from '../../src/runs/trigger.js';
import { silentLog, testConfig, createTestDatabase } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration } from '../support/fixtures.js';
import { waitFor } from '../support/wait.js';

let db: Db;
let okta: FakeOkta;
const cleanups: (() => Promise<unknown>)[] = [];

let dbUrl: string;
let dropDb: () => Promise<void>;

const SHUT_APP = '0oaShut';
const SHUT_USERS = 30;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb, url: dbUrl } = created);
  okta = await new FakeOkta().start();
  okta.addApp('0oaQ');
  const app = okta.addApp(SHUT_APP);
  for (let i = 0; i < SHUT_USERS; i++) app.users.add(okta.addUser(`s${i}@shut.test`).id);
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(async () => {
  await okta.stop();
  await dropDb();
});

function setup() {
  const config = testConfig({ DATABASE_URL: dbUrl });
  const redis = createRedis(config.redisUrl, 'worker');
  const queue: DirsyncQueue = createQueue(config.queueName, redis);
  cleanups.push(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
  });
  return { config, queue, redis };
}

/** The real Okta connector, whose read waits for `gate` before it starts. */
function gatedOkta(gate: Promise<void>) {
  return (integration: PulledIntegration, credentials: Credentials) => {
    const real = createConnector(integration, credentials, loopbackEgress);
    const gated = Object.create(real) as typeof real;
    gated.readSnapshot = async (...args) => {
      await gate;
      return real.readSnapshot(...args);
    };
    // A full read is staged through readInto (src/runs/staged-read.ts): gated the same way.
    const stageable = real as typeof real & { readInto?: (...args: unknown[]) => Promise<void> };
    const readInto = stageable.readInto?.bind(real);
    if (readInto) {
      (gated as typeof stageable).readInto = async (...args: unknown[]) => {
        await gate;
        return readInto(...args);
      };
    }
    return gated;
  };
}

async function accountsOf(integrationId: string): Promise<number> {
  const row = await db.selectFrom('accounts').select(db.fn.countAll<string>().as('n')).where('integration_id', '=', integrationId).executeTakeFirstOrThrow();
  return Number(row.n);
}

async function attemptsOf(runId: string): Promise<number> {
  return (await db.selectFrom('runs').select('attempts').where('id', '=', runId).executeTakeFirstOrThrow()).attempts;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connector that blocks until released and records how many reads overlap. */
class GatedConnector implements SnapshotSource {
  static active = 0;
  static maxActive = 0;
  static reads = 0;
  readonly stats: ReadStats = emptyReadStats();
  constructor(private readonly gate: Promise<void>) {}
  async readSnapshot(): Promise<Snapshot> {
    GatedConnector.reads += 1;
    GatedConnector.active += 1;
    GatedConnector.maxActive = Math.max(GatedConnector.maxActive, GatedConnector.active);
    await this.gate;
    GatedConnector.active -= 1;
    return { users: new Map(), groups: new Map(), memberships: new Map(), skipped: [], suspicious: [] };
  }
}

const finished = (id: string) => async () => {
  const run = await new RunRepository(db).find(id);
  return run && ['succeeded', 'failed', 'held'].includes(run.status) ? run : undefined;
};

async function worker(config: ReturnType<typeof testConfig>, queue: DirsyncQueue, gate: Promise<void>): Promise<DirsyncWorker> {
  const w = await startWorker({ db, config, log: silentLog, queue, concurrency: 4, connectorFor: () => new GatedConnector(gate) });
  cleanups.push(() => w.close(true));
  return w;
}

describe('queue and worker (real Redis)', () => {
  it('runs one run per integration at a time and coalesces triggers into one follow-up', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    GatedConnector.maxActive = 0;
    GatedConnector.reads = 0;
    // Two workers on one queue: exclusivity must not depend on there being one process.
    await worker(config, queue, gate);
    await worker(config, queue, gate);

    const first = await requestRun({ db, config, queue }, t.integrationId, 'manual');
    await waitFor('the first run to be running', async () => (await new RunRepository(db).find(first.run.id))?.status === 'running');

    const followUps: RunSummary[] = [];
    for (let i = 0; i < 5; i++) followUps.push((await requestRun({ db, config, queue }, t.integrationId, 'webhook')).run);
    expect(new Set(followUps.map((r) => r.id)).size).toBe(1);
    expect(followUps[0]!.id).not.toBe(first.run.id);
    // A dry run is its own run, but still waits its turn.
    const dry = await requestRun({ db, config, queue }, t.integrationId, 'manual', { dryRun: true });

    // Both waiting runs were handed to a worker and stepped aside (their jobs moved to delayed,
    // jobs/reconcile.job.ts): had exclusivity failed, one of them would be reading now.
    for (const id of [followUps[0]!.id, dry.run.id]) {
      await waitFor(`run ${id} to be tried and put off while the first runs`, async () => (await queue.getJobState(id)) === 'delayed');
    }
    expect(GatedConnector.maxActive).toBe(1);
    expect(GatedConnector.reads).toBe(1);
    release();

    for (const id of [first.run.id, followUps[0]!.id, dry.run.id]) {
      expect((await waitFor(`run ${id} to finish`, finished(id))).status).toBe('succeeded');
    }
    expect(GatedConnector.maxActive).toBe(1);
    expect(GatedConnector.reads).toBe(3);
    const runs = await new RunRepository(db).listForIntegration(t.integrationId);
    expect(runs).toHaveLength(3);
  });

  it('keeps a job scheduler per scheduled, enabled integration', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    const service = new IntegrationService(db, config);
    await syncSchedule(queue, (await service.update(t.integrationId, { every: '15m' })).integration);
    let scheduler = await queue.getJobScheduler(schedulerId(t.integrationId));
    expect(scheduler).toMatchObject({ every: 900_000, name: 'schedule-tick' });

    await syncSchedule(queue, (await service.update(t.integrationId, { cron: '0 3 * * *' })).integration);
    scheduler = await queue.getJobScheduler(schedulerId(t.integrationId));
    expect(scheduler).toMatchObject({ pattern: '0 3 * * *' });

    await syncSchedule(queue, await service.setEnabled(t.integrationId, false));
    expect(await queue.getJobScheduler(schedulerId(t.integrationId))).toBeUndefined();
  });

  it('turns a scheduler tick into a recorded scheduled run', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    await worker(config, queue, Promise.resolve());
    await queue.add('schedule-tick', { integrationId: t.integrationId });
    const run = await waitFor('the scheduled run to succeed', async () => {
      const [latest] = await new RunRepository(db).listForIntegration(t.integrationId, 1);
      return latest && latest.status === 'succeeded' ? latest : undefined;
    });
    expect(run.trigger).toBe('schedule');
  });

  it('re-enqueues a recorded run whose job was lost when a worker starts', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    // Recorded in Postgres, but Redis never got the job (it was down).
    const { run } = await new RunRepository(db).trigger(t.integrationId, 'manual', false);
    await worker(config, queue, Promise.resolve());
    expect((await waitFor(`run ${run.id} to finish`, finished(run.id))).status).toBe('succeeded');
  });

  it('refuses to queue a run for a disabled integration', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    await new IntegrationService(db, config).setEnabled(t.integrationId, false);
    await expect(requestRun({ db, config, queue }, t.integrationId, 'manual')).rejects.toThrow(/is disabled/);
  });

  it('restores a scheduler removed from Redis, and updates one that drifted, within one sweep', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    const service = new IntegrationService(db, config);
    await syncSchedule(queue, (await service.update(t.integrationId, { every: '15m' })).integration);
    const u = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    await syncSchedule(queue, (await service.update(u.integrationId, { cron: '0 3 * * *' })).integration);
    // Removed on bull-board's Schedulers page (or lost with a flush); the other changed behind dirsync's back.
    await queue.removeJobScheduler(schedulerId(t.integrationId));
    await queue.upsertJobScheduler(schedulerId(u.integrationId) as never, { every: 60_000 }, { name: 'schedule-tick', data: { integrationId: u.integrationId } });
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    await sweep({ db, config, log, queue });
    expect(await queue.getJobScheduler(schedulerId(t.integrationId))).toMatchObject({ every: 900_000, name: 'schedule-tick', next: expect.any(Number) });
    const updated = await queue.getJobScheduler(schedulerId(u.integrationId));
    expect(updated).toMatchObject({ pattern: '0 3 * * *', tz: 'UTC' });
    expect(updated?.every).toBeUndefined();
    expect(lines.join('')).toMatch(/schedules repaired/);
    expect(lines.join('')).toContain(t.integrationId);
    // Nothing drifted: the next sweep changes nothing and says nothing.
    lines.length = 0;
    await sweep({ db, config, log, queue });
    expect(lines.join('')).not.toMatch(/schedules repaired/);
  });

  it('removes schedulers of integrations disabled, unscheduled or deleted in Postgres, and leaves others alone', async () => {
    const { config, queue } = setup();
    const service = new IntegrationService(db, config);
    const disabled = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    const unscheduled = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    const deleted = await createOktaIntegration(db, config, okta, { appId: '0oaQ' });
    for (const t of [disabled, unscheduled, deleted]) await syncSchedule(queue, (await service.update(t.integrationId, { every: '1h' })).integration);
    // Through the worker's own sweep this time, with a short interval, after it started.
    const w = await startWorker({ db, config, log: silentLog, queue, sweepEveryMs: 200, connectorFor: () => new GatedConnector(Promise.resolve()) });
    cleanups.push(() => w.close(true));
    // Changed in Postgres only (the Redis write after it was lost).
    await service.setEnabled(disabled.integrationId, false);
    await db.updateTable('integrations').set({ schedule_every_ms: null }).where('id', '=', unscheduled.integrationId).execute();
    await service.delete(deleted.integrationId);
    const orphan = randomUUID();
    await queue.upsertJobScheduler(schedulerId(orphan) as never, { every: 3_600_000 }, { name: 'schedule-tick', data: { integrationId: orphan } });
    await queue.upsertJobScheduler('retention' as never, { every: 3_600_000 }, { name: 'schedule-tick', data: { integrationId: orphan } });
    for (const id of [disabled.integrationId, unscheduled.integrationId, deleted.integrationId, orphan]) {
      await waitFor(`the scheduler of ${id} to be removed`, async () => (await queue.getJobScheduler(schedulerId(id))) === undefined, { timeoutMs: 5_000 });
    }
    expect(await queue.getJobScheduler('retention')).toBeDefined();
  });

  it('hands a running run to the next worker when stopped: interrupted after the grace, taken over at once', async () => {
    const { config, queue } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: SHUT_APP });
    // Its read never starts: only an interruption ends this attempt.
    const first = await startWorker({ db, config, log: silentLog, queue, connectorFor: gatedOkta(new Promise(() => {})) });
    cleanups.push(() => first.close(true));
    const { run } = await requestRun({ db, config, queue }, t.integrationId, 'manual');
    await waitFor('the run to be running', async () => (await new RunRepository(db).find(run.id))?.status === 'running');
    const stopping = Date.now();
    expect(await stopWorker(first, silentLog, 300, 5_000)).toBe(true);
    expect(Date.now() - stopping).toBeLessThan(3_000);
    // Handed back: waiting for a worker, no attempt used up, the run's heartbeat made stale.
    expect(await queue.getJobState(run.id)).toBe('waiting');
    expect((await queue.getJob(run.id))?.attemptsMade).toBe(0);
    const second = await startWorker({ db, config, log: silentLog, queue });
    cleanups.push(() => second.close(true));
    const taken = Date.now();
    const done = await waitFor(`run ${run.id} to finish`, finished(run.id));
    expect(done.status, done.error ?? '').toBe('succeeded');
    // Taken over at once, not after the stale-heartbeat period (30 s).
    expect(Date.now() - taken).toBeLessThan(10_000);
    expect(await attemptsOf(run.id)).toBe(2);
    expect(done.counts?.usersCreated).toBe(SHUT_USERS);
    expect(await accountsOf(t.integrationId)).toBe(SHUT_USERS);
  });

  it('never says a run it finished itself was taken over: no heartbeat lands after the finish', async () => {
    const { config } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: SHUT_APP });
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    for (let i = 0; i < 8; i++) {
      const { run } = await new RunRepository(db).trigger(t.integrationId, 'manual', false);
      // A beat every millisecond: one is nearly always in flight when the run finishes.
      const outcome = await reconcile({ db, config, log, heartbeatMs: 1 }, run.id);
      expect(outcome).toMatchObject({ kind: 'finished', run: { status: 'succeeded' } });
    }
    expect(lines.filter((line) => line.includes('taken over'))).toEqual([]);
  });

  it('stops a run that another attempt took over after a stale heartbeat: it applies nothing more', async () => {
    const { config } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: SHUT_APP });
    const { run } = await new RunRepository(db).trigger(t.integrationId, 'manual', false);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const attempt = reconcile({ db, config, log: silentLog, heartbeatMs: 50, connectorFor: gatedOkta(gate) }, run.id);
    attempt.catch(() => {});
    await waitFor('the run to be running', async () => (await new RunRepository(db).find(run.id))?.status === 'running');
    // What RunRepository.claim does for another worker once this one's heartbeat is stale.
    await db.updateTable('runs').set({ attempts: 2, heartbeat_at: new Date() }).where('id', '=', run.id).execute();
    await expect(attempt).rejects.toMatchObject({ name: 'RunInterruptedError', reason: 'superseded' });
    release();
    await sleep(500);
    expect(await accountsOf(t.integrationId)).toBe(0);
    expect(await new RunRepository(db).find(run.id)).toMatchObject({ status: 'running' });
    await db.deleteFrom('runs').where('id', '=', run.id).execute();
  });

  it('runs a run once when its job lock is lost: the worker that gets the job steps aside while the first still owns the run', async () => {
    const { config, queue, redis } = setup();
    const t = await createOktaIntegration(db, config, okta, { appId: SHUT_APP });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = await startWorker({ db, config, log: silentLog, queue, connectorFor: gatedOkta(gate) });
    cleanups.push(() => first.close(true));
    const lost = new Promise<string[]>((resolve) => first.once('lockRenewalFailed', resolve));
    const { run } = await requestRun({ db, config, queue }, t.integrationId, 'manual');
    await waitFor('the run to be running', async () => (await new RunRepository(db).find(run.id))?.status === 'running');
    // The lock expired (a stall, a Redis failover): BullMQ hands the job to another worker.
    await redis.del(queue.toKey(`${run.id}:lock`));
    expect(await lost).toEqual([run.id]);
    const second = await startWorker({ db, config, log: silentLog, queue });
    cleanups.push(() => second.close(true));
    // The second worker gets the job, cannot claim the run (the first's heartbeat is fresh) and puts it off.
    await waitFor('the job to be handed on and put off', async () => (await queue.getJobState(run.id)) === 'delayed', { timeoutMs: 25_000 });
    release();
    const done = await waitFor(`run ${run.id} to finish`, finished(run.id));
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(await attemptsOf(run.id)).toBe(1);
    expect(done.counts?.usersCreated).toBe(SHUT_USERS);
    expect(await accountsOf(t.integrationId)).toBe(SHUT_USERS);
    // The job ends as a no-op for the run it found finished.
    await waitFor('the handed-on job to complete', async () => (await queue.getJobState(run.id)) === 'completed', { timeoutMs: 10_000 });
    expect((await queue.getJob(run.id))?.returnvalue).toMatch(/already succeeded/);
  }, 60_000);
});
