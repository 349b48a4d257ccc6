import type { FastifyInstance, InjectOptions } from 'fastify';
import { sql } from 'kysely';
import { zeroCounts } from '../../src/core/plan.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { RunRepository } from '../../src/db/run.repository.js';
import type { DirsyncQueue } from '../../src/queue/queue.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { startTestServer } from '../support/test-server.js';

const ADMIN = 'admin-token-for-tests-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let queue: DirsyncQueue;
let config: ReturnType<typeof testConfig>;
let okta: FakeOkta;
let close: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, queue, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  const apps = okta.addApp('0oaApi');
  for (let i = 0; i < 3; i++) apps.users.add(okta.addUser(`api${i}@${uniqueSlug()}.test`).id);
});
afterAll(async () => {
  await close();
  await okta.stop();
  await dropDb();
});

const call = (opts: InjectOptions & { token?: string | null }) => {
  const { token = ADMIN, ...rest } = opts;
  return app.inject({ ...rest, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers } });
};

describe('admin API auth', () => {
  it.each([[null], ['wrong-token'], [`${ADMIN}x`]])('rejects token %s on every route the OpenAPI description lists', async (token) => {
    const doc = (await call({ method: 'GET', url: '/api/v1/openapi.json', token: null })).json() as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => [m.toUpperCase(), path] as const));
    expect(routes.length).toBeGreaterThanOrEqual(17);
    for (const [method, path] of routes) {
      const url = path.replace('{id}', '00000000-0000-4000-8000-000000000000').replace('{slug}', 'acme');
      const res = await call({ method: method as InjectOptions['method'], url, token, payload: ['POST', 'PATCH'].includes(method) ? {} : undefined });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json()).toEqual({ error: { code: 'unauthorized', message: 'missing or wrong bearer token' } });
    }
  });

  it('serves the OpenAPI description', async () => {
    const res = await call({ method: 'GET', url: '/api/v1/openapi.json', token: null });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/tenants', '/api/v1/integrations', '/api/v1/integrations/{id}/sync', '/api/v1/runs/{id}/approve']),
    );
  });
});

/** A tenant of its own, made through the API. */
async function newTenant(): Promise<string> {
  const slug = uniqueSlug('api');
  const res = await call({ method: 'POST', url: '/api/v1/tenants', payload: { slug, name: 'API Corp' } });
  expect(res.statusCode, res.body).toBe(201);
  return slug;
}

/** A tenant with an Okta integration of its own on the fake org's app 0oaApi (3 users), made through the API. */
async function newIntegration(): Promise<{ slug: string; integrationId: string }> {
  const slug = await newTenant();
  const res = await call({ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: '0oaApi' } });
  expect(res.statusCode, res.body).toBe(201);
  return { slug, integrationId: res.json().id as string };
}

/** Queues a run through the API and runs it here; returns its id. */
async function syncNow(integrationId: string): Promise<string> {
  const queued = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/sync`, payload: {} });
  expect(queued.statusCode, queued.body).toBe(202);
  expect((await reconcile({ db, config, log: silentLog }, queued.json().id)).kind).toBe('finished');
  return queued.json().id as string;
}

/** A sample's value in Prometheus text, 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

// Each test makes the tenants, integrations and runs it needs: none relies on another having run.
describe('admin API', () => {
  it('creates and lists tenants, refusing bad and duplicate slugs', async () => {
    const slug = uniqueSlug('api');
    const created = await call({ method: 'POST', url: '/api/v1/tenants', payload: { slug, name: 'API Corp' } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ slug, name: 'API Corp' });
    expect((await call({ method: 'POST', url: '/api/v1/tenants', payload: { slug } })).statusCode).toBe(409);
    const bad = await call({ method: 'POST', url: '/api/v1/tenants', payload: { slug: 'Not A Slug' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('bad_request');
    expect((await call({ method: 'POST', url: '/api/v1/tenants', payload: { name: 'x' } })).statusCode).toBe(400);
    // Pages of one, followed to the end, list it once.
    const seen: string[] = [];
    for (let offset: number | null = 0; offset !== null; ) {
      const page = (await call({ method: 'GET', url: `/api/v1/tenants?limit=1&offset=${offset}` })).json() as { items: { slug: string }[]; next: number | null };
      expect(page.items).toHaveLength(1);
      seen.push(...page.items.map((t) => t.slug));
      offset = page.next;
    }
    expect(seen.filter((s) => s === slug)).toHaveLength(1);
  });

  it('creates an integration with write-only credentials, and updates, lists and shows it', async () => {
    const slug = await newTenant();
    const res = await call({
      method: 'POST',
      url: '/api/v1/integrations',
      payload: { tenant: slug, provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: '0oaApi', threshold: 30 },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ tenant: slug, provider: 'okta', thresholdPercent: 30, webhookSecret: expect.any(String) });
    expect(JSON.stringify(body)).not.toContain(okta.token);
    const integrationId = body.id as string;

    const patched = await call({ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { every: '2h', deprovision: 'remove-access' } });
    expect(patched.json()).toMatchObject({ schedule: 'every 2h', deprovisionMode: 'remove-access' });
    expect((await queue.getJobScheduler(`schedule-${integrationId}`))?.every).toBe(7_200_000);
    const shown = await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}` });
    expect(JSON.stringify(shown.json())).not.toContain(okta.token);
    const listed = await call({ method: 'GET', url: `/api/v1/integrations?tenant=${slug}` });
    expect(listed.json().items.map((i: { id: string }) => i.id)).toEqual([integrationId]);
  });

  it('checks the IdP before storing, and on demand (POST /integrations/{id}/test)', async () => {
    const { slug, integrationId } = await newIntegration();
    expect((await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/test` })).json()).toMatchObject({
      id: integrationId,
      provider: 'okta',
      auth: 'token',
      ok: true,
      checks: expect.arrayContaining([{ endpoint: 'GET /api/v1/apps/0oaApi/users', ok: true }]),
    });
    const refused = await call({ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: okta.url, token: 'not-the-token' } });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().error).toMatchObject({
      code: 'verification_failed',
      message: expect.stringMatching(/^the IdP check failed at 1 endpoint, so nothing was stored/),
      check: { ok: false, checks: expect.arrayContaining([expect.objectContaining({ ok: false, problem: 'unauthorized' })]) },
    });
    expect(JSON.stringify(refused.json())).not.toContain('not-the-token');
    const patched = await call({ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { oktaAppId: '0oaGone' } });
    expect(patched.statusCode).toBe(422);
    expect(patched.json().error.check.checks[0]).toMatchObject({ problem: 'not-found' });
    // Nothing changed: the app id is the one that passed.
    expect((await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}` })).json()).toMatchObject({ oktaAppId: '0oaApi' });
  });

  it('answers bad integration input with a 4xx naming the problem', async () => {
    const { slug, integrationId } = await newIntegration();
    const cases: [InjectOptions, number, RegExp][] = [
      [{ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'ldap', baseUrl: 'https://x', token: 't' } }, 400, /provider/],
      [{ method: 'POST', url: '/api/v1/integrations', payload: { tenant: 'nope', provider: 'okta', baseUrl: 'https://x', token: 't' } }, 404, /tenant "nope" does not exist/],
      [{ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: 'not a url', token: 't' } }, 400, /is not a URL/],
      [{ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: 'https://x' } }, 400, /^token or oktaClientId with oktaPrivateKey is required/],
      [{ method: 'POST', url: '/api/v1/endpoints', payload: { url: 'ftp://x.test/hook' } }, 400, /^url must be an http\(s\) URL/],
      [{ method: 'POST', url: '/api/v1/endpoints', payload: { url: 'https://x.test/hook', types: ['user.nope'] } }, 400, /^types: user\.nope is not an event type/],
      [{ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: 'https://x', oktaClientId: '0oa1', oktaPrivateKey: 'nope' } }, 400, /is not a private key/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { every: 'often' } }, 400, /is not a duration/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { threshold: 150 } }, 400, /threshold/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { threshold: 1e-300 } }, 400, /^threshold must be a percentage from 0\.01 to 100/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { cron: '* * * * * *' } }, 400, /^cron "\* \* \* \* \* \*" must have exactly five fields/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { every: '106751991167d' } }, 400, /too long: the maximum is 365d/],
      [{ method: 'POST', url: '/api/v1/tenants', payload: { slug: uniqueSlug('nul'), name: 'a\u0000b' } }, 400, /^name holds a control character/],
      [{ method: 'POST', url: '/api/v1/tenants', payload: { slug } }, 409, /already exists/],
      [{ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { colour: 'red' } }, 400, /additional properties|colour/],
      [{ method: 'GET', url: '/api/v1/integrations/00000000-0000-4000-8000-000000000000' }, 404, /does not exist/],
      [{ method: 'GET', url: '/api/v1/runs/not-a-run' }, 404, /does not exist/],
      [{ method: 'GET', url: '/api/v1/nothing-here' }, 404, /no route/],
      [{ method: 'GET', url: '/api/v1/tenants?limit=0' }, 400, /limit/],
    ];
    for (const [req, status, message] of cases) {
      const res = await call(req);
      expect(res.statusCode, `${req.method} ${req.url}`).toBe(status);
      expect(res.json().error.message, `${req.method} ${req.url}`).toMatch(message);
    }
  });

  it("shows an account's person with their accounts across tenants, groups, lock and history (GET /accounts/:id)", async () => {
    const a = await newIntegration();
    const b = await newIntegration();
    await syncNow(a.integrationId);
    await syncNow(b.integrationId);
    const users = (await call({ method: 'GET', url: `/api/v1/tenants/${a.slug}/users` })).json().items as { id: string; userName: string }[];
    const shown = await call({ method: 'GET', url: `/api/v1/accounts/${users[0]!.id}` });
    expect(shown.statusCode, shown.body).toBe(200);
    const view = shown.json() as { person: { userName: string }; accounts: { id: string; tenant: string; locked: boolean; history: { type: string }[] }[] };
    expect(view.person.userName.toLowerCase()).toBe(users[0]!.userName.toLowerCase());
    // The same person in both tenants (one per userName), the asked-for account first.
    expect(view.accounts.map((x) => x.tenant)).toEqual([a.slug, b.slug].sort((x, y) => (x === a.slug ? -1 : y === a.slug ? 1 : 0)));
    expect(view.accounts[0]!.id).toBe(users[0]!.id);
    expect(view.accounts[0]!.history.map((e) => e.type)).toContain('user.created');
    expect(view.accounts[0]!.locked).toBe(false);
    expect((await call({ method: 'GET', url: '/api/v1/accounts/00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
    expect((await call({ method: 'GET', url: '/api/v1/accounts/nope' })).statusCode).toBe(404);
  });

  it("pages a group's members and finds one (GET /groups/:id/members)", async () => {
    const grp = okta.addApp('0oaGrp');
    const group = okta.addGroup('Engineers');
    const members = ['zoe', 'adam', 'mia'].map((n) => okta.addUser(`${n}@${uniqueSlug()}.test`));
    for (const m of members) okta.addMember(group.id, m.id);
    grp.groups.add(group.id);
    grp.users.add(okta.addUser(`outsider@${uniqueSlug()}.test`).id);
    const slug = await newTenant();
    const created = await call({ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: '0oaGrp' } });
    await syncNow(created.json().id);
    const groups = (await call({ method: 'GET', url: `/api/v1/tenants/${slug}/groups` })).json().items as { id: string; name: string }[];
    const id = groups.find((g) => g.name === 'Engineers')!.id;
    const page = await call({ method: 'GET', url: `/api/v1/groups/${id}/members?limit=2` });
    expect(page.json().items.map((u: { userName: string }) => u.userName.split('@')[0])).toEqual(['adam', 'mia']);
    expect(page.json().next).toBe(2);
    expect((await call({ method: 'GET', url: `/api/v1/groups/${id}/members?q=ZOE` })).json().items).toHaveLength(1);
    expect((await call({ method: 'GET', url: `/api/v1/groups/${id}/members?q=outsider` })).json().items).toEqual([]);
    expect((await call({ method: 'GET', url: '/api/v1/groups/00000000-0000-4000-8000-000000000000/members' })).statusCode).toBe(404);
  });

  it("pages an endpoint's deliveries with limit and offset, newest first", async () => {
    const created = await call({ method: 'POST', url: '/api/v1/endpoints', payload: { url: 'https://receiver.test/hook' } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    await sql`
      insert into event_deliveries (endpoint_id, event_id, event_cursor, event_type, status, attempts, updated_at)
      select ${id}::uuid, n, '1.' || n, 'user.created', 'delivered', 1, now() - (n || ' seconds')::interval from generate_series(1, 3) n`.execute(db);
    const first = await call({ method: 'GET', url: `/api/v1/endpoints/${id}/deliveries?limit=2` });
    expect(first.json()).toMatchObject({ items: [{ eventId: '1' }, { eventId: '2' }], next: 2 });
    const rest = await call({ method: 'GET', url: `/api/v1/endpoints/${id}/deliveries?limit=2&offset=2` });
    expect(rest.json()).toMatchObject({ items: [{ eventId: '3' }], next: null });
  });

  it('syncs now (and dry-runs), lists runs, shows a run with its change log', async () => {
    const { slug, integrationId } = await newIntegration();
    const queued = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/sync`, payload: {} });
    expect(queued.statusCode).toBe(202);
    expect(queued.json()).toMatchObject({ status: 'queued', trigger: 'manual', dryRun: false });
    expect(await queue.getJob(queued.json().id)).toBeDefined();
    const outcome = await reconcile({ db, config, log: silentLog }, queued.json().id);
    expect(outcome.kind).toBe('finished');

    const dry = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/sync`, payload: { dryRun: true } });
    expect(dry.json()).toMatchObject({ dryRun: true });

    const runs = await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}/runs?limit=1` });
    expect(runs.json()).toMatchObject({ items: [expect.objectContaining({ id: dry.json().id })], next: 1 });
    const shown = await call({ method: 'GET', url: `/api/v1/runs/${queued.json().id}` });
    expect(shown.json()).toMatchObject({ status: 'succeeded', counts: expect.objectContaining({ usersCreated: 3 }) });
    expect(shown.json().changes).toHaveLength(3);

    const users = await call({ method: 'GET', url: `/api/v1/tenants/${slug}/users` });
    expect(users.json().items).toHaveLength(3);
    // Paged and searched in Postgres, in userName order.
    const names = (users.json().items as { userName: string }[]).map((u) => u.userName);
    const first = await call({ method: 'GET', url: `/api/v1/tenants/${slug}/users?limit=2` });
    expect(first.json()).toMatchObject({ next: 2 });
    expect(first.json().items.map((u: { userName: string }) => u.userName)).toEqual(names.slice(0, 2));
    expect((await call({ method: 'GET', url: `/api/v1/tenants/${slug}/users?limit=2&offset=2` })).json()).toMatchObject({ items: [{ userName: names[2] }], next: null });
    const found = await call({ method: 'GET', url: `/api/v1/tenants/${slug}/users?q=${encodeURIComponent(names[1]!.slice(0, 4).toUpperCase())}` });
    expect(found.json().items.map((u: { userName: string }) => u.userName)).toContain(names[1]);
    // Wildcards are text to look for, not patterns.
    expect((await call({ method: 'GET', url: `/api/v1/tenants/${slug}/users?q=%25` })).json()).toEqual({ items: [], next: null });
    expect((await call({ method: 'GET', url: `/api/v1/tenants/${slug}/groups` })).json()).toEqual({ items: [], next: null });
    expect((await call({ method: 'GET', url: '/api/v1/tenants/nope/users' })).statusCode).toBe(404);
  });

  it('reads events after a cursor (GET /events), per tenant, and refuses a bad cursor, limit or tenant', async () => {
    const { slug, integrationId } = await newIntegration();
    const queued = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/sync`, payload: {} });
    await reconcile({ db, config, log: silentLog }, queued.json().id);
    const page = await call({ method: 'GET', url: `/api/v1/events?tenant=${slug}` });
    expect(page.statusCode).toBe(200);
    const { events, next } = page.json() as { events: Array<{ type: string; cursor: string; tenant: string; runId: string }>; next: string };
    expect(events.map((e) => [e.type, e.tenant, e.runId])).toEqual(Array(3).fill(['user.created', slug, queued.json().id]));
    expect(next).toBe(events[2]!.cursor);
    const after = await call({ method: 'GET', url: `/api/v1/events?tenant=${slug}&after=${events[0]!.cursor}&limit=1` });
    expect(after.json().events.map((e: { cursor: string }) => e.cursor)).toEqual([events[1]!.cursor]);
    expect((await call({ method: 'GET', url: `/api/v1/events?tenant=${slug}&after=${next}` })).json()).toEqual({ events: [], next });
    expect((await call({ method: 'GET', url: '/api/v1/events?after=not-a-cursor' })).statusCode).toBe(400);
    expect((await call({ method: 'GET', url: '/api/v1/events?limit=5000' })).statusCode).toBe(400);
    expect((await call({ method: 'GET', url: '/api/v1/events?tenant=nope' })).statusCode).toBe(404);
  });

  it('approves only held runs', async () => {
    const { integrationId } = await newIntegration();
    const succeeded = await syncNow(integrationId);
    expect((await call({ method: 'GET', url: `/api/v1/runs/${succeeded}` })).json()).toMatchObject({ status: 'succeeded' });
    const res = await call({ method: 'POST', url: `/api/v1/runs/${succeeded}/approve` });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/is succeeded, not held/);
  });

  it('/metrics exposes runs, changes, IdP requests, webhook deliveries and queue depth in Prometheus format', async () => {
    // Totals cover the whole database: what this test's own run adds is what it checks.
    const runsSeries = 'dirsync_runs_finished_total{status="succeeded",trigger="manual",dry_run="false"}';
    const createdSeries = 'dirsync_changes_applied_total{kind="usersCreated"}';
    const before = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const { integrationId } = await newIntegration();
    await syncNow(integrationId);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(sample(text, runsSeries) - sample(before, runsSeries)).toBe(1);
    expect(sample(text, createdSeries) - sample(before, createdSeries)).toBe(3);
    expect(text).toMatch(/^dirsync_idp_requests_total\{provider="okta",kind="request"\} [1-9]\d*$/m);
    expect(text).toMatch(/^# TYPE dirsync_webhook_deliveries_total counter$/m);
    expect(text).toMatch(/^dirsync_queue_jobs\{state="waiting"\} \d+$/m);
    expect(text).toMatch(/^# TYPE dirsync_run_duration_seconds histogram$/m);
  });

  it('lists webhook deliveries, rotates the secret, disables, enables and deletes', async () => {
    const { integrationId } = await newIntegration();
    expect((await call({ method: 'PATCH', url: `/api/v1/integrations/${integrationId}`, payload: { every: '2h' } })).statusCode).toBe(200);
    expect(await queue.getJobScheduler(`schedule-${integrationId}`)).toBeDefined();
    expect((await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}/webhooks` })).json()).toEqual({ items: [], next: null });
    const rotated = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/rotate-webhook-secret` });
    expect(rotated.json()).toEqual({ id: integrationId, webhookSecret: expect.any(String), previousWebhookSecretValidUntil: expect.any(String) });
    expect((await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/disable` })).json()).toMatchObject({ enabled: false });
    expect(await queue.getJobScheduler(`schedule-${integrationId}`)).toBeUndefined();
    const refused = await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/sync`, payload: {} });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.message).toMatch(/is disabled/);
    expect((await call({ method: 'POST', url: `/api/v1/integrations/${integrationId}/enable` })).json()).toMatchObject({ enabled: true });
    // Deleting asks for the id again, so a stray DELETE cannot wipe a tenant's state.
    const unconfirmed = await call({ method: 'DELETE', url: `/api/v1/integrations/${integrationId}` });
    expect(unconfirmed.statusCode).toBe(400);
    expect(unconfirmed.json().error.message).toBe(
      `deleting integration ${integrationId} removes its groups, memberships and run history: repeat the request with ?confirm=${integrationId} to confirm`,
    );
    expect((await call({ method: 'DELETE', url: `/api/v1/integrations/${integrationId}?confirm=wrong` })).statusCode).toBe(400);
    expect((await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}` })).statusCode).toBe(200);
    expect((await call({ method: 'DELETE', url: `/api/v1/integrations/${integrationId}?confirm=${integrationId}` })).statusCode).toBe(204);
    expect((await call({ method: 'GET', url: `/api/v1/integrations/${integrationId}` })).statusCode).toBe(404);
  });
});

describe('admin API without a token configured', () => {
  it('is off, and says how to turn it on', async () => {
    const off = await startTestServer(db, testConfig({ DATABASE_URL: process.env.DATABASE_URL! }));
    const res = await off.app.inject({ method: 'GET', url: '/api/v1/tenants', headers: { authorization: 'Bearer anything' } });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.message).toMatch(/set DIRSYNC_ADMIN_TOKEN/);
    await off.close();
  });
});

describe('/admin pages', () => {
  it('send a signed-out visitor to the login form, and sign in with the admin token', async () => {
    const anon = await app.inject({ method: 'GET', url: '/admin' });
    expect(anon.statusCode).toBe(302);
    expect(anon.headers.location).toBe('/admin/login?next=%2Fadmin');
    const wrong = await app.inject({ method: 'POST', url: '/admin/login', payload: 'token=nope&next=/admin', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(wrong.headers.location).toMatch(/^\/admin\/login\?failed=1/);
    const ok = await app.inject({ method: 'POST', url: '/admin/login', payload: `token=${ADMIN}&next=//evil.example`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(ok.headers.location).toBe('/admin');
    const cookie = ok.cookies.find((c) => c.name === 'dirsync_admin')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    const home = await app.inject({ method: 'GET', url: '/admin', cookies: { dirsync_admin: cookie.value } });
    expect(home.statusCode).toBe(200);
    expect(home.headers['content-type']).toMatch(/text\/html/);
    expect(home.body).toContain('<h1>Integrations</h1>');
  });

  it('mount bull-board behind the same auth', async () => {
    expect((await app.inject({ method: 'GET', url: '/admin/queues' })).statusCode).toBe(302);
    const board = await call({ method: 'GET', url: '/admin/queues' });
    expect(board.statusCode).toBe(200);
    expect(board.body).toMatch(/dirsync queue|bull/i);
    const api = await call({ method: 'GET', url: '/admin/queues/api/queues' });
    expect(api.statusCode).toBe(200);
    expect(api.json().queues[0].name).toBe(config.queueName);
  });

  it('refuse a cross-site form post', async () => {
    const res = await call({ method: 'POST', url: '/admin/runs/x/approve', headers: { origin: 'https://evil.example' } });
    expect(res.statusCode).toBe(403);
  });

  it("show a run's skipped records (warnings) escaped, in the API and /metrics", async () => {
    const { integrationId } = await newIntegration();
    const series = 'dirsync_records_skipped_total{provider="okta"}';
    const before = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(integrationId, 'manual', false);
    const warning = { externalId: '00uBad', subject: '<b>ann@x.test</b>', reason: 'IdP user 00uBad has a NUL character in attributes.nickName, which Postgres cannot store: remove it in the IdP' };
    await runs.finish(run.id, { status: 'succeeded', counts: zeroCounts(), stats: {}, warnings: [warning] });
    const page = await call({ method: 'GET', url: `/admin/runs/${run.id}` });
    expect(page.body).toContain('1 warning (IdP records skipped, and how the run read):');
    expect(page.body).toContain('&lt;b&gt;ann@x.test&lt;/b&gt;');
    expect(page.body).not.toContain('<b>ann@x.test</b>');
    expect((await call({ method: 'GET', url: `/api/v1/runs/${run.id}` })).json()).toMatchObject({ warnings: [warning] });
    const after = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(sample(after, series) - sample(before, series)).toBe(1);
  });

  it('escape what they show', async () => {
    const slug = uniqueSlug('xss');
    await call({ method: 'POST', url: '/api/v1/tenants', payload: { slug } });
    const created = await call({ method: 'POST', url: '/api/v1/integrations', payload: { tenant: slug, provider: 'okta', baseUrl: okta.url, token: 't', verify: false } });
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(created.json().id, 'manual', true);
    await runs.recordChanges(run.id, [{ kind: 'user.created', externalId: '00u1', subject: '<img src=x onerror=alert(1)>', detail: null }], 'planned');
    const page = await call({ method: 'GET', url: `/admin/runs/${run.id}` });
    expect(page.body).not.toContain('<img src=x');
    expect(page.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });
});
