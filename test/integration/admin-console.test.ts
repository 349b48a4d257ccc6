import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { SESSION_TTL_MS, sessionValue } from '../../src/http/admin-session.js';
import { SIGN_IN_ATTEMPTS_PER_MINUTE } from '../../src/http/admin-pages.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

// The console's pages through fastify inject: health, held plans, reject, sessions, escaping.
const ADMIN = 'console-admin-token-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let config: ReturnType<typeof testConfig>;
let okta: FakeOkta;
let heldRunId: string;
let healthyId: string;
let heldId: string;
let revokedId: string;
let failingId: string;
const hostile = '<script>alert("tenant")</script>';

const form = (payload: Record<string, string>) => ({ payload: new URLSearchParams(payload).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
const call = (opts: InjectOptions) => app.inject({ ...opts, headers: { authorization: `Bearer ${ADMIN}`, ...opts.headers } });

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  const oktaApp = okta.addApp('0oaConsole');
  const domain = `${uniqueSlug('c')}.test`;
  const ids = Array.from({ length: 10 }, (_, i) => okta.addUser(`person${i}@${domain}`).id);
  for (const id of ids) oktaApp.users.add(id);

  // One tenant, two integrations: a held one and a healthy one, told apart by id.
  const slug = uniqueSlug('acme');
  await new TenantRepository(db).create(slug, hostile);
  const held = await createOktaIntegration(db, config, okta, { appId: '0oaConsole', tenantSlug: slug });
  heldId = held.integrationId;
  await runNow({ db, config }, held.integrationId);
  const healthy = await createOktaIntegration(db, config, okta, { appId: '0oaConsole', tenantSlug: slug });
  healthyId = healthy.integrationId;
  await runNow({ db, config }, healthyId);
  for (const id of ids.slice(0, 8)) oktaApp.users.delete(id);
  const heldRun = await runNow({ db, config }, held.integrationId);
  expect(heldRun.status).toBe('held');
  heldRunId = heldRun.id;

  // Okta refuses a revoked token (401): invalid credentials.
  const revoked = await createOktaIntegration(db, config, okta, { appId: '0oaConsole' });
  revokedId = revoked.integrationId;
  await new IntegrationService(db, config).update(revokedId, { token: 'revoked-token', verify: false });
  expect((await runNow({ db, config }, revokedId)).status).toBe('failed');

  // An app Okta does not have: failing, with its error.
  const failing = await createOktaIntegration(db, config, okta, { appId: '0oaConsole' });
  failingId = failing.integrationId;
  await new IntegrationService(db, config).update(failingId, { oktaAppId: '0oaGone', verify: false });
  expect((await runNow({ db, config }, failingId)).status).toBe('failed');
}, 60_000);

afterAll(async () => {
  await close?.();
  await okta?.stop();
  await dropDb?.();
});

function rowOf(body: string, integrationId: string): string {
  const start = body.indexOf(`data-integration="${integrationId}"`);
  expect(start, `row of ${integrationId}`).toBeGreaterThan(0);
  return body.slice(start, body.indexOf('</tr>', start));
}

describe('/admin integrations', () => {
  it('shows each integration with its health, counts and actions, and the held plan first', async () => {
    const home = await call({ method: 'GET', url: '/admin' });
    expect(home.statusCode).toBe(200);
    const body = home.body;
    expect(body.indexOf('wait')).toBeLessThan(body.indexOf('id="integrations"'));
    expect(body).toMatch(/1 plan waits<\/span>|1 plan waits for approval/);
    expect(body).toContain(`/admin/runs/${heldRunId}/approve`);

    const healthy = rowOf(body, healthyId);
    expect(healthy).toContain('class="health healthy"');
    // The first integration owns the ten accounts (the second finds them taken): counts per integration.
    const heldRow = rowOf(body, heldId);
    expect(heldRow).toContain('class="health held"');
    expect(heldRow).toMatch(/<td class="num">10<\/td>/);
    expect(healthy).toMatch(/<td class="num">0<\/td>/);
    expect(healthy).toContain('Test connection');
    expect(healthy).toContain('Sync now');
    expect(healthy).toContain(healthyId);

    const revoked = rowOf(body, revokedId);
    expect(revoked).toContain('class="health invalid-credentials"');
    expect(revoked).toMatch(/Okta rejected the API token/);

    const failing = rowOf(body, failingId);
    expect(failing).toContain('class="health failing"');
    expect(failing).toMatch(/0oaGone/);
  });

  it('escapes hostile names everywhere it shows them', async () => {
    const home = await call({ method: 'GET', url: '/admin' });
    expect(home.body).not.toContain(hostile);
    expect(home.body).toContain('&lt;script&gt;alert(&quot;tenant&quot;)&lt;/script&gt;');
    const held = await call({ method: 'GET', url: '/admin/held' });
    expect(held.body).not.toContain(hostile);
  });

  it("shows an update's fields as previous → new in the change log", async () => {
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(healthyId, 'manual', true);
    await runs.recordChanges(run.id, [{ kind: 'user.updated', externalId: '00u1', subject: 'ann@x.test', detail: { changes: { displayName: { previous: 'Ann <b>Old</b>', new: 'Ann New' }, title: { previous: null, new: 'CTO' } } } }], 'planned');
    const page = await call({ method: 'GET', url: `/admin/runs/${run.id}` });
    expect(page.body).toContain('<span class="field">displayName</span>: <del>Ann &lt;b&gt;Old&lt;/b&gt;</del> → <ins>Ann New</ins>');
    expect(page.body).toContain('<span class="field">title</span>: <del>∅</del> → <ins>CTO</ins>');
  });

  it('sends security headers with a CSP that allows only its own assets, served from this origin', async () => {
    const home = await call({ method: 'GET', url: '/admin' });
    expect(home.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(home.headers['x-content-type-options']).toBe('nosniff');
    const chart = await app.inject({ method: 'GET', url: '/admin/vendor/chart.umd.min.js' });
    expect(chart.statusCode).toBe(200);
    expect(chart.body).toMatch(/Chart/);
    expect((await app.inject({ method: 'GET', url: '/admin/vendor/chart.js' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/admin/assets/admin.js' })).statusCode).toBe(200);
  });

  it('asks before a sync, and answers a run’s progress as JSON', async () => {
    const before = (await new RunRepository(db).listForIntegration(healthyId, 50)).length;
    const ask = await call({ method: 'POST', url: `/admin/integrations/${healthyId}/sync`, ...form({}) });
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toContain('Sync now?');
    expect(await new RunRepository(db).listForIntegration(healthyId, 50)).toHaveLength(before);
    const sync = await call({ method: 'POST', url: `/admin/integrations/${healthyId}/sync`, ...form({ confirm: 'yes' }) });
    expect(sync.statusCode).toBe(302);
    const runId = sync.headers.location!.split('/').pop()!;
    const progress = await call({ method: 'GET', url: `/admin/runs/${runId}/progress` });
    expect(progress.json()).toMatchObject({ id: runId, status: 'queued' });
    const page = await call({ method: 'GET', url: `/admin/runs/${runId}` });
    expect(page.body).toContain(`data-live="/admin/runs/${runId}/progress"`);
    expect((await app.inject({ method: 'GET', url: `/admin/runs/${runId}/progress` })).statusCode).toBe(401);
  });
});

describe('/admin integration page', () => {
  it('says what the safety threshold means, default or set', async () => {
    expect((await call({ method: 'GET', url: `/admin/integrations/${healthyId}` })).body).toContain(
      '<tr><th>Safety threshold</th><td>removals of more than 20% of a kind (and more than 5) wait for approval (the default)</td></tr>',
    );
    await new IntegrationService(db, config).update(failingId, { threshold: '2.5', verify: false });
    expect((await call({ method: 'GET', url: `/admin/integrations/${failingId}` })).body).toContain('removals of more than 2.5% of a kind (and more than 5) wait for approval</td>');
  });
});

describe('/admin run page', () => {
  it('pages a long change log, 500 rows a page, and serves the log alone for a live page to swap in', async () => {
    const appId = `0oaBig${uniqueSlug('b').replace(/[^A-Za-z0-9]/g, '')}`;
    const big = okta.addApp(appId);
    const domain = `${uniqueSlug('b')}.test`;
    for (let i = 0; i < 520; i++) big.users.add(okta.addUser(`big${i}@${domain}`).id);
    const { integrationId } = await createOktaIntegration(db, config, okta, { appId });
    const run = await runNow({ db, config }, integrationId);
    const total = await new RunRepository(db).countChanges(run.id);
    expect(total).toBeGreaterThanOrEqual(520);

    const first = (await call({ method: 'GET', url: `/admin/runs/${run.id}` })).body;
    expect(first.match(/<td>user\.created<\/td>/g)).toHaveLength(500);
    expect(first).toContain(`Changes 1–500 of ${total}, in the order they were recorded.`);
    expect(first).toContain(`<a rel="next" href="/admin/runs/${run.id}?page=2">`);
    const second = (await call({ method: 'GET', url: `/admin/runs/${run.id}?page=2` })).body;
    expect(second).toContain(`Changes 501–${total} of ${total}`);
    expect(second).toContain(`<a rel="prev" href="/admin/runs/${run.id}?page=1">`);
    expect(second).not.toContain('rel="next"');
    // Past the end: the last page, not an empty one.
    expect((await call({ method: 'GET', url: `/admin/runs/${run.id}?page=99` })).body).toContain(`Changes 501–${total} of ${total}`);

    const fragment = await call({ method: 'GET', url: `/admin/runs/${run.id}/changes?page=2` });
    expect(fragment.statusCode).toBe(200);
    expect(fragment.body).not.toContain('<html');
    expect(fragment.body).toContain(`Changes 501–${total} of ${total}`);
    expect((await call({ method: 'GET', url: `/admin/runs/${run.id}/progress` })).json()).toMatchObject({ status: 'succeeded', logged: total });
  });
});

describe('/admin Test connection', () => {
  it("runs the integration check and shows each endpoint's answer, worded as `integration test` words it", async () => {
    const bad = await call({ method: 'POST', url: `/admin/integrations/${revokedId}/test`, ...form({}) });
    expect(bad.statusCode).toBe(200);
    expect(bad.body).toContain('did not answer as they should');
    expect(bad.body).toMatch(/Okta rejected the API token/);
    expect(bad.body).not.toContain('revoked-token');
    const good = await call({ method: 'POST', url: `/admin/integrations/${healthyId}/test`, ...form({}) });
    expect(good.body).toContain('Every endpoint a sync uses answered.');
  });
});

describe('/admin held plans', () => {
  it('lists the operations that wait, and rejects only after a confirmation', async () => {
    const list = await call({ method: 'GET', url: '/admin/held' });
    expect(list.body.match(/<td>user\.deprovisioned<\/td>/g)).toHaveLength(8);

    const ask = await call({ method: 'POST', url: `/admin/runs/${heldRunId}/reject`, ...form({}) });
    expect(ask.body).toContain('Reject the 8 held operations');
    expect((await new RunRepository(db).find(heldRunId))!.status).toBe('held');

    const done = await call({ method: 'POST', url: `/admin/runs/${heldRunId}/reject`, ...form({ confirm: 'yes' }) });
    expect(done.statusCode).toBe(302);
    const run = (await new RunRepository(db).find(heldRunId))!;
    expect(run.status).toBe('succeeded');
    // The CLI's approve hint is gone from the stored reason, parentheses and all.
    expect(run.heldReason).toMatch(/Its removals were rejected by an admin in the console at/);
    expect(run.heldReason).not.toMatch(/\(\)|dirsync run approve/);
    const changes = await new RunRepository(db).listChanges(heldRunId);
    expect(changes.filter((c) => c.state === 'held')).toHaveLength(0);
    expect(changes.filter((c) => c.state === 'skipped' && String(c.detail?.skipped).startsWith('rejected by an admin in the console'))).toHaveLength(8);
    expect((await call({ method: 'GET', url: '/admin/held' })).body).toContain('Nothing waits for approval.');

    // Settled, it still says it was held, and how it ended: in the run list, on the chart and on its page.
    const integrationPage = (await call({ method: 'GET', url: `/admin/integrations/${heldId}` })).body;
    const row = integrationPage.slice(integrationPage.indexOf(`/admin/runs/${heldRunId}"`));
    expect(row.slice(0, row.indexOf('</tr>'))).toContain('<span class="status held">held → rejected</span>');
    const chart = JSON.parse(/data-runs="([^"]+)"/.exec(integrationPage)![1]!.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')) as Array<{ status: string; held: boolean }>;
    expect(chart.filter((r) => r.held).map((r) => r.status)).toEqual(['held → rejected']);
    const runPage = (await call({ method: 'GET', url: `/admin/runs/${heldRunId}` })).body;
    expect(runPage).toContain('id="run-status">held → rejected</span>');
    expect(runPage).toMatch(/removals waited for approval/);
    expect(runPage).toMatch(/Its removals were rejected by an admin in the console at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\./);

    // Rejecting again, through the API: not held any more.
    const again = await call({ method: 'POST', url: `/api/v1/runs/${heldRunId}/reject` });
    expect(again.statusCode).toBe(400);
    expect(again.json().error.message).toMatch(/not held/);
  });
});

describe('/admin sessions', () => {
  const signIn = (token: string, ip = '10.0.0.1') => app.inject({ method: 'POST', url: '/admin/login', remoteAddress: ip, ...form({ token, next: '/admin' }) });

  it('signs out: the cookie is cleared', async () => {
    const ok = await signIn(ADMIN, '10.0.0.2');
    const cookie = ok.cookies.find((c) => c.name === 'dirsync_admin')!;
    expect(cookie.maxAge).toBe(SESSION_TTL_MS / 1000);
    expect((await app.inject({ method: 'GET', url: '/admin', cookies: { dirsync_admin: cookie.value } })).statusCode).toBe(200);
    const out = await app.inject({ method: 'POST', url: '/admin/logout', cookies: { dirsync_admin: cookie.value } });
    expect(out.headers.location).toBe('/admin/login?out=1');
    expect(out.cookies.find((c) => c.name === 'dirsync_admin')!.value).toBe('');
  });

  it('refuses an expired session on the server, whatever the browser kept', async () => {
    const old = sessionValue(ADMIN, Date.now() - SESSION_TTL_MS - 1000);
    const res = await app.inject({ method: 'GET', url: '/admin', cookies: { dirsync_admin: old } });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('/admin/login?next=%2Fadmin&expired=1');
    const forged = sessionValue('another-token', Date.now());
    expect((await app.inject({ method: 'GET', url: '/admin', cookies: { dirsync_admin: forged } })).headers.location).toBe('/admin/login?next=%2Fadmin');
  });

  it('throttles sign-in attempts per client', async () => {
    for (let i = 0; i < SIGN_IN_ATTEMPTS_PER_MINUTE; i++) expect((await signIn('wrong', '10.0.0.9')).statusCode).toBe(302);
    const limited = await signIn(ADMIN, '10.0.0.9');
    expect(limited.statusCode).toBe(429);
    expect((await signIn(ADMIN, '10.0.0.10')).statusCode).toBe(302);
  });
});

describe('/admin secrets shown once', () => {
  it('rotates a SCIM token once per post and shows it on the page the post redirects to, once (a reload rotates nothing)', async () => {
    const slug = uniqueSlug('scimrot');
    await new TenantRepository(db).create(slug, slug);
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim' });
    const before = await db.selectFrom('integrations').select('scim_token_hash').where('id', '=', integration.id).executeTakeFirstOrThrow();

    const posted = await call({ method: 'POST', url: `/admin/integrations/${integration.id}/rotate-scim-token` });
    expect(posted.statusCode).toBe(303);
    expect(posted.headers.location).toBe(`/admin/integrations/${integration.id}/scim-token`);
    const rotated = await db.selectFrom('integrations').select('scim_token_hash').where('id', '=', integration.id).executeTakeFirstOrThrow();
    expect(rotated.scim_token_hash).not.toBe(before.scim_token_hash);

    const cookies = Object.fromEntries(posted.cookies.map((c) => [c.name, c.value]));
    const page = await call({ method: 'GET', url: String(posted.headers.location), cookies });
    expect(page.statusCode).toBe(200);
    const token = /<th>SCIM token<\/th><td><code>([^<]+)<\/code>/.exec(page.body)?.[1];
    expect(token).toBeTruthy();

    // The reload: no cookie left, no rotation, no token.
    const reload = await call({ method: 'GET', url: String(posted.headers.location) });
    expect(reload.body).not.toContain(token!);
    expect(reload.body).toContain('shown once, when it was issued');
    const after = await db.selectFrom('integrations').select('scim_token_hash').where('id', '=', integration.id).executeTakeFirstOrThrow();
    expect(after.scim_token_hash).toBe(rotated.scim_token_hash);
  });
});
