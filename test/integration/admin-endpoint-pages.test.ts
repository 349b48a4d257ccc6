import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { deliverPending } from '../../src/events/delivery.js';
import { EndpointService } from '../../src/events/endpoint.service.js';
import type { DirsyncEvent } from '../../src/events/event.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

/**
 * The console's event endpoint pages (/admin/endpoints), driven as a browser would: signed in
 * with the session cookie, forms posted same-origin. Deliveries are real: events from a run
 * against the fake Okta, sent to a local receiver that verifies their signatures.
 */

const ADMIN = 'endpoint-pages-admin-token-0123';
const HOST = 'dirsync.test';
let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let okta: FakeOkta;
let session: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN, DIRSYNC_ALLOW_HTTP: 'true' });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  session = await signIn(app);
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
afterAll(async () => {
  await close();
  await okta.stop();
  await dropDb();
});

async function signIn(server: FastifyInstance): Promise<string> {
  const res = await server.inject({ method: 'POST', url: '/admin/login', headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${ADMIN}&next=/admin` });
  return res.cookies.find((c) => c.name === 'dirsync_admin')!.value;
}

const get = (url: string, server = app) => server.inject({ method: 'GET', url, headers: { host: HOST }, cookies: { dirsync_admin: session } });

/** A form post from the console's own page (the browser sends its origin). */
const post = (url: string, form: Record<string, string | string[]>, options: { origin?: string; server?: FastifyInstance } = {}) => {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) for (const v of [value].flat()) body.append(name, v);
  return (options.server ?? app).inject({
    method: 'POST',
    url,
    headers: { host: HOST, origin: options.origin ?? `http://${HOST}`, 'content-type': 'application/x-www-form-urlencoded' },
    cookies: { dirsync_admin: session },
    payload: body.toString(),
  });
};

/**
 * A post whose answer redirects (303) to a page, then that page as the browser loads it next,
 * with the cookie the redirect set; `redirect` is the post's own answer.
 */
async function postAndFollow(url: string, form: Record<string, string | string[]>) {
  const redirect = await post(url, form);
  expect(redirect.statusCode, redirect.body).toBe(303);
  const location = String(redirect.headers.location);
  const cookies: Record<string, string> = { dirsync_admin: session };
  for (const c of redirect.cookies) cookies[c.name] = c.value;
  const page = await app.inject({ method: 'GET', url: location, headers: { host: HOST }, cookies });
  return Object.assign(page, { redirect, location, sent: cookies });
}

const secretOf = (html: string) => /<code id="secret">(whsec_[A-Za-z0-9+/=]+)<\/code>/.exec(html)?.[1];
const service = () => new EndpointService(db, config);
const deliver = (id: string) => deliverPending({ db, config, log: silentLog }, id);

/** A tenant on the fake Okta with `users` users (their Okta ids in `ids`), not yet synced. */
async function tenant(users = 2): Promise<TestIntegration & { ids: string[] }> {
  const appId = `0oa${uniqueSlug('x').slice(2)}`;
  const oktaApp = okta.addApp(appId);
  const domain = `${uniqueSlug('d')}.test`;
  const ids = Array.from({ length: users }, (_, i) => okta.addUser(`u${i}@${domain}`).id);
  for (const id of ids) oktaApp.users.add(id);
  return { ...(await createOktaIntegration(db, config, okta, { appId })), ids };
}

/** A host app's receiver: answers `status` with `body`, keeps what it was sent. */
async function receiver(answer: { status: number; body?: string } = { status: 204 }) {
  const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(answer.status, { 'content-type': 'text/html' }).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    /** The events sent, each verified with every one of `secrets` by the standardwebhooks library. */
    verified(secrets: string[]): DirsyncEvent[] {
      return received.map(({ headers, body }) => {
        const signed = { 'webhook-id': String(headers['webhook-id']), 'webhook-timestamp': String(headers['webhook-timestamp']), 'webhook-signature': String(headers['webhook-signature']) };
        for (const secret of secrets) new Webhook(secret).verify(body, signed);
        return JSON.parse(body) as DirsyncEvent;
      });
    },
  };
}

/** Creates an endpoint through the console's form; returns its id and the secret the page showed. */
async function createThroughPage(form: Record<string, string | string[]>): Promise<{ id: string; secret: string }> {
  const res = await postAndFollow('/admin/endpoints', form);
  expect(res.statusCode, res.body).toBe(200);
  const id = /href="\/admin\/endpoints\/([0-9a-f-]{36})"/.exec(res.body)![1]!;
  return { id, secret: secretOf(res.body)! };
}

describe('/admin/endpoints', () => {
  it('has a nav link, creates an endpoint showing its secret once, and lists it', async () => {
    const t = await tenant();
    const home = await get('/admin');
    expect(home.body).toContain('<a href="/admin/endpoints">Event endpoints</a>');

    const url = `https://hooks.example.com/${uniqueSlug('dirsync')}`;
    const res = await postAndFollow('/admin/endpoints', { url, tenant: t.tenantSlug, types: ['user.created', 'user.deprovisioned'] });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatch(/Copy the signing secret now:<\/strong> it is shown only this once/);
    const secret = secretOf(res.body)!;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const [created] = (await service().list()).filter((e) => e.url === url);
    expect(created).toMatchObject({ tenant: t.tenantSlug, types: ['user.created', 'user.deprovisioned'], enabled: true });

    const list = await get('/admin/endpoints');
    expect(list.statusCode).toBe(200);
    const row = list.body.split('<tr>').find((r) => r.includes(url))!;
    expect(row).toContain(`href="/admin/endpoints/${created!.id}"`);
    expect(row).toContain(t.tenantSlug);
    expect(row).toContain('user.created, user.deprovisioned');
    expect(row).toContain('enabled');
    expect(row).toContain('none yet');
    // Shown once: neither the list nor the endpoint's page carries it.
    expect(list.body).not.toContain(secret);
    expect((await get(`/admin/endpoints/${created!.id}`)).body).not.toContain(secret);

    // Without tenant and types: every tenant, every type.
    const all = await createThroughPage({ url: `${url}/all` });
    expect(await service().show(all.id)).toMatchObject({ tenant: null, types: null });
    const allRow = (await get('/admin/endpoints')).body.split('<tr>').find((r) => r.includes(`${url}/all`))!;
    expect(allRow).toContain('all tenants');
    expect(allRow).toMatch(/<td><span class="muted">all<\/span><\/td>/);
  });

  it("shows the service's refusals on the form, keeping what was typed, and creates nothing", async () => {
    const before = (await service().list()).length;
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ url: 'not a url' }, /must be an absolute http\(s\) URL, not &quot;not a url&quot;/],
      [{ url: 'ftp://files.example.com/x' }, /must be an http\(s\) URL, not ftp:/],
      [{ url: 'https://hooks.example.com/x', tenant: 'no-such-tenant' }, /tenant &quot;no-such-tenant&quot; does not exist/],
      [{ url: 'https://hooks.example.com/x', types: ['user.created', 'user.exploded'] }, /user.exploded is not an event type/],
    ];
    for (const [form, message] of cases) {
      const res = await post('/admin/endpoints', form);
      expect(res.statusCode, JSON.stringify(form)).toBe(400);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      const alert = /<p class="error" role="alert">(.*?)<\/p>/.exec(res.body)?.[1];
      expect(alert).toMatch(message);
      expect(res.body).toContain(`value="${form.url}"`);
      expect(res.body).not.toContain('id="secret"');
    }
    expect(/value="user.created" checked/.test((await post('/admin/endpoints', cases[3]![0])).body)).toBe(true);

    // http:// only with DIRSYNC_ALLOW_HTTP=true.
    const strict = await startTestServer(db, testConfig({ DATABASE_URL: config.databaseUrl, DIRSYNC_ADMIN_TOKEN: ADMIN, DIRSYNC_ALLOW_HTTP: 'false' }));
    closers.push(strict.close);
    const http = await post('/admin/endpoints', { url: 'http://hooks.example.com/x' }, { server: strict.app });
    expect(http.statusCode).toBe(400);
    expect(http.body).toMatch(/must be https:\/\/ \(set DIRSYNC_ALLOW_HTTP=true/);
    expect((await service().list()).length).toBe(before);
  });

  it('escapes a hostile URL, tenant and receiver answer wherever it shows them', async () => {
    const t = await tenant(1);
    // The URL parser percent-encodes < > and " in a path, but keeps ' and &.
    const hostile = `https://evil.example/a'onmouseover='alert(1)'&amp;<script>x</script>`;
    const { id } = await createThroughPage({ url: hostile, tenant: t.tenantSlug });
    const stored = (await service().show(id)).url;
    expect(stored).toContain("'onmouseover='");
    for (const page of [(await get('/admin/endpoints')).body, (await get(`/admin/endpoints/${id}`)).body]) {
      expect(page).not.toContain("'onmouseover='");
      expect(page).toContain('a&#39;onmouseover=&#39;alert(1)&#39;&amp;amp;%3Cscript%3E');
    }

    // What the service echoes from the form, and the form's own values.
    const echoed = await post('/admin/endpoints', { url: '"><img src=x onerror=alert(1)>', tenant: '<b>t</b>' });
    expect(echoed.statusCode).toBe(400);
    expect(echoed.body).not.toContain('<img src=x');
    expect(echoed.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(echoed.body).toContain('value="&lt;b&gt;t&lt;/b&gt;"');

    // A receiver's answer, kept as an excerpt.
    const r = await receiver({ status: 500, body: '<img src=x onerror=alert(2)>' });
    const ep = await createThroughPage({ url: r.url, tenant: t.tenantSlug });
    await runNow({ db, config }, t.integrationId);
    expect((await deliver(ep.id)).kind).toBe('retry');
    const detail = await get(`/admin/endpoints/${ep.id}`);
    expect(detail.body).not.toContain('<img src=x onerror=alert(2)>');
    expect(detail.body).toContain('&lt;img src=x onerror=alert(2)&gt;');
  });

  it("shows a real event's delivery, signed with the secret the page showed; and a failing one's retries", async () => {
    const t = await tenant(2);
    const r = await receiver();
    const ep = await createThroughPage({ url: r.url, tenant: t.tenantSlug });
    await runNow({ db, config }, t.integrationId);
    expect(await deliver(ep.id)).toEqual({ kind: 'idle', delivered: 2 });
    const events = r.verified([ep.secret]);
    expect(events.map((e) => e.type)).toEqual(['user.created', 'user.created']);

    const detail = await get(`/admin/endpoints/${ep.id}`);
    expect(detail.statusCode).toBe(200);
    const rows = detail.body.split('<tr>').filter((row) => row.includes('user.created'));
    expect(rows).toHaveLength(2);
    for (const e of events) {
      const row = rows.find((x) => x.includes(`<code>${e.cursor}</code>`))!;
      expect(row).toContain('<span class="status delivered">delivered</span>');
      expect(row).toMatch(/<td>1<\/td>\s*<td>204<\/td>/);
    }
    expect(detail.body).toContain(`Delivered through</th><td><code>${events[1]!.cursor}</code>`);
    const listRow = (await get('/admin/endpoints')).body.split('<tr>').find((row) => row.includes(r.url))!;
    expect(listRow).toContain('<span class="status delivered">delivered</span> 204');

    // A receiver answering 500: retrying, the status, the error, the excerpt and the next attempt show.
    const down = await receiver({ status: 500, body: 'receiver is down' });
    const failing = await createThroughPage({ url: down.url, tenant: t.tenantSlug });
    okta.updateUser(t.ids[0]!, { status: 'SUSPENDED' });
    await runNow({ db, config }, t.integrationId);
    expect((await deliver(failing.id)).kind).toBe('retry');
    const [delivery] = await service().deliveries(failing.id);
    const failingPage = (await get(`/admin/endpoints/${failing.id}`)).body;
    const row = failingPage.split('<tr>').find((x) => x.includes('user.deprovisioned'))!;
    expect(row).toContain('<span class="status retrying">retrying</span>');
    expect(row).toContain('<td class="error">HTTP 500</td>');
    expect(row).toContain('receiver is down');
    expect(row).toContain(delivery!.nextAttemptAt!.replace('T', ' ').slice(0, 19));
    expect(failingPage).toMatch(/failing since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  });

  it('pages deliveries: the most recent 50, and a link to more', async () => {
    const t = await tenant(60);
    const r = await receiver();
    const ep = await createThroughPage({ url: r.url, tenant: t.tenantSlug });
    await runNow({ db, config }, t.integrationId);
    expect((await deliver(ep.id)).delivered).toBe(60);
    const first = (await get(`/admin/endpoints/${ep.id}`)).body;
    expect(first.split('<tr>').filter((row) => row.includes('user.created'))).toHaveLength(50);
    expect(first).toContain(`<a href="/admin/endpoints/${ep.id}?limit=200">Show up to 200</a>`);
    const more = (await get(`/admin/endpoints/${ep.id}?limit=200`)).body;
    expect(more.split('<tr>').filter((row) => row.includes('user.created'))).toHaveLength(60);
    expect(more).not.toContain('Show up to');
  });

  it('redirects after creating (POST-redirect-GET): reloading the secret page creates nothing and no longer shows the secret', async () => {
    const url = `https://hooks.example.com/${uniqueSlug('reload')}`;
    const res = await postAndFollow('/admin/endpoints', { url });
    const secret = secretOf(res.body)!;
    expect(secret).toMatch(/^whsec_/);
    expect(res.location).toMatch(/^\/admin\/endpoints\/[0-9a-f-]{36}\/secret$/);
    // The page's answer clears the cookie; a reload (the browser without it) shows no secret.
    expect(res.sent).toHaveProperty('dirsync_shown_once');
    expect(res.headers['set-cookie']).toEqual(expect.stringContaining('dirsync_shown_once=;'));
    const reload = await get(res.location);
    expect(reload.statusCode).toBe(200);
    expect(reload.body).not.toContain(secret);
    expect(reload.body).toContain('shown once, when it was issued');
    expect((await service().list()).filter((e) => e.url === url)).toHaveLength(1);
    // The sealed cookie opens only on the page it was set for: another endpoint's secret page shows nothing.
    const other = await app.inject({ method: 'GET', url: res.location.replace(/[0-9a-f-]{36}/, '00000000-0000-4000-8000-000000000000'), headers: { host: HOST }, cookies: res.sent });
    expect(other.body).not.toContain(secret);
  });

  it('rotates the secret only once confirmed, shows the new one once, and the old one keeps signing for the grace', async () => {
    const t = await tenant(1);
    const r = await receiver();
    const ep = await createThroughPage({ url: r.url, tenant: t.tenantSlug });

    const ask = await post(`/admin/endpoints/${ep.id}/rotate-secret`, {});
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toMatch(/Issue a new signing secret for .*The old one keeps signing for the grace period/);
    expect(ask.body).toContain('<input type="hidden" name="confirm" value="yes">');
    expect(ask.body).not.toContain('id="secret"');
    expect((await service().show(ep.id)).previousSecretValidUntil).toBeNull();

    const done = await postAndFollow(`/admin/endpoints/${ep.id}/rotate-secret`, { confirm: 'yes' });
    expect(done.statusCode).toBe(200);
    expect(done.headers['cache-control']).toBe('no-store');
    const secret = secretOf(done.body)!;
    expect(secret).not.toBe(ep.secret);
    const until = (await service().show(ep.id)).previousSecretValidUntil!;
    expect(done.body).toContain(`The old secret keeps working until ${until.replace("T", " ").slice(0, 19)} UTC (the grace period)`);
    expect((await get(`/admin/endpoints/${ep.id}`)).body).toContain(`Old secret</th><td>also signs until ${until.replace('T', ' ').slice(0, 19)}`);

    await runNow({ db, config }, t.integrationId);
    await deliver(ep.id);
    expect(r.verified([secret, ep.secret])).toHaveLength(1);
  });

  it('replays after a cursor only once confirmed; a bad cursor is shown on the page', async () => {
    const t = await tenant(2);
    const r = await receiver();
    const ep = await createThroughPage({ url: r.url, tenant: t.tenantSlug });
    await runNow({ db, config }, t.integrationId);
    await deliver(ep.id);
    const [first] = r.verified([ep.secret]);
    const end = (await service().show(ep.id)).cursor;

    const ask = await post(`/admin/endpoints/${ep.id}/replay`, { after: first!.cursor });
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toContain(`every event after cursor <code>${first!.cursor}</code> again?`);
    expect(ask.body).toContain(`<input type="hidden" name="after" value="${first!.cursor}">`);
    expect((await service().show(ep.id)).cursor).toBe(end);

    const done = await post(`/admin/endpoints/${ep.id}/replay`, { after: first!.cursor, confirm: 'yes' });
    expect(done.statusCode).toBe(302);
    expect(done.headers.location).toBe(`/admin/endpoints/${ep.id}?done=replayed`);
    expect((await get(done.headers.location as string)).body).toContain('will be sent every event after that cursor again');
    expect((await service().show(ep.id)).cursor).toBe(first!.cursor);
    r.received.length = 0;
    expect(await deliver(ep.id)).toEqual({ kind: 'idle', delivered: 1 });
    expect(r.verified([ep.secret]).map((e) => e.cursor)).toEqual([end]);

    const bad = await post(`/admin/endpoints/${ep.id}/replay`, { after: 'yesterday', confirm: 'yes' });
    expect(bad.statusCode).toBe(400);
    expect(/<p class="error" role="alert">(.*?)<\/p>/.exec(bad.body)?.[1]).toBe('&quot;yesterday&quot; is not an event cursor: pass the &quot;cursor&quot; of an event or the &quot;next&quot; of a page');
    expect((await service().show(ep.id)).cursor).toBe(end);
  });

  it('deletes only once confirmed; an unknown endpoint is a 404 page', async () => {
    const { id } = await createThroughPage({ url: `https://hooks.example.com/${uniqueSlug('gone')}` });
    const ask = await post(`/admin/endpoints/${id}/delete`, {});
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toMatch(/Delete the endpoint .* and its delivery history\?/);
    await expect(service().show(id)).resolves.toMatchObject({ id });

    const done = await post(`/admin/endpoints/${id}/delete`, { confirm: 'yes' });
    expect(done.statusCode).toBe(302);
    expect(done.headers.location).toBe('/admin/endpoints?done=deleted');
    expect((await get('/admin/endpoints?done=deleted')).body).toContain('The endpoint was deleted');
    await expect(service().show(id)).rejects.toThrow(/does not exist/);

    for (const res of [await get(`/admin/endpoints/${id}`), await get('/admin/endpoints/not-an-id'), await post(`/admin/endpoints/${id}/delete`, { confirm: 'yes' })]) {
      expect(res.statusCode).toBe(404);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.body).toContain('<h1>Endpoint not found</h1>');
    }
    expect((await get('/admin/endpoints?done=<script>')).body).not.toContain('<script>');
  });

  it('refuses cross-site and signed-out posts, as the rest of the console does', async () => {
    const { id } = await createThroughPage({ url: `https://hooks.example.com/${uniqueSlug('csrf')}` });
    const before = (await service().list()).length;
    const forged = await post('/admin/endpoints', { url: 'https://attacker.example/x' }, { origin: 'https://attacker.example' });
    expect(forged.statusCode).toBe(403);
    expect((await post(`/admin/endpoints/${id}/delete`, { confirm: 'yes' }, { origin: 'https://attacker.example' })).statusCode).toBe(403);
    const signedOut = await app.inject({ method: 'POST', url: `/admin/endpoints/${id}/delete`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'confirm=yes' });
    expect(signedOut.statusCode).toBe(302);
    expect(signedOut.headers.location).toMatch(/^\/admin\/login/);
    expect((await service().list()).length).toBe(before);
    await expect(service().show(id)).resolves.toMatchObject({ id });
  });
});
