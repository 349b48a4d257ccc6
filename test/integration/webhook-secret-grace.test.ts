import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { WebhookRepository } from '../../src/db/webhook.repository.js';
import { UserError } from '../../src/errors.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import type { DirsyncQueue } from '../../src/queue/queue.js';
import { createTestDatabase, testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { startTestServer } from '../support/test-server.js';
import { createOktaIntegration } from '../support/fixtures.js';
import { oktaDelivery } from '../support/webhook-bodies.js';

const ADMIN = 'admin-token-for-grace-tests-0123';
const HOUR = 3_600_000;
let db: Db;
let dbUrl: string;
let dropDb: () => Promise<void>;
let okta: FakeOkta;
let app: FastifyInstance;
let queue: DirsyncQueue;
let config: ReturnType<typeof testConfig>;
let service: IntegrationService;
let close: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb, url: dbUrl } = created);
  okta = await new FakeOkta().start();
  okta.addApp('0oaGrace');
  config = testConfig({ DATABASE_URL: dbUrl, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, queue, close } = await startTestServer(db, config));
  service = new IntegrationService(db, config);
});
afterAll(async () => {
  await close();
  await okta.stop();
  await dropDb();
});

const newIntegration = async () => (await createOktaIntegration(db, config, okta, { appId: '0oaGrace' })).integrationId;
const deliver = (id: string, authorization: string, body: unknown = oktaDelivery([{ eventType: 'user.lifecycle.deactivate' }])) =>
  app.inject({ method: 'POST', url: `/webhooks/${id}`, headers: { authorization }, payload: body as object });
const verify = (id: string, authorization: string) =>
  app.inject({ method: 'GET', url: `/webhooks/${id}`, headers: { authorization, 'x-okta-verification-challenge': 'c-1' } });
const api = (method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload ? { payload } : {}) });
/** Ends the previous secret's grace period by moving its expiry into the past: no sleeping. */
const expirePrevious = (id: string) =>
  sql`update integrations set webhook_secret_previous_expires_at = now() - interval '1 second' where id = ${id}::uuid`.execute(db);
const previousColumns = async (id: string) =>
  db.selectFrom('integrations').select(['webhook_secret_previous_hash', 'webhook_secret_previous_expires_at']).where('id', '=', id).executeTakeFirstOrThrow();
const eventRows = async (id: string) =>
  Number((await db.selectFrom('webhook_events').select((eb) => eb.fn.countAll().as('n')).where('integration_id', '=', id).executeTakeFirstOrThrow()).n);
/** Milliseconds from now until an ISO time. */
const fromNow = (iso: string | null) => new Date(iso!).getTime() - Date.now();

describe('webhook secret rotation with a grace period', () => {
  it('keeps the old secret working until the grace period ends, then refuses it exactly like a wrong one', async () => {
    const id = await newIntegration();
    const { webhookSecret: old } = await service.rotateWebhookSecret(id, '0');
    const rotation = await service.rotateWebhookSecret(id, '1h');
    expect(rotation).toEqual({ id, webhookSecret: expect.any(String), previousWebhookSecretValidUntil: expect.any(String) });
    expect(fromNow(rotation.previousWebhookSecretValidUntil)).toBeGreaterThan(HOUR - 60_000);
    expect(fromNow(rotation.previousWebhookSecretValidUntil)).toBeLessThanOrEqual(HOUR);
    expect(service.view(await service.get(id)).previousWebhookSecretValidUntil).toBe(rotation.previousWebhookSecretValidUntil);

    // Within the window: both secrets, bare or as a bearer token, on every path that checks one.
    for (const secret of [old, rotation.webhookSecret]) {
      for (const authorization of [secret, `Bearer ${secret}`]) {
        const res = await deliver(id, authorization);
        expect(res.statusCode).toBe(200);
        expect(res.json().outcome).toBe('triggered');
      }
      expect((await verify(id, secret)).json()).toEqual({ verification: 'c-1' });
      expect((await deliver(id, secret, { not: 'an okta delivery' })).statusCode).toBe(400);
    }

    await expirePrevious(id);
    expect(service.view(await service.get(id)).previousWebhookSecretValidUntil).toBeNull();
    const deliveries = (await new WebhookRepository(db).listDeliveries(id)).length;
    const events = await eventRows(id);
    const wrong = await deliver(id, 'not-the-secret');
    for (const authorization of [old, `Bearer ${old}`]) {
      const res = await deliver(id, authorization);
      expect([res.statusCode, res.json()]).toEqual([wrong.statusCode, wrong.json()]);
      expect(res.statusCode).toBe(401);
    }
    expect((await verify(id, old)).statusCode).toBe(401);
    expect((await deliver(id, old, { not: 'an okta delivery' })).statusCode).toBe(401);
    // A refused delivery is recorded as rejected (401, why), and nothing of its events.
    const after = await new WebhookRepository(db).listDeliveries(id);
    expect(after.length - deliveries).toBe(4);
    expect(after.slice(0, 4).every((d) => d.outcome === 'rejected' && d.detail?.startsWith('HTTP 401:') && d.eventIds.length === 0)).toBe(true);
    expect(await eventRows(id)).toBe(events);
    // The new secret is unaffected.
    expect((await deliver(id, rotation.webhookSecret)).statusCode).toBe(200);
  });

  it('with grace 0 the old secret stops at once and no previous secret is kept', async () => {
    const id = await newIntegration();
    const { webhookSecret: old } = await service.rotateWebhookSecret(id, '1h');
    const rotation = await service.rotateWebhookSecret(id, '0');
    expect(rotation.previousWebhookSecretValidUntil).toBeNull();
    expect(await previousColumns(id)).toEqual({ webhook_secret_previous_hash: null, webhook_secret_previous_expires_at: null });
    expect((await deliver(id, old)).statusCode).toBe(401);
    expect((await verify(id, old)).statusCode).toBe(401);
    expect((await deliver(id, rotation.webhookSecret)).statusCode).toBe(200);
    expect(service.view(await service.get(id)).previousWebhookSecretValidUntil).toBeNull();
  });

  it('rotating again within the window keeps only the secret just retired', async () => {
    const id = await newIntegration();
    const { webhookSecret: first } = await service.rotateWebhookSecret(id, '0');
    const { webhookSecret: second } = await service.rotateWebhookSecret(id, '1h');
    const third = await service.rotateWebhookSecret(id, '2h');
    expect(fromNow(third.previousWebhookSecretValidUntil)).toBeGreaterThan(2 * HOUR - 60_000);
    expect((await deliver(id, first)).statusCode).toBe(401);
    expect((await deliver(id, second)).statusCode).toBe(200);
    expect((await deliver(id, third.webhookSecret)).statusCode).toBe(200);
  });

  it('takes the default grace period from DIRSYNC_WEBHOOK_SECRET_GRACE, else 24 hours', async () => {
    const id = await newIntegration();
    expect(fromNow((await service.rotateWebhookSecret(id)).previousWebhookSecretValidUntil)).toBeGreaterThan(24 * HOUR - 60_000);
    const short = new IntegrationService(db, testConfig({ DATABASE_URL: dbUrl, DIRSYNC_WEBHOOK_SECRET_GRACE: '15m' }));
    const until = (await short.rotateWebhookSecret(id)).previousWebhookSecretValidUntil;
    expect(fromNow(until)).toBeGreaterThan(15 * 60_000 - 60_000);
    expect(fromNow(until)).toBeLessThanOrEqual(15 * 60_000);
    const none = new IntegrationService(db, testConfig({ DATABASE_URL: dbUrl, DIRSYNC_WEBHOOK_SECRET_GRACE: '0' }));
    expect((await none.rotateWebhookSecret(id)).previousWebhookSecretValidUntil).toBeNull();
  });

  it('refuses a bad grace period with one sentence and changes nothing', async () => {
    const id = await newIntegration();
    const { webhookSecret: current } = await service.rotateWebhookSecret(id, '0');
    for (const grace of ['soon', '', '-1h', '1.5h', '31d']) {
      const attempt = service.rotateWebhookSecret(id, grace);
      await expect(attempt).rejects.toThrow(UserError);
      await expect(attempt).rejects.toThrow(`--grace must be 0 or a duration of at most 30d, such as 15m, 1h or 7d, not "${grace}"`);
    }
    expect(await previousColumns(id)).toEqual({ webhook_secret_previous_hash: null, webhook_secret_previous_expires_at: null });
    expect((await deliver(id, current)).statusCode).toBe(200);
  });

  it('through the admin API: an optional {"grace"} body, and the integration shows the window', async () => {
    const id = await newIntegration();
    const url = `/api/v1/integrations/${id}/rotate-webhook-secret`;
    const first = await api('POST', url, { grace: '0' });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ id, webhookSecret: expect.any(String), previousWebhookSecretValidUntil: null });

    const second = await api('POST', url, { grace: '1h' });
    expect(second.json()).toEqual({ id, webhookSecret: expect.any(String), previousWebhookSecretValidUntil: expect.any(String) });
    expect(fromNow(second.json().previousWebhookSecretValidUntil)).toBeGreaterThan(HOUR - 60_000);
    expect((await api('GET', `/api/v1/integrations/${id}`)).json().previousWebhookSecretValidUntil).toBe(second.json().previousWebhookSecretValidUntil);
    expect((await deliver(id, first.json().webhookSecret)).statusCode).toBe(200);

    const noBody = await api('POST', url);
    expect(noBody.statusCode).toBe(200);
    expect(fromNow(noBody.json().previousWebhookSecretValidUntil)).toBeGreaterThan(24 * HOUR - 60_000);
    expect((await api('POST', url, {})).json().previousWebhookSecretValidUntil).toEqual(expect.any(String));

    const bad = await api('POST', url, { grace: 'soon' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^grace must be 0 or a duration of at most 30d, such as 15m, 1h or 7d, not "soon"/);
    expect((await api('POST', url, { grace: '1h', extra: true })).statusCode).toBe(400);

    await expirePrevious(id);
    expect((await api('GET', `/api/v1/integrations/${id}`)).json().previousWebhookSecretValidUntil).toBeNull();
    const listed = (await api('GET', '/api/v1/integrations')).json().items as { id: string; previousWebhookSecretValidUntil: unknown }[];
    expect(listed.find((i) => i.id === id)?.previousWebhookSecretValidUntil).toBeNull();
  });
});
