import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdpReadError, type ReadStats, type SnapshotSource, emptyReadStats } from '../../src/connectors/connector.js';
import type { Snapshot } from '../../src/core/model.js';
import type { Db } from '../../src/db/database.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { schedulerId } from '../../src/queue/jobs.js';
import { type DirsyncQueue, syncSchedule } from '../../src/queue/queue.js';
import { type DirsyncWorker, startWorker } from '../../src/queue/worker.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { requestRun } from '../../src/runs/trigger.js';
import { createTestDatabase, silentLog, testConfig } from '../support/env.js';
import { snapshot, user } from '../support/builders.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';
import { waitFor } from '../support/wait.js';

const ADMIN = 'admin-token-for-board-tests-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let queue: DirsyncQueue;
let close: () => Promise<void>;
let worker: DirsyncWorker;
let okta: FakeOkta;
let config: ReturnType<typeof testConfig>;

/** What the next read of each integration answers: a snapshot, or an error the IdP gave. */
const answers = new Map<string, () => Snapshot>();

class ScriptedConnector implements SnapshotSource {
  readonly stats: ReadStats = emptyReadStats();
  constructor(private readonly integrationId: string) {}
  async readSnapshot(): Promise<Snapshot> {
    return answers.get(this.integrationId)!();
  }
}

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, queue, close } = await startTestServer(db, config));
  worker = await startWorker({ db, config, log: silentLog, queue, connectorFor: (integration) => new ScriptedConnector(integration.id) });
  okta = await new FakeOkta().start();
  okta.addApp('0oaBoard');
});
afterAll(async () => {
  await worker.close(true);
  await close();
  await okta.stop();
  await dropDb();
});

const call = (opts: InjectOptions) => app.inject({ ...opts, headers: { authorization: `Bearer ${ADMIN}`, ...opts.headers } });

async function runToEnd(integrationId: string): Promise<string> {
  const { run } = await requestRun({ db, config, queue }, integrationId, 'manual');
  await waitFor(`job ${run.id} to end`, async () => ['completed', 'failed'].includes(await queue.getJobState(run.id)));
  return run.id;
}

describe('bull-board tells the truth (real Redis)', () => {
  it('fails the job of a failed run, with its reason, without retrying it', async () => {
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaBoard' });
    answers.set(t.integrationId, () => {
      throw new IdpReadError('Okta answered 401: the API token is invalid');
    });
    const runId = await runToEnd(t.integrationId);
    expect((await new RunRepository(db).find(runId))?.status).toBe('failed');
    const job = (await queue.getJob(runId))!;
    expect(await job.getState()).toBe('failed');
    expect(job.failedReason).toMatch(/^run failed: .*the API token is invalid/);
    // Failed for good: one attempt, not retried as an outage would be.
    expect(job.attemptsMade).toBe(1);
    expect((await queue.getFailed()).map((j) => j.id)).toContain(runId);
  });

  it('completes the job of a held run, saying it is held', async () => {
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaBoard' });
    const everyone = Array.from({ length: 100 }, (_, i) => user(`00uB${i}`));
    answers.set(t.integrationId, () => snapshot(everyone, []));
    const first = await runToEnd(t.integrationId);
    expect(await queue.getJobState(first)).toBe('completed');
    expect((await queue.getJob(first))!.returnvalue).toBe('succeeded');

    answers.set(t.integrationId, () => snapshot(everyone.slice(0, 70), []));
    const held = await runToEnd(t.integrationId);
    expect((await new RunRepository(db).find(held))?.status).toBe('held');
    const job = (await queue.getJob(held))!;
    expect(await job.getState()).toBe('completed');
    expect(job.returnvalue).toMatch(/^held: 30 removals wait for approval/);
  });

  it('is read-only: every mutating route of the board refuses', async () => {
    const t = await createOktaIntegration(db, config, okta, { appId: '0oaBoard' });
    const integration = (await new IntegrationService(db, config).update(t.integrationId, { every: '15m' })).integration;
    await syncSchedule(queue, integration);
    answers.set(t.integrationId, () => {
      throw new IdpReadError('Okta is away');
    });
    const failed = await runToEnd(t.integrationId);
    const q = encodeURIComponent(config.queueName);
    const s = encodeURIComponent(schedulerId(t.integrationId));
    const mutations: InjectOptions[] = [
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/job-schedulers/${s}/remove` },
      { method: 'PATCH', url: `/admin/queues/api/queues/${q}/job-schedulers/${s}`, payload: { every: 1000 } },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/job-schedulers/${s}/run` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/${failed}/retry` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/${failed}/clean` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/retry/failed` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/clean/failed` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/pause` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/empty` },
      { method: 'PUT', url: `/admin/queues/api/queues/${q}/obliterate` },
      { method: 'POST', url: `/admin/queues/api/queues/${q}/add`, payload: { name: 'reconcile', data: {} } },
    ];
    for (const m of mutations) {
      const res = await call(m);
      expect(res.statusCode, `${m.method} ${m.url}: ${res.body}`).toBe(405);
    }
    // Pausing every queue is a no-op for read-only queues.
    await call({ method: 'PUT', url: '/admin/queues/api/queues/pause' });
    expect(await queue.isPaused()).toBe(false);
    // Nothing changed behind Postgres's back, and the board says it is read-only.
    expect(await queue.getJobScheduler(schedulerId(t.integrationId))).toMatchObject({ every: 900_000 });
    expect(await queue.getJobState(failed)).toBe('failed');
    const listing = (await call({ method: 'GET', url: '/admin/queues/api/queues' })).json() as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(listing.queues.find((x) => x.name === config.queueName)?.readOnlyMode).toBe(true);
  });
});
