import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReadStats, SnapshotSource } from '../../src/connectors/connector.js';
import { emptyReadStats } from '../../src/connectors/connector.js';
import { createConnector } from '../../src/connectors/index.js';
import type { Snapshot } from '../../src/core/model.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { WebhookRepository } from '../../src/db/webhook.repository.js';
import { buildServer } from '../../src/http/server.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { type DirsyncQueue, createQueue } from '../../src/queue/queue.js';
import { createRedis } from '../../src/queue/redis.js';
import { startWorker } from '../../src/queue/worker.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createAuthentikIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { waitFor } from '../support/wait.js';
import { authentikDefaultBody, authentikMappedBody, oktaDelivery } from '../support/webhook-bodies.js';
import { loopbackEgress } from '../support/egress.js';

let db: Db;
let dbUrl: string;
let dropDb: () => Promise<void>;
let okta: FakeOkta;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb, url: dbUrl } = created);
  okta = await new FakeOkta().start();
  okta.addApp('0oaW');
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(async () => {
  await okta.stop();
  await dropDb();
});

/** A server (and its queue) of the test's own; `redisUrl` may point at a Redis that is down. */
async function setup(redisUrl = 'redis://127.0.0.1:6379') {
  const config = testConfig({ DATABASE_URL: dbUrl, REDIS_URL: redisUrl });
  const redis = createRedis(config.redisUrl, 'client');
  redis.on('error', () => {});
  const queue: DirsyncQueue = createQueue(config.queueName, redis);
  queue.on('error', () => {});
  const app: FastifyInstance = buildServer({ db, config, redis, queue, log: silentLog });
  await app.ready();
  cleanups.push(async () => {
    await app.close();
    if (redisUrl.endsWith(':6379')) await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
  });
  const service = new IntegrationService(db, config);
  const t = await createOktaIntegration(db, config, okta, { appId: '0oaW' });
  // The test's integration goes with its runs: no run a test leaves queued is picked up by a
  // worker another test starts (a worker re-enqueues every queued run it finds in Postgres).
  cleanups.push(() => service.delete(t.integrationId));
  const { webhookSecret: secret } = await service.rotateWebhookSecret(t.integrationId);
  const post = (body: unknown, authorization: string | undefined = secret, id = t.integrationId) =>
    app.inject({ method: 'POST', url: `/webhooks/${id}`, headers: authorization ? { authorization } : {}, payload: body as object });
  return { config, queue, app, t, secret, post, service };
}

const deactivated = () => oktaDelivery([{ eventType: 'user.lifecycle.deactivate' }]);
const runsOf = (integrationId: string) => new RunRepository(db).listForIntegration(integrationId, 100);

describe('webhook receiver', () => {
  it('answers the Okta verification challenge, only with the right secret', async () => {
    const { app, t, secret } = await setup();
    const ok = await app.inject({
      method: 'GET',
      url: `/webhooks/${t.integrationId}`,
      headers: { authorization: secret, 'x-okta-verification-challenge': 'abc123' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ verification: 'abc123' });
    const wrong = await app.inject({ method: 'GET', url: `/webhooks/${t.integrationId}`, headers: { authorization: 'nope', 'x-okta-verification-challenge': 'abc123' } });
    expect(wrong.statusCode).toBe(401);
  });

  it('turns a relevant delivery into a queued webhook run and records the delivery', async () => {
    const { queue, t, post } = await setup();
    const res = await post(deactivated());
    expect(res.statusCode).toBe(200);
    const { runId, outcome } = res.json();
    expect(outcome).toBe('triggered');
    expect(await new RunRepository(db).find(runId)).toMatchObject({ trigger: 'webhook', status: 'queued' });
    expect(await queue.getJob(runId)).toBeDefined();
    const [delivery] = await new WebhookRepository(db).listDeliveries(t.integrationId);
    expect(delivery).toMatchObject({ source: 'okta', outcome: 'triggered', runId, eventTypes: ['user.lifecycle.deactivate'] });
  });

  it('accepts the secret bare (Okta) or as a bearer token (authentik)', async () => {
    const { post, secret } = await setup();
    expect((await post(deactivated(), `Bearer ${secret}`)).statusCode).toBe(200);
  });

  it('waits for a queue connection that is still being made instead of refusing', async () => {
    const { config, t, secret } = await setup();
    // A receiver that has just started, with a Redis that takes 300 ms to answer the connection.
    const slow = net.createServer((client) => {
      setTimeout(() => {
        const upstream = net.connect(6379, '127.0.0.1');
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      }, 300);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => slow.close(resolve)));
    const redis = createRedis(`redis://127.0.0.1:${(slow.address() as net.AddressInfo).port}`, 'client');
    redis.on('error', () => {});
    const queue = createQueue(config.queueName, redis);
    const app = buildServer({ db, config, redis, queue, log: silentLog });
    cleanups.push(async () => {
      await app.close();
      await queue.close();
      redis.disconnect();
    });
    expect(redis.status).not.toBe('ready');
    const res = await app.inject({ method: 'POST', url: `/webhooks/${t.integrationId}`, headers: { authorization: secret }, payload: deactivated() });
    expect(res.statusCode).toBe(200);
    expect(res.json().outcome).toBe('triggered');
  });

  it('coalesces a burst into one run, and a burst during a run into one follow-up', async () => {
    const { t, post } = await setup();
    const burst = await Promise.all(Array.from({ length: 40 }, () => post(deactivated())));
    expect(burst.every((r) => r.statusCode === 200)).toBe(true);
    expect(new Set(burst.map((r) => r.json().runId)).size).toBe(1);

    // The run starts: later events queue exactly one follow-up.
    const first = burst[0]!.json().runId as string;
    await new RunRepository(db).claim(first);
    const during = await Promise.all(Array.from({ length: 40 }, () => post(deactivated())));
    const followUps = new Set(during.map((r) => r.json().runId));
    expect(followUps.size).toBe(1);
    expect(followUps.has(first)).toBe(false);
    expect((await runsOf(t.integrationId)).length).toBe(2);
  });

  it('drops redeliveries of the same Okta event', async () => {
    const { t, post } = await setup();
    const body = oktaDelivery([{ eventType: 'user.lifecycle.suspend', uuid: `evt-${uniqueSlug()}` }]);
    expect((await post(body)).json().outcome).toBe('triggered');
    const again = await post(body);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ outcome: 'duplicate' });
    const deliveries = await new WebhookRepository(db).listDeliveries(t.integrationId);
    expect(deliveries.map((d) => d.outcome)).toEqual(['duplicate', 'triggered']);
  });

  it('acknowledges events that cannot change the directory without running', async () => {
    const { t, post } = await setup();
    const res = await post(oktaDelivery([{ eventType: 'user.session.start' }]));
    expect(res.json()).toEqual({ outcome: 'ignored' });
    expect(await runsOf(t.integrationId)).toEqual([]);
  });

  it('stores nothing of an ignored delivery (no event id, no delivery row), and still drops redeliveries of relevant ones', async () => {
    const { t, post } = await setup();
    const rows = async () => ({
      events: (await db.selectFrom('webhook_events').select('event_id').where('integration_id', '=', t.integrationId).execute()).map((r) => r.event_id),
      deliveries: (await new WebhookRepository(db).listDeliveries(t.integrationId)).map((d) => d.outcome),
    });
    const login = oktaDelivery([{ eventType: 'user.session.start', uuid: `login-${uniqueSlug()}` }]);
    expect((await post(login)).json()).toEqual({ outcome: 'ignored' });
    // Redelivered: ignored again, not taken for a duplicate.
    expect((await post(login)).json()).toEqual({ outcome: 'ignored' });
    expect(await rows()).toEqual({ events: [], deliveries: [] });

    const uuid = `suspend-${uniqueSlug()}`;
    const suspend = oktaDelivery([{ eventType: 'user.lifecycle.suspend', uuid }]);
    expect((await post(suspend)).json().outcome).toBe('triggered');
    expect((await post(suspend)).json()).toEqual({ outcome: 'duplicate' });
    expect(await rows()).toEqual({ events: [uuid], deliveries: ['duplicate', 'triggered'] });
  });

  it('rejects bad requests with a clear error and no side effect', async () => {
    const { app, t, post, service, secret } = await setup();
    const cases: [Promise<{ statusCode: number; json: () => { error: string } }>, number, RegExp][] = [
      [post(deactivated(), secret, '7d1f0a8e-0000-4000-8000-000000000000'), 404, /no integration/],
      [post(deactivated(), secret, 'not-a-uuid'), 404, /no integration/],
      [post(deactivated(), 'wrong'), 401, /wrong webhook secret/],
      [post(deactivated(), ''), 401, /missing or wrong/],
      [post({ hello: 'world' }), 400, /not an Okta event hook delivery/],
      // Said once is enough: a 503 would have Okta deliver it again and again.
      [post(oktaDelivery([{ eventType: 'user.lifecycle.deactivate', uuid: 'x'.repeat(20_000) }])), 400, /uuid is longer than 200 characters/],
      [post(oktaDelivery([{ eventType: 'user.lifecycle.deactivate', uuid: 'a\u0000b' }])), 400, /uuid holds a control character/],
      [
        app.inject({ method: 'POST', url: `/webhooks/${t.integrationId}`, headers: { authorization: secret, 'content-type': 'application/json' }, payload: '{"eventType": ' }),
        400,
        /JSON/,
      ],
      [
        app.inject({
          method: 'POST',
          url: `/webhooks/${t.integrationId}`,
          headers: { authorization: secret, 'content-type': 'application/json' },
          payload: JSON.stringify({ pad: 'x'.repeat(1_100_000) }),
        }),
        413,
        /too large/i,
      ],
    ];
    for (const [request, status, message] of cases) {
      const res = await request;
      expect(res.statusCode).toBe(status);
      expect(res.json().error).toMatch(message);
    }
    await service.setEnabled(t.integrationId, false);
    const disabled = await post(deactivated());
    expect(disabled.statusCode).toBe(403);
    expect(await runsOf(t.integrationId)).toEqual([]);
    // Refused, not acted on: each refusal of this integration's deliveries is recorded with why.
    const recorded = await new WebhookRepository(db).listDeliveries(t.integrationId);
    expect(recorded.every((d) => d.outcome === 'rejected' && d.runId === null)).toBe(true);
    // (The requests above run at once: their order is not the test's.)
    expect(recorded.map((d) => d.detail).sort()).toEqual([
      'HTTP 400: an Okta event uuid holds a control character',
      'HTTP 400: an Okta event uuid is longer than 200 characters',
      'HTTP 400: not an Okta event hook delivery: expected {"eventType": "com.okta.event_hook", "data": {"events": [...]}}',
      'HTTP 401: missing or wrong webhook secret in the Authorization header',
      'HTTP 401: missing or wrong webhook secret in the Authorization header',
      'HTTP 403: the integration is disabled',
    ]);
  });

  it('records at most 60 rejected deliveries per integration an hour, so a flood fills nothing', async () => {
    const { t, post } = await setup();
    for (let i = 0; i < 70; i++) expect((await post(deactivated(), 'wrong')).statusCode).toBe(401);
    const recorded = await new WebhookRepository(db).listDeliveries(t.integrationId, 1000);
    expect(recorded).toHaveLength(60);
  });

  it('answers 503 while Redis is down, loses nothing, and triggers when delivered again', async () => {
    const down = await setup('redis://127.0.0.1:1');
    const body = oktaDelivery([{ eventType: 'user.lifecycle.deactivate', uuid: `evt-${uniqueSlug()}` }]);
    const refused = await down.post(body);
    expect(refused.statusCode).toBe(503);
    expect(await runsOf(down.t.integrationId)).toEqual([]);
    expect(await new WebhookRepository(db).listDeliveries(down.t.integrationId)).toEqual([]);

    // Okta delivers again once the receiver answers: the same event now triggers a run.
    const { app, queue } = await setup();
    const again = await app.inject({
      method: 'POST',
      url: `/webhooks/${down.t.integrationId}`,
      headers: { authorization: down.secret },
      payload: body,
    });
    expect(again.statusCode).toBe(200);
    expect(again.json().outcome).toBe('triggered');
    expect(await queue.getJob(again.json().runId)).toBeDefined();
  });

  it('answers authentik notifications: the default body and mapped model events trigger, logins do not', async () => {
    const ak = await new FakeAuthentik().start();
    cleanups.push(() => ak.stop());
    const { app, config, service } = await setup();
    const t = await createAuthentikIntegration(db, config, ak);
    cleanups.push(() => service.delete(t.integrationId));
    const { webhookSecret: secret } = await service.rotateWebhookSecret(t.integrationId);
    const post = (body: object) => app.inject({ method: 'POST', url: `/webhooks/${t.integrationId}`, headers: { authorization: `Bearer ${secret}` }, payload: body });
    expect((await post(authentikDefaultBody())).json().outcome).toBe('triggered');
    expect((await post(authentikMappedBody('model_deleted', { app: 'authentik_core', model_name: 'group', pk: 'g', name: 'Ops' }))).json().outcome).toBe('triggered');
    expect((await post(authentikMappedBody('login'))).json()).toEqual({ outcome: 'ignored' });
    const sources = (await new WebhookRepository(db).listDeliveries(t.integrationId)).map((d) => d.source);
    expect(new Set(sources)).toEqual(new Set(['authentik']));
  });
});

/** A connector that reads the IdP at once but holds its snapshot back until released. */
class HeldConnector implements SnapshotSource {
  static gate: Promise<void> = Promise.resolve();
  static reads = 0;
  constructor(private readonly inner: SnapshotSource) {}
  get stats(): ReadStats {
    return this.inner.stats ?? emptyReadStats();
  }
  async readSnapshot(): Promise<Snapshot> {
    const snapshot = await this.inner.readSnapshot();
    HeldConnector.reads += 1;
    await HeldConnector.gate;
    return snapshot;
  }
}

describe('a webhook during a full run', () => {
  it('is never undone by the run that read the IdP before the event', async () => {
    const { config, queue, t, post } = await setup();
    const domain = `${uniqueSlug('w')}.test`;
    const ann = okta.addUser(`ann@${domain}`);
    okta.apps.get('0oaW')!.users.add(ann.id);
    await runNow({ db, config }, t.integrationId);

    let release!: () => void;
    HeldConnector.gate = new Promise((r) => (release = r));
    HeldConnector.reads = 0;
    const worker = await startWorker({
      db,
      config,
      log: silentLog,
      queue,
      // Only this test's runs are held (other tests' integrations are gone with their runs).
      connectorFor: (integration, credentials) => {
        const connector = createConnector(integration, credentials, loopbackEgress);
        return integration.id === t.integrationId ? new HeldConnector(connector) : connector;
      },
    });
    cleanups.push(() => worker.close());

    // A scheduled full run reads the IdP while Ann is still active, then stalls before applying.
    const full = await post(oktaDelivery([{ eventType: 'user.account.update_profile' }]));
    expect(full.json()).toMatchObject({ outcome: 'triggered' });
    const running = async () => (await new RunRepository(db).find(full.json().runId))?.status === 'running';
    await waitFor('the full run to be reading', async () => HeldConnector.reads > 0 && (await running()));

    // Ann is deactivated in Okta; its event hook arrives while that run is in flight.
    okta.updateUser(ann.id, { status: 'SUSPENDED' });
    const event = await post(deactivated());
    expect(event.json().runId).not.toBe(full.json().runId);
    release();

    const ids = [full.json().runId as string, event.json().runId as string];
    await waitFor('both runs to succeed', async () => (await Promise.all(ids.map((id) => new RunRepository(db).find(id)))).every((r) => r?.status === 'succeeded'), {
      timeoutMs: 20_000,
    });
    const [first, second] = await Promise.all(ids.map((id) => new RunRepository(db).find(id)));
    // The stale run applied nothing that undoes the event; the run the event asked for read after it.
    expect(Date.parse(second!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(first!.finishedAt!));
    expect(second!.counts).toMatchObject({ usersDeprovisioned: 1 });
    const users = await new DirectoryRepository(db).listTenantUsers(t.tenantId);
    expect(users.find((u) => u.userName === `ann@${domain}`)).toMatchObject({ active: false, locked: true });
  }, 30_000);
});
