import type { FastifyInstance, InjectOptions } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../src/access/token.service.js';
import type { Db } from '../../src/db/database.js';
import { EndpointService } from '../../src/events/endpoint.service.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { startTestServer } from '../support/test-server.js';

const ADMIN = 'admin-token-for-access-tests-0123456789';
let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let config: ReturnType<typeof testConfig>;
let okta: FakeOkta;
let close: () => Promise<void>;

/** What one tenant holds, for the table's paths. */
interface Fixture extends TestIntegration {
  runId: string;
  accountId: string;
  groupId: string;
  endpointId: string;
}
let own: Fixture;
let other: Fixture;
let allTenantsEndpoint: string;
type Role = 'viewer' | 'operator' | 'admin';
const ROLES: Role[] = ['viewer', 'operator', 'admin'];
/** Tokens scoped to `own`'s tenant, and tokens for all tenants, per role. */
const scoped = {} as Record<Role, string>;
const unscoped = {} as Record<Role, string>;

async function fixture(appId: string): Promise<Fixture> {
  const i = await createOktaIntegration(db, config, okta, { appId });
  const run = await runNow({ db, config }, i.integrationId);
  const users = (await call({ method: 'GET', url: `/api/v1/tenants/${i.tenantSlug}/users` })).json().items as { id: string }[];
  const groups = (await call({ method: 'GET', url: `/api/v1/tenants/${i.tenantSlug}/groups` })).json().items as { id: string }[];
  const endpoint = await new EndpointService(db, config).create({ url: `https://hooks.example.com/${uniqueSlug()}`, tenant: i.tenantSlug });
  return { ...i, runId: run.id, accountId: users[0]!.id, groupId: groups[0]!.id, endpointId: endpoint.id };
}

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  ({ app, close } = await startTestServer(db, config));
  okta = await new FakeOkta().start();
  for (const appId of ['0oaOwn', '0oaOther']) {
    const a = okta.addApp(appId);
    const group = okta.addGroup(`Staff ${appId}`);
    a.groups.add(group.id);
    for (let i = 0; i < 3; i++) {
      const u = okta.addUser(`${appId}-${i}@${uniqueSlug()}.test`);
      a.users.add(u.id);
      okta.addMember(group.id, u.id);
    }
  }
  own = await fixture('0oaOwn');
  other = await fixture('0oaOther');
  allTenantsEndpoint = (await new EndpointService(db, config).create({ url: 'https://hooks.example.com/all' })).id;
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

const call = (opts: InjectOptions & { token?: string }) => {
  const { token = ADMIN, ...rest } = opts;
  return app.inject({ ...rest, headers: { authorization: `Bearer ${token}`, ...rest.headers } });
};

const NO_SUCH = '00000000-0000-4000-8000-000000000000';

const freshEndpoint = async (f: Fixture) => (await new EndpointService(db, config).create({ url: `https://hooks.example.com/${uniqueSlug()}`, tenant: f.tenantSlug })).id;
const freshIntegration = async (f: Fixture) => (await createOktaIntegration(db, config, okta, { appId: '0oaOwn', tenantSlug: f.tenantSlug })).integrationId;

/**
 * Every admin API route, as SPEC's HTTP paragraph assigns it: the weakest role that may use it
 * ("viewer reads, operator also syncs and approves, admin also manages integrations,
 * credentials and tokens"; tenants and tokens span tenants, so they need an unscoped token),
 * whether it belongs to a tenant (then another tenant's is 404), and what an allowed caller
 * gets for the request sent (bodies chosen so an allowed call changes nothing lasting: a bad
 * field, a run that is not held, a missing confirmation).
 */
interface Row {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The OpenAPI path, for the completeness check. */
  readonly route: string;
  /** May make what it names (an endpoint or integration to delete or disable), so that an allowed call does something real. */
  readonly url: (f: Fixture) => string | Promise<string>;
  readonly payload?: (f: Fixture) => unknown;
  readonly role: Role;
  readonly tenantBound: boolean;
  readonly allTenants?: boolean;
  readonly ok: number;
}
const ROUTES: Row[] = [
  { method: 'GET', route: '/api/v1/tenants', url: () => '/api/v1/tenants', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'POST', route: '/api/v1/tenants', url: () => '/api/v1/tenants', payload: () => ({ slug: 'Not A Slug' }), role: 'admin', tenantBound: false, allTenants: true, ok: 400 },
  { method: 'GET', route: '/api/v1/tenants/{slug}/users', url: (f) => `/api/v1/tenants/${f.tenantSlug}/users`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/tenants/{slug}/groups', url: (f) => `/api/v1/tenants/${f.tenantSlug}/groups`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/accounts/{id}', url: (f) => `/api/v1/accounts/${f.accountId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/groups/{id}/members', url: (f) => `/api/v1/groups/${f.groupId}/members`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/events', url: (f) => `/api/v1/events?tenant=${f.tenantSlug}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/endpoints', url: () => '/api/v1/endpoints', payload: (f) => ({ url: 'not a url', tenant: f.tenantSlug }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/endpoints', url: () => '/api/v1/endpoints', role: 'viewer', tenantBound: false, ok: 200 },
  { method: 'GET', route: '/api/v1/endpoints/{id}', url: (f) => `/api/v1/endpoints/${f.endpointId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'DELETE', route: '/api/v1/endpoints/{id}', url: async (f) => `/api/v1/endpoints/${await freshEndpoint(f)}`, role: 'admin', tenantBound: true, ok: 204 },
  { method: 'POST', route: '/api/v1/endpoints/{id}/rotate-secret', url: (f) => `/api/v1/endpoints/${f.endpointId}/rotate-secret`, payload: () => ({ grace: 'soon' }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/endpoints/{id}/deliveries', url: (f) => `/api/v1/endpoints/${f.endpointId}/deliveries`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/endpoints/{id}/replay', url: (f) => `/api/v1/endpoints/${f.endpointId}/replay`, payload: () => ({ after: 'yesterday' }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/integrations', url: (f) => `/api/v1/integrations?tenant=${f.tenantSlug}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/integrations', url: () => '/api/v1/integrations', payload: (f) => ({ tenant: f.tenantSlug, provider: 'okta', threshold: 1000 }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'POST', route: '/api/v1/integrations/{id}/test', url: (f) => `/api/v1/integrations/${f.integrationId}/test`, role: 'operator', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/integrations/{id}', url: (f) => `/api/v1/integrations/${f.integrationId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'PATCH', route: '/api/v1/integrations/{id}', url: (f) => `/api/v1/integrations/${f.integrationId}`, payload: () => ({ threshold: 1000 }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'DELETE', route: '/api/v1/integrations/{id}', url: (f) => `/api/v1/integrations/${f.integrationId}`, role: 'admin', tenantBound: true, ok: 400 },
  { method: 'POST', route: '/api/v1/integrations/{id}/enable', url: (f) => `/api/v1/integrations/${f.integrationId}/enable`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/integrations/{id}/disable', url: async (f) => `/api/v1/integrations/${await freshIntegration(f)}/disable`, role: 'admin', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/integrations/{id}/rotate-webhook-secret', url: (f) => `/api/v1/integrations/${f.integrationId}/rotate-webhook-secret`, payload: () => ({ grace: 'soon' }), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'POST', route: '/api/v1/integrations/{id}/rotate-scim-token', url: (f) => `/api/v1/integrations/${f.integrationId}/rotate-scim-token`, payload: () => ({}), role: 'admin', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/integrations/{id}/runs', url: (f) => `/api/v1/integrations/${f.integrationId}/runs`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/integrations/{id}/sync', url: (f) => `/api/v1/integrations/${f.integrationId}/sync`, payload: () => ({ dryRun: 'yes' }), role: 'operator', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/integrations/{id}/webhooks', url: (f) => `/api/v1/integrations/${f.integrationId}/webhooks`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'GET', route: '/api/v1/runs/{id}', url: (f) => `/api/v1/runs/${f.runId}`, role: 'viewer', tenantBound: true, ok: 200 },
  { method: 'POST', route: '/api/v1/runs/{id}/approve', url: (f) => `/api/v1/runs/${f.runId}/approve`, role: 'operator', tenantBound: true, ok: 400 },
  { method: 'POST', route: '/api/v1/runs/{id}/reject', url: (f) => `/api/v1/runs/${f.runId}/reject`, role: 'operator', tenantBound: true, ok: 400 },
  { method: 'GET', route: '/api/v1/tokens', url: () => '/api/v1/tokens', role: 'admin', tenantBound: false, allTenants: true, ok: 200 },
  { method: 'POST', route: '/api/v1/tokens', url: () => '/api/v1/tokens', payload: () => ({ role: 'superuser' }), role: 'admin', tenantBound: false, allTenants: true, ok: 400 },
  { method: 'POST', route: '/api/v1/tokens/{id}/revoke', url: () => `/api/v1/tokens/${NO_SUCH}/revoke`, role: 'admin', tenantBound: false, allTenants: true, ok: 404 },
  { method: 'GET', route: '/api/v1/audit', url: () => '/api/v1/audit', role: 'admin', tenantBound: false, ok: 200 },
];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** SPEC's answer for a token of `role`, scoped to own's tenant or to none, aimed at own's or other's things. */
function expected(row: Row, role: Role, scope: 'own' | 'other' | 'unscoped'): number {
  if (row.tenantBound && scope === 'other') return 404;
  if (RANK[role] < RANK[row.role]) return 403;
  if (row.allTenants && scope !== 'unscoped') return 403;
  return row.ok;
}

describe('roles and tenant scope over every admin API route', () => {
  it('covers every route the OpenAPI description lists', async () => {
    const doc = (await call({ method: 'GET', url: '/api/v1/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const listed = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(ROUTES.map((r) => `${r.method} ${r.route}`).sort()).toEqual(listed.sort());
  });

  for (const row of ROUTES) {
    it(`${row.method} ${row.route}`, async () => {
      const seen: string[] = [];
      const want: string[] = [];
      for (const role of ROLES) {
        for (const scope of ['own', 'other', 'unscoped'] as const) {
          const target = scope === 'own' ? own : other;
          const token = scope === 'unscoped' ? unscoped[role] : scoped[role];
          const res = await call({ method: row.method, url: await row.url(target), token, ...(row.payload && { payload: row.payload(target) as InjectOptions['payload'] }) });
          seen.push(`${role}/${scope}: ${res.statusCode}`);
          want.push(`${role}/${scope}: ${expected(row, role, scope)}`);
          if (res.statusCode === 403) expect(res.json().error.message).toMatch(/^this needs an? (viewer|operator|admin) token/);
        }
      }
      expect(seen).toEqual(want);
    });
  }
});

describe('a scoped token', () => {
  it("lists only its tenant's tenants, integrations, endpoints, events and accounts", async () => {
    const token = scoped.viewer;
    const tenants = (await call({ method: 'GET', url: '/api/v1/tenants', token })).json().items as { slug: string }[];
    expect(tenants.map((t) => t.slug)).toEqual([own.tenantSlug]);
    const integrations = (await call({ method: 'GET', url: '/api/v1/integrations', token })).json().items as { id: string; tenant: string }[];
    expect(integrations.map((i) => i.id)).toContain(own.integrationId);
    expect(new Set(integrations.map((i) => i.tenant))).toEqual(new Set([own.tenantSlug]));
    const endpoints = (await call({ method: 'GET', url: '/api/v1/endpoints', token })).json().items as { id: string; tenant: string | null }[];
    expect(endpoints.map((e) => e.id)).toContain(own.endpointId);
    expect(new Set(endpoints.map((e) => e.tenant))).toEqual(new Set([own.tenantSlug]));
    expect((await call({ method: 'GET', url: `/api/v1/endpoints/${allTenantsEndpoint}`, token })).statusCode).toBe(404);
    const feed = (await call({ method: 'GET', url: '/api/v1/events?limit=1000', token })).json().events as { tenant: string }[];
    expect(feed.length).toBeGreaterThan(0);
    expect(new Set(feed.map((e) => e.tenant))).toEqual(new Set([own.tenantSlug]));
  });

  it('gets the same 404 for another tenant\'s integration as for one that does not exist', async () => {
    const elsewhere = await call({ method: 'GET', url: `/api/v1/integrations/${other.integrationId}`, token: scoped.admin });
    const nowhere = await call({ method: 'GET', url: `/api/v1/integrations/${NO_SUCH}`, token: scoped.admin });
    expect(elsewhere.statusCode).toBe(404);
    expect(elsewhere.json().error.message).toBe(nowhere.json().error.message.replace(NO_SUCH, other.integrationId));
  });

  it('is refused once revoked', async () => {
    const issued = await new TokenService(db).create({ role: 'viewer', createdBy: 'test' });
    expect((await call({ method: 'GET', url: '/api/v1/tenants', token: issued.token })).statusCode).toBe(200);
    expect((await call({ method: 'POST', url: `/api/v1/tokens/${issued.id}/revoke` })).statusCode).toBe(200);
    expect((await call({ method: 'GET', url: '/api/v1/tenants', token: issued.token })).statusCode).toBe(401);
    const listed = (await call({ method: 'GET', url: '/api/v1/tokens' })).json().items as { id: string; revokedAt: string | null; token?: string }[];
    const row = listed.find((t) => t.id === issued.id)!;
    expect(row.revokedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(issued.token);
  });
});

describe('the audit log', () => {
  it('records actions and refusals with who, role, target, source and outcome, and never a secret', async () => {
    const ip = '198.51.100.7';
    await call({ method: 'POST', url: `/api/v1/integrations/${own.integrationId}/rotate-webhook-secret`, payload: {}, remoteAddress: ip });
    await call({ method: 'PATCH', url: `/api/v1/integrations/${own.integrationId}`, payload: { token: 'sekrit-idp-token-123' }, token: scoped.operator, remoteAddress: ip });
    await call({ method: 'GET', url: `/api/v1/runs/${other.runId}`, token: scoped.viewer, remoteAddress: ip });
    const rows = (await call({ method: 'GET', url: '/api/v1/audit?since=1h&limit=1000' })).json().items as Record<string, unknown>[];
    expect(rows).toContainEqual(
      expect.objectContaining({ actor: 'bootstrap admin', role: 'admin', action: 'integration.rotate-webhook-secret', target: { type: 'integration', id: own.integrationId }, tenant: own.tenantSlug, source: ip, outcome: 'ok' }),
    );
    expect(rows).toContainEqual(
      expect.objectContaining({
        actor: `token:operator-${own.tenantSlug}`,
        role: 'operator',
        action: 'integration.update',
        target: { type: 'integration', id: own.integrationId },
        outcome: 'refused',
        reason: expect.stringMatching(/needs an admin token/),
        detail: { fields: ['token'] },
      }),
    );
    expect(rows).toContainEqual(expect.objectContaining({ actor: `token:viewer-${own.tenantSlug}`, action: 'run.read', target: { type: 'run', id: other.runId }, outcome: 'refused' }));
    expect(JSON.stringify(rows)).not.toMatch(/sekrit|dst_|webhookSecret/);
    // A scoped admin reads its own tenant's rows only.
    const mine = (await call({ method: 'GET', url: '/api/v1/audit?since=1h&limit=1000', token: scoped.admin })).json().items as { tenant: string | null }[];
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((r) => r.tenant === own.tenantSlug || r.tenant === null)).toBe(true);
    expect(mine.some((r) => r.tenant === other.tenantSlug)).toBe(false);
    expect((await call({ method: 'GET', url: '/api/v1/audit?since=forever' })).statusCode).toBe(400);
  });

  it('is append-only: the database refuses UPDATE, DELETE and TRUNCATE', async () => {
    await expect(sql`update audit_log set outcome = 'ok'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_log`.execute(db)).rejects.toThrow(/append-only/);
  });
});

describe('issue 17, done when: a tenant-scoped operator token', () => {
  it('syncs and approves for its tenant, sees nothing else, cannot redirect credentials, and all of it is audited', async () => {
    const a = okta.addApp('0oaDone');
    const ids = Array.from({ length: 10 }, (_, i) => okta.addUser(`done${i}@${uniqueSlug()}.test`).id);
    for (const id of ids) a.users.add(id);
    const tenant = await createOktaIntegration(db, config, okta, { appId: '0oaDone' });
    await runNow({ db, config }, tenant.integrationId);

    const issued = await call({ method: 'POST', url: '/api/v1/tokens', payload: { role: 'operator', tenant: tenant.tenantSlug, name: 'acme-ops' } });
    expect(issued.statusCode).toBe(201);
    const { token, id: tokenId } = issued.json() as { token: string; id: string };
    expect(token).toMatch(/^dst_/);
    expect(issued.json()).toMatchObject({ name: 'acme-ops', role: 'operator', tenant: tenant.tenantSlug });

    // Sync: queued with the token, run here.
    const queued = await call({ method: 'POST', url: `/api/v1/integrations/${tenant.integrationId}/sync`, payload: {}, token });
    expect(queued.statusCode).toBe(202);
    expect((await reconcile({ db, config, log: silentLog }, queued.json().id)).kind).toBe('finished');
    // Most of the app unassigned: the next run holds the removals; the token approves them.
    for (const id of ids.slice(0, 8)) a.users.delete(id);
    const held = await runNow({ db, config }, tenant.integrationId);
    expect(held.status).toBe('held');
    const approved = await call({ method: 'POST', url: `/api/v1/runs/${held.id}/approve`, token });
    expect(approved.statusCode, approved.body).toBe(202);

    // Nothing of another tenant.
    for (const url of [`/api/v1/integrations/${other.integrationId}`, `/api/v1/tenants/${other.tenantSlug}/users`, `/api/v1/runs/${other.runId}`, `/api/v1/events?tenant=${other.tenantSlug}`]) {
      expect((await call({ method: 'GET', url, token })).statusCode, url).toBe(404);
    }
    expect((await call({ method: 'POST', url: `/api/v1/integrations/${other.integrationId}/sync`, payload: {}, token })).statusCode).toBe(404);

    // No redirecting credentials: neither the base URL nor the token.
    for (const payload of [{ baseUrl: 'https://evil.example.com' }, { token: 'new-idp-token' }]) {
      const res = await call({ method: 'PATCH', url: `/api/v1/integrations/${tenant.integrationId}`, payload, token });
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toEqual({ code: 'forbidden', message: `this needs an admin token, and this one is operator for tenant ${tenant.tenantSlug}` });
    }
    expect((await call({ method: 'GET', url: `/api/v1/integrations/${tenant.integrationId}` })).json().baseUrl).toBe(okta.url);

    const rows = (await call({ method: 'GET', url: '/api/v1/audit?since=1h&limit=1000' })).json().items as { tokenId: string | null; action: string; outcome: string; target: { id: string } | null }[];
    const byToken = rows.filter((r) => r.tokenId === tokenId).map((r) => `${r.action} ${r.outcome}`);
    expect(byToken).toEqual(
      expect.arrayContaining(['integration.sync ok', 'run.approve ok', 'integration.read refused', 'tenant.users refused', 'run.read refused', 'event.list refused', 'integration.sync refused', 'integration.update refused']),
    );
    expect(byToken.filter((r) => r === 'integration.update refused')).toHaveLength(2);
    expect(rows).toContainEqual(expect.objectContaining({ action: 'token.create', outcome: 'ok', target: { type: 'token', id: tokenId } }));

    // A tenant admin may PATCH, but not move the credentials to another host without them: a
    // refusal (400) the audit log files as refused, worded for the API (fields, not CLI flags).
    const admin = (await call({ method: 'POST', url: '/api/v1/tokens', payload: { role: 'admin', tenant: tenant.tenantSlug, name: 'acme-admin' } })).json() as { token: string; id: string };
    const moved = await call({ method: 'PATCH', url: `/api/v1/integrations/${tenant.integrationId}`, payload: { baseUrl: 'https://evil.example.com', verify: false }, token: admin.token });
    expect(moved.statusCode).toBe(400);
    const after = (await call({ method: 'GET', url: '/api/v1/audit?since=1h&limit=1000' })).json().items as { tokenId: string | null; action: string; outcome: string; reason: string | null }[];
    const refusal = after.find((r) => r.tokenId === admin.id && r.action === 'integration.update');
    expect(refusal).toMatchObject({ outcome: 'refused', reason: expect.stringContaining('give token in the same update') });
    expect(refusal!.reason).not.toContain('--');
  });
});
