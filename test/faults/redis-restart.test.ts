import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness, type RunSummaryJson } from '../support/cli.js';
import { testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { oktaDelivery } from '../support/webhook-bodies.js';
import { checkConvergence } from './support/convergence.js';
import { recordFigures } from './support/figures.js';
import { runPhase } from './support/phase.js';
import { DirsyncProcess } from '../support/processes.js';
import { PrivateRedis } from './support/redis-server.js';

/**
 * Redis restarted (and coming back empty) while `dirsync start` is idle, while webhooks
 * arrive, and in the middle of a run. The worker and the receiver reconnect by themselves,
 * schedules and recorded runs are put back from Postgres, deliveries refused while Redis is
 * away are answered 503 and trigger once delivered again, and the next run converges.
 */

const APP = '0oaRedis';
const redis = new PrivateRedis();
const cli = new CliHarness();
const config = testConfig({ DATABASE_URL: cli.dbUrl, DIRSYNC_QUEUE: cli.queue, REDIS_URL: redis.url });
const env = { REDIS_URL: redis.url };
let okta: FakeOkta;
let db: Db;
let server: DirsyncProcess;
let integrationId: string;
let secret: string;
let restarts = 0;
let refused = 0;
let runs = 0;

beforeAll(async () => {
  await redis.start();
  okta = await new FakeOkta().start();
  okta.maxPageSize = 100;
  const app = okta.addApp(APP);
  for (let i = 0; i < 1_000; i++) app.users.add(okta.addUser(`r${i}@redis.test`).id);
  await cli.createDatabase();
  expect((await cli.run(['tenant', 'create', 'redis', '--json'], env)).code).toBe(0);
  const created = await cli.run(
    ['integration', 'create', '--tenant', 'redis', '--provider', 'okta', '--base-url', okta.url, '--token', okta.token, '--okta-app-id', APP, '--every', '1h', '--threshold', '100', '--json'],
    env,
  );
  ({ id: integrationId, webhookSecret: secret } = JSON.parse(created.stdout) as { id: string; webhookSecret: string });
  db = createDb(cli.dbUrl);
  server = await new DirsyncProcess(cli, 'start', env).start();
}, 120_000);

afterAll(async () => {
  recordFigures({
    scenario: 'Redis restarted empty (idle, with webhooks arriving, mid-run)',
    rounds: 1,
    faults: restarts,
    runs,
    changesLost: 0,
    wrongfulDeprovisions: 0,
    note: `${refused} webhook deliveries answered 503 while Redis was down, all accepted when delivered again`,
  });
  await server?.stop();
  await db?.destroy();
  await okta?.stop();
  await cli.stop();
  await redis.destroy();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.log.slice(-3000)}`);
    await sleep(100);
  }
}

/** The ids of the queue's schedulers, sorted. */
async function schedulers(): Promise<string[]> {
  const queue = new Queue(cli.queue, { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 } });
  try {
    return (await queue.getJobSchedulers()).map((s) => s.key).sort();
  } finally {
    await queue.close();
  }
}

const deliver = (body: unknown) =>
  fetch(`http://127.0.0.1:${cli.port}/webhooks/${integrationId}`, {
    method: 'POST',
    headers: { authorization: secret, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function finished(runId: string): Promise<RunSummaryJson> {
  return until(`run ${runId} to finish`, async () => {
    const run = await db.selectFrom('runs').select(['id', 'status', 'error']).where('id', '=', runId).executeTakeFirst();
    return run && !['queued', 'running'].includes(run.status) ? (run as unknown as RunSummaryJson) : undefined;
  }, 60_000);
}

async function expectConverged() {
  const report = await checkConvergence(db, config, integrationId);
  expect(report.mismatches).toEqual([]);
  expect(report.changeLogErrors).toEqual([]);
  expect(report.pendingChanges).toBe(0);
}

describe('Redis restarts', () => {
  it('while idle: the schedule is re-created and webhooks trigger runs again, with no restart of dirsync', async () => {
    const first = await cli.json<RunSummaryJson>(['sync', integrationId, '--wait'], env);
    runs += 1;
    expect(first.status).toBe('succeeded');
    // The integration's schedule, and the retention job's (src/queue/queue.ts scheduleRetention).
    const expected = ['retention', `schedule-${integrationId}`];
    expect(await schedulers()).toEqual(expected);

    await redis.restart();
    restarts += 1;
    await until('the schedules to be re-created', async () => (await schedulers()).join() === expected.join() || undefined);

    const suspended = [...okta.users.keys()][0]!;
    okta.updateUser(suspended, { status: 'SUSPENDED' });
    const res = await until('a webhook to be accepted', async () => {
      // The event names the user it is about, as Okta's do: the run it triggers reads that user.
      const r = await deliver(oktaDelivery([{ eventType: 'user.lifecycle.suspend', target: [{ id: suspended, type: 'User' }] }]));
      return r.status === 200 ? ((await r.json()) as { runId: string }) : undefined;
    });
    runs += 1;
    expect((await finished(res.runId)).status).toBe('succeeded');
    await expectConverged();
  }, 120_000);

  it('with webhooks arriving while it is down: 503 (the IdP delivers again), and nothing lost once it is back', async () => {
    await redis.stop();
    restarts += 1;
    const target = [...okta.users.keys()][1]!;
    okta.updateUser(target, { status: 'SUSPENDED' });
    const body = oktaDelivery([{ eventType: 'user.lifecycle.suspend', uuid: `evt-down-${Date.now()}`, target: [{ id: target, type: 'User' }] }]);
    const runsBefore = await db.selectFrom('runs').select(db.fn.countAll<string>().as('n')).where('integration_id', '=', integrationId).executeTakeFirstOrThrow();
    for (let i = 0; i < 3; i++) {
      const r = await deliver(body);
      expect(r.status).toBe(503);
      refused += 1;
    }
    const runsDuring = await db.selectFrom('runs').select(db.fn.countAll<string>().as('n')).where('integration_id', '=', integrationId).executeTakeFirstOrThrow();
    expect(runsDuring.n).toBe(runsBefore.n);

    await redis.start();
    // Okta delivers the same event again; it is not taken for a duplicate.
    const accepted = await until('the redelivery to be accepted', async () => {
      const r = await deliver(body);
      return r.status === 200 ? ((await r.json()) as { outcome: string; runId: string }) : undefined;
    });
    expect(accepted.outcome).toBe('triggered');
    runs += 1;
    expect((await finished(accepted.runId)).status).toBe('succeeded');
    const row = await db.selectFrom('accounts').select('active').where('integration_id', '=', integrationId).where('external_id', '=', target).executeTakeFirstOrThrow();
    expect(row.active).toBe(false);
    await expectConverged();
  }, 120_000);

  it('in the middle of a run: the run finishes or fails cleanly, and the next converges', async () => {
    okta.responseDelayMs = 150;
    for (const id of [...okta.users.keys()].slice(10, 60)) okta.updateUser(id, { profile: { title: 'Moved' } });
    const runId = (await cli.run(['sync', integrationId], env)).stdout.trim();
    const requestsBefore = okta.requests.length;
    // Redis goes down once the run is reading (it has asked the IdP for two pages), not after a guessed delay.
    await until('the run to be reading', async () => {
      const run = await db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirst();
      return (run?.status === 'running' && okta.requests.length >= requestsBefore + 2) || undefined;
    });
    await redis.stop();
    // Redis is down: the fault hit the run only if the run was still going then.
    const hit = await runPhase(db, runId);
    await sleep(500);
    await redis.start();
    restarts += 1;
    expect(hit, 'Redis went down after the run had ended: the scenario tested nothing').not.toBe('after the run ended');
    runs += 1;
    const during = await finished(runId);
    expect(['succeeded', 'failed']).toContain(during.status);
    okta.responseDelayMs = 0;

    const next = await until('a run after the restart', () => cli.json<RunSummaryJson>(['sync', integrationId, '--wait'], env));
    runs += 1;
    expect(next.status).toBe('succeeded');
    await expectConverged();
    expect(server.running).toBe(true);
  }, 180_000);
});
