import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../src/access/token.service.js';
import type { Db } from '../../src/db/database.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

// /admin/events: the feed newest first, per tenant, paged backwards by cursor.
const ADMIN = 'events-page-admin-token-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let okta: FakeOkta;
let slug: string;
let other: string;

const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN}` } });
const rowsOf = (body: string) => [...body.matchAll(/<tr><td>(\d{4}-[^<]+)<\/td><td>([a-z._]+)<\/td><td>([^<]+)<\/td>/g)].map((m) => ({ when: m[1]!, type: m[2]!, tenant: m[3]! }));
const cursorsOf = (body: string) => [...body.matchAll(/<td><code class="muted">([^<]+)<\/code><\/td><\/tr>/g)].map((m) => m[1]!);

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  const config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  const sync = async (appId: string, users: number) => {
    const oktaApp = okta.addApp(appId);
    const domain = `${uniqueSlug('e')}.test`;
    for (let i = 0; i < users; i++) oktaApp.users.add(okta.addUser(`p${String(i).padStart(2, '0')}@${domain}`).id);
    const t = await createOktaIntegration(db, config, okta, { appId });
    expect((await runNow({ db, config }, t.integrationId)).status).toBe('succeeded');
    return t.tenantSlug;
  };
  slug = await sync('0oaEventsPageA', 60);
  other = await sync('0oaEventsPageB', 2);
}, 60_000);

afterAll(async () => {
  await close?.();
  await okta?.stop();
  await dropDb?.();
});

describe('/admin/events', () => {
  it('shows a tenant’s events newest first, 50 a page, and pages back to the oldest without a gap or an overlap', async () => {
    const home = await get('/admin');
    expect(home.body).toContain('<a href="/admin/events">Events</a>');

    const first = await get(`/admin/events?tenant=${slug}`);
    expect(first.statusCode).toBe(200);
    const rows = rowsOf(first.body);
    expect(rows).toHaveLength(50);
    expect(rows.every((r) => r.tenant === slug && r.type === 'user.created')).toBe(true);
    expect(first.body).toMatch(/<a href="\/admin\/accounts\/[0-9a-f-]{36}">p\d\d@/);
    const older = /<a rel="next" href="([^"]+)">older →<\/a>/.exec(first.body)![1]!.replace(/&amp;/g, '&');
    const second = await get(older);
    expect(rowsOf(second.body)).toHaveLength(10);
    expect(second.body).not.toContain('older →');
    expect(second.body).toContain('← newest');
    const cursors = [...cursorsOf(first.body), ...cursorsOf(second.body)];
    expect(new Set(cursors).size).toBe(60);

    // The same events the API gives, in reverse.
    const api = (await get(`/api/v1/events?tenant=${slug}&limit=1000`)).json() as { events: Array<{ cursor: string }> };
    expect(cursors).toEqual(api.events.map((e) => e.cursor).reverse());
  });

  it('shows every tenant without a filter, and answers a bad cursor or an unknown tenant with a sentence', async () => {
    const all = rowsOf((await get('/admin/events')).body);
    expect(all.map((r) => r.tenant)).toContain(other);
    const bad = await get('/admin/events?before=nonsense');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('is not an event cursor');
    const unknown = await get('/admin/events?tenant=%3Cb%3Enope');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body).not.toContain('<b>nope');
  });

  it("shows a tenant-scoped token its own tenant's events only; another tenant is absent (404), as in the API", async () => {
    const { token } = await new TokenService(db).create({ role: 'viewer', tenant: other, createdBy: 'test' });
    const asScoped = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    const all = await asScoped('/admin/events');
    expect(all.statusCode).toBe(200);
    expect(new Set(rowsOf(all.body).map((r) => r.tenant))).toEqual(new Set([other]));
    expect(all.body).not.toContain(`<option value="${slug}"`);
    expect((await asScoped(`/admin/events?tenant=${slug}`)).statusCode).toBe(404);
    expect((await asScoped(`/admin/events?tenant=${other}`)).statusCode).toBe(200);
  });
});
