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
import { type DirsyncWorker, startWorker } from '../../src/queue/worker.js';
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

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb, url: dbUrl } = created);
  okta = await new FakeOkta().start();
  okta.addApp('0oaQ');
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
  return { config, queue };
}

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
});
