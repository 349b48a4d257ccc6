import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

// The console's directory pages (issue 16): who is in a group, what happened to a given user
// and when, users searched and paged; through fastify inject, with real Postgres.
const ADMIN = 'directory-admin-token-0123456789';
const HOSTILE = '<img src=x onerror=alert(1)>';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;
let okta: FakeOkta;
let t: TestIntegration;
let config: ReturnType<typeof testConfig>;
let domain: string;

const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN}` } } as InjectOptions);
const links = (body: string, prefix: string) => [...body.matchAll(new RegExp(`href="(${prefix}[^"]+)"`, 'g'))].map((m) => m[1]!);

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  const oktaApp = okta.addApp('0oaDir');
  domain = `${uniqueSlug('d')}.test`;
  const staff = okta.addGroup('Staff');
  const admins = okta.addGroup('Admins');
  for (let i = 0; i < 60; i++) {
    const u = okta.addUser(`p${String(i).padStart(2, '0')}@${domain}`, { id: `00uP${i}`, profile: { firstName: i === 7 ? HOSTILE : `First${i}`, lastName: 'Last' } });
    okta.addMember(staff.id, u.id);
    if (i < 3) okta.addMember(admins.id, u.id);
  }
  oktaApp.groups.add(staff.id).add(admins.id);
  t = await createOktaIntegration(db, config, okta, { appId: '0oaDir' });
  await runNow({ db, config }, t.integrationId);
  okta.updateUser('00uP1', { status: 'SUSPENDED' });
  okta.updateUser('00uP2', { profile: { firstName: 'Renamed' } });
  await runNow({ db, config }, t.integrationId);
}, 60_000);

afterAll(async () => {
  await close?.();
  await okta?.stop();
  await dropDb?.();
});

describe('console: users and groups', () => {
  it("lists tenants with their directory, and pages a tenant's users 50 at a time", async () => {
    const tenants = await get('/admin/tenants');
    expect(tenants.statusCode).toBe(200);
    expect(tenants.body).toContain(`/admin/tenants/${t.tenantSlug}/users`);
    const first = await get(`/admin/tenants/${t.tenantSlug}/users`);
    expect(first.statusCode).toBe(200);
    expect(links(first.body, '/admin/accounts/')).toHaveLength(50);
    expect(first.body).toContain('rel="next"');
    const second = await get(`/admin/tenants/${t.tenantSlug}/users?page=2`);
    expect(links(second.body, '/admin/accounts/')).toHaveLength(10);
    expect(second.body).not.toContain('rel="next"');
    // Escaped, never markup.
    expect(first.body).not.toContain(HOSTILE);
    expect(first.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('finds users by part of their userName, email or name, wildcards taken literally', async () => {
    const found = await get(`/admin/tenants/${t.tenantSlug}/users?q=P42`);
    expect(links(found.body, '/admin/accounts/')).toHaveLength(1);
    expect(found.body).toContain(`p42@${domain}`);
    expect(links((await get(`/admin/tenants/${t.tenantSlug}/users?q=%25`)).body, '/admin/accounts/')).toHaveLength(0);
    expect((await get(`/admin/tenants/${t.tenantSlug}/users?q=renamed`)).body).toContain(`p02@${domain}`);
  });

  it('answers who is in a group', async () => {
    const groups = await get(`/admin/tenants/${t.tenantSlug}/groups`);
    const adminsLink = links(groups.body, '/admin/groups/').find((href) => groups.body.includes(`href="${href}">Admins<`))!;
    expect(adminsLink).toBeDefined();
    const admins = await get(adminsLink);
    expect(admins.statusCode).toBe(200);
    const members = links(admins.body, '/admin/accounts/');
    expect(members).toHaveLength(3);
    for (const n of ['p00', 'p01', 'p02']) expect(admins.body).toContain(`${n}@${domain}`);
    expect(links((await get(`${adminsLink}?q=p01`)).body, '/admin/accounts/')).toHaveLength(1);
  });

  it('shows what happened to a user and when: lock, groups, and their events newest first', async () => {
    const list = await get(`/admin/tenants/${t.tenantSlug}/users?q=p01@`);
    const [account] = links(list.body, '/admin/accounts/');
    const page = await get(account!);
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/Locked since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(idp-status\)/);
    expect(page.body).toContain('Groups: Admins, Staff');
    const types = [...page.body.matchAll(/<code>((?:user|group)\.[a-z_]+)<\/code>/g)].map((m) => m[1]);
    expect(types[0]).toBe('user.deprovisioned');
    expect(types).toContain('user.created');
    expect(types.filter((x) => x === 'group.user_added')).toHaveLength(2);

    const renamed = links((await get(`/admin/tenants/${t.tenantSlug}/users?q=p02@`)).body, '/admin/accounts/')[0]!;
    expect((await get(renamed)).body).toMatch(/givenName: First2 → Renamed/);
  });

  it("shows an integration's webhook deliveries, a rejected one with why", async () => {
    const hook = await app.inject({ method: 'POST', url: `/webhooks/${t.integrationId}`, headers: { authorization: 'not-the-secret', 'content-type': 'application/json' }, payload: '{}' });
    expect(hook.statusCode).toBe(401);
    const page = await get(`/admin/integrations/${t.integrationId}`);
    expect(page.statusCode).toBe(200);
    const section = page.body.slice(page.body.indexOf('id="webhook-deliveries"'));
    expect(section).toContain('rejected');
    expect(section).toContain('HTTP 401: missing or wrong webhook secret in the Authorization header');
  });

  it('says what is not there', async () => {
    expect((await get('/admin/accounts/00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    expect((await get('/admin/accounts/nope')).statusCode).toBe(404);
    expect((await get('/admin/groups/nope')).statusCode).toBe(404);
    expect((await get('/admin/tenants/nope/users')).statusCode).toBe(404);
  });

  // Last: it leaves the integration held.
  it('shows one held plan per integration, its weightiest operations first, and says earlier held runs go with it', async () => {
    okta.apps.get('0oaDir')!.groups.delete([...okta.groups.values()].find((g) => g.profile.name === 'Staff')!.id);
    const first = await runNow({ db, config }, t.integrationId);
    const second = await runNow({ db, config }, t.integrationId);
    expect([first.status, second.status]).toEqual(['held', 'held']);
    const held = await get('/admin/held');
    const cards = held.body.match(/class="held-plan"/g) ?? [];
    expect(cards).toHaveLength(1);
    expect(held.body).toContain(`id="held-${second.id}"`);
    expect(held.body).toMatch(/<strong>57 users deprovisioned, 1 group deleted, 57 memberships removed<\/strong>|<strong>[^<]*57 users deprovisioned[^<]*<\/strong>/);
    expect(held.body).toContain('An earlier held run of this integration waits on the same removals');
    // People losing access before the memberships that go with them.
    const kinds = [...held.body.matchAll(/<tr><td>([a-z.]+)<\/td>/g)].map((m) => m[1]);
    expect(kinds[0]).toBe('user.deprovisioned');
    expect(held.body).not.toContain('`dirsync run approve');
    const home = await get('/admin');
    expect(home.body.match(/class="held-plan"/g) ?? []).toHaveLength(1);
    expect(home.body).toContain('href="/admin/held"');
  });
});
