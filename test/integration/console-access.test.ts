import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../src/access/token.service.js';
import { AuditRepository } from '../../src/db/audit.repository.js';
import type { Db } from '../../src/db/database.js';
import { EndpointService } from '../../src/events/endpoint.service.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

const ADMIN = 'admin-token-for-console-access-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let config: ReturnType<typeof testConfig>;
let okta: FakeOkta;
let close: () => Promise<void>;

interface Fixture extends TestIntegration {
  runId: string;
  heldRunId: string;
  accountId: string;
  groupId: string;
  endpointId: string;
}
let own: Fixture;
let other: Fixture;
type Role = 'viewer' | 'operator' | 'admin';
const ROLES: Role[] = ['viewer', 'operator', 'admin'];
const scoped = {} as Record<Role, string>;
const unscoped = {} as Record<Role, string>;

async function fixture(appId: string): Promise<Fixture> {
  const a = okta.addApp(appId);
  const group = okta.addGroup(`Staff ${appId}`);
  a.groups.add(group.id);
  const ids = Array.from({ length: 10 }, (_, i) => okta.addUser(`${appId}-${i}@${uniqueSlug()}.test`).id);
  for (const id of ids) a.users.add(id);
  // The group brings its members into scope: only the two who stay.
  for (const id of ids.slice(8)) okta.addMember(group.id, id);
  const i = await createOktaIntegration(db, config, okta, { appId });
  const run = await runNow({ db, config }, i.integrationId);
  for (const id of ids.slice(0, 8)) a.users.delete(id);
  const held = await runNow({ db, config }, i.integrationId);
  expect(held.status).toBe('held');
  const [account] = await db.selectFrom('accounts').select('id').where('tenant_id', '=', i.tenantId).limit(1).execute();
  const [g] = await db.selectFrom('groups').select('id').where('tenant_id', '=', i.tenantId).limit(1).execute();
  const endpoint = await new EndpointService(db, config).create({ url: `https://hooks.example.com/${uniqueSlug()}`, tenant: i.tenantSlug });
  return { ...i, runId: run.id, heldRunId: held.id, accountId: account!.id, groupId: g!.id, endpointId: endpoint.id };
}

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  own = await fixture('0oaConsoleOwn');
  other = await fixture('0oaConsoleOther');
  const tokens = new TokenService(db);
  for (const role of ROLES) {
    scoped[role] = (await tokens.create({ role, tenant: own.tenantSlug, createdBy: 'test' })).token;
    unscoped[role] = (await tokens.create({ role, name: `${role}-all`, createdBy: 'test' })).token;
  }
});
afterAll(async () => {
  await close();
  await okta.stop();
  await dropDb();
});

const form = (payload: Record<string, string>) => ({ payload: new URLSearchParams(payload).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });

/** Signs in through the form; returns the session cookie's value. */
async function signIn(token: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/admin/login', ...form({ token, next: '/admin' }) });
  expect(res.headers.location).toBe('/admin');
  return res.cookies.find((c) => c.name === 'dirsync_admin')!.value;
}
const page = (cookie: string, opts: InjectOptions) => app.inject({ ...opts, cookies: { dirsync_admin: cookie } });

/**
 * Every console page and form, with the role SPEC gives what it does (viewer reads; operator
 * syncs, approves, rejects, tests; admin manages integrations, credentials and endpoints) and
 * whether it belongs to a tenant. Posts go without `confirm=yes`, so an allowed one only asks.
 */
interface Row {
  readonly method: 'GET' | 'POST';
  readonly url: (f: Fixture) => string;
  readonly role: Role;
  readonly tenantBound: boolean;
  readonly allTenants?: boolean;
  readonly ok: number;
}
const PAGES: Row[] = [
  { method: 'GET', url: () => '/admin', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'GET', url: () => '/admin/held', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'GET', url: () => '/admin/tenants', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'GET', url: () => '/admin/endpoints', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'GET', url: (f) => `/admin/integrations/${f.integrationId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/runs/${f.runId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/runs/${f.runId}/progress`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/tenants/${f.tenantSlug}/users`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/tenants/${f.tenantSlug}/groups`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/groups/${f.groupId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/accounts/${f.accountId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', url: (f) => `/admin/endpoints/${f.endpointId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/integrations/${f.integrationId}/sync`, role: 'operator', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/integrations/${f.integrationId}/test`, role: 'operator', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/runs/${f.heldRunId}/approve`, role: 'operator', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/runs/${f.heldRunId}/reject`, role: 'operator', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/integrations/${f.integrationId}/rotate-scim-token`, role: 'admin', tenantBound: true, ok: 400 },
  { method: 'POST', url: (f) => `/admin/integrations/${f.integrationId}/delete`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/endpoints/${f.endpointId}/rotate-secret`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/endpoints/${f.endpointId}/replay`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'POST', url: (f) => `/admin/endpoints/${f.endpointId}/delete`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'GET', url: () => '/admin/audit', role: 'admin', tenantBound: false, ok: 200 },
  { method: 'GET', url: () => '/admin/queues', role: 'viewer', tenantBound: false, allTenants: true, ok: 200 },
];
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

function expected(row: Row, role: Role, scope: 'own' | 'other' | 'unscoped'): number {
  if (row.tenantBound && scope === 'other') return 404;
  // bull-board shows every tenant's jobs: a scoped token does not see it at all.
  if (row.allTenants && scope !== 'unscoped') return 404;
  if (RANK[role] < RANK[row.role]) return 403;
  return row.ok;
}

describe('roles and tenant scope over every console page', () => {
  const cookies = {} as Record<string, string>;
  beforeAll(async () => {
    for (const role of ROLES) {
      cookies[`${role}/scoped`] = await signIn(scoped[role]);
      cookies[`${role}/unscoped`] = await signIn(unscoped[role]);
    }
  });

  for (const row of PAGES) {
    it(`${row.method} ${row.url({ integrationId: '{id}', runId: '{run}', heldRunId: '{held}', tenantSlug: '{slug}', tenantId: '', accountId: '{account}', groupId: '{group}', endpointId: '{endpoint}' })}`, async () => {
      const seen: string[] = [];
      const want: string[] = [];
      for (const role of ROLES) {
        for (const scope of ['own', 'other', 'unscoped'] as const) {
          const cookie = cookies[`${role}/${scope === 'unscoped' ? 'unscoped' : 'scoped'}`]!;
          const res = await page(cookie, { method: row.method, url: row.url(scope === 'own' ? own : other), ...(row.method === 'POST' && form({})) });
          seen.push(`${role}/${scope}: ${res.statusCode}`);
          want.push(`${role}/${scope}: ${expected(row, role, scope)}`);
          if (res.statusCode === 403) expect(res.body).toMatch(/This needs an? (operator|admin) token/);
        }
      }
      expect(seen).toEqual(want);
    });
  }

  it('hides what a role cannot use and what another tenant holds', async () => {
    const viewer = await page(cookies['viewer/scoped']!, { method: 'GET', url: '/admin' });
    expect(viewer.body).toContain(own.integrationId);
    expect(viewer.body).not.toContain(other.integrationId);
    expect(viewer.body).not.toMatch(/Sync now|Test connection|Approve/);
    expect(viewer.body).not.toContain('href="/admin/queues"');
    expect(viewer.body).not.toContain('href="/admin/audit"');
    const operator = await page(cookies['operator/scoped']!, { method: 'GET', url: `/admin/integrations/${own.integrationId}` });
    expect(operator.body).toMatch(/Sync now/);
    expect(operator.body).not.toMatch(/Delete integration/);
    const admin = await page(cookies['admin/unscoped']!, { method: 'GET', url: `/admin/integrations/${own.integrationId}` });
    expect(admin.body).toMatch(/Delete integration/);
    const tenants = await page(cookies['viewer/scoped']!, { method: 'GET', url: '/admin/tenants' });
    expect(tenants.body).toContain(own.tenantSlug);
    expect(tenants.body).not.toContain(other.tenantSlug);
    const held = await page(cookies['viewer/scoped']!, { method: 'GET', url: '/admin/held' });
    expect(held.body).toContain(own.heldRunId);
    expect(held.body).not.toContain(other.heldRunId);
  });
});

describe('console sessions of tokens', () => {
  it("end when the token is revoked, and a revoked token cannot sign in", async () => {
    const issued = await new TokenService(db).create({ role: 'operator', tenant: own.tenantSlug, createdBy: 'test' });
    const cookie = await signIn(issued.token);
    expect((await page(cookie, { method: 'GET', url: '/admin' })).statusCode).toBe(200);
    await new TokenService(db).revoke(issued.id);
    const after = await page(cookie, { method: 'GET', url: '/admin' });
    expect(after.statusCode).toBe(302);
    expect(after.headers.location).toMatch(/^\/admin\/login/);
    const again = await app.inject({ method: 'POST', url: '/admin/login', ...form({ token: issued.token, next: '/admin' }) });
    expect(again.headers.location).toMatch(/failed=1/);
  });

  it('deletes an integration only once confirmed, and audits it with the token that did', async () => {
    const issued = await new TokenService(db).create({ role: 'admin', tenant: own.tenantSlug, name: 'acme-admin', createdBy: 'test' });
    const cookie = await signIn(issued.token);
    const doomed = await createOktaIntegration(db, config, okta, { appId: '0oaConsoleOwn', tenantSlug: own.tenantSlug });
    const ask = await page(cookie, { method: 'POST', url: `/admin/integrations/${doomed.integrationId}/delete`, ...form({}) });
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toMatch(/Delete .* with its groups, memberships and run history\?/);
    await expect(new IntegrationService(db, config).get(doomed.integrationId)).resolves.toBeDefined();
    const done = await page(cookie, { method: 'POST', url: `/admin/integrations/${doomed.integrationId}/delete`, ...form({ confirm: 'yes' }) });
    expect(done.statusCode).toBe(302);
    await expect(new IntegrationService(db, config).get(doomed.integrationId)).rejects.toThrow(/does not exist/);
    const rows = await new AuditRepository(db).list({ since: new Date(Date.now() - 60_000), limit: 1000 });
    const mine = rows.filter((r) => r.tokenId === issued.id).map((r) => `${r.action} ${r.outcome}`);
    expect(mine).toContain('integration.delete ok');
    expect(mine).toContain('console.sign-in ok');
    // Asking is not an action: one delete row, not two.
    expect(mine.filter((m) => m.startsWith('integration.delete'))).toHaveLength(1);
    const shown = await page(cookie, { method: 'GET', url: '/admin/audit' });
    expect(shown.body).toContain('integration.delete');
    expect(shown.body).toContain('acme-admin');
  });
});
