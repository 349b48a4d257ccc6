import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthentikConnector } from '../../src/connectors/authentik/authentik.connector.js';
import { IdpReadError } from '../../src/connectors/connector.js';
import { type AkBinding, type AkGroup, type AkUser, akAppJson, akBindingJson, akGroupJson, akPage, akUserJson } from '../support/fake-authentik.js';
import { strictEgress } from '../support/egress.js';

// authentik's /api/v3 wire format (OpenAPI schema shipped with @goauthentik/api).
const AK = 'https://auth.acme.test';
const FAST_RETRY = { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 20 };
const APP_PK = '3f0b6a2e-8d1c-4b7e-9a55-0c2d1e4f6a70';

const user = (pk: number, username: string, over: Partial<AkUser> = {}): AkUser => ({
  pk,
  username,
  name: `${username[0]!.toUpperCase()}${username.slice(1)} Example`,
  email: `${username}@acme.test`,
  is_active: true,
  type: 'internal',
  attributes: {},
  groups: [],
  last_updated: '2024-05-01T10:00:00.000000Z',
  ...over,
});
const group = (pk: string, name: string, parents: string[] = []): AkGroup => ({ pk, num_pk: 1, name, parents, attributes: {} });
const binding = (over: Partial<AkBinding>): AkBinding => ({
  pk: `b-${Math.random()}`,
  user: null,
  group: null,
  policy: null,
  target: APP_PK,
  negate: false,
  enabled: true,
  order: 0,
  ...over,
});

const ENG = 'a1b2c3d4-0000-4000-8000-000000000001';
const BACKEND = 'a1b2c3d4-0000-4000-8000-000000000002';
const SALES = 'a1b2c3d4-0000-4000-8000-000000000003';

const USERS = [
  user(1, 'ann', { groups: [ENG] }),
  user(2, 'bob', { groups: [BACKEND], is_active: false }),
  user(3, 'cat', { groups: [SALES] }),
  user(4, 'dan', { attributes: { givenName: 'Daniel', department: 'Ops' } }),
  user(5, 'ak-outpost', { type: 'internal_service_account' }),
  user(6, 'ci-bot', { type: 'service_account', groups: [ENG] }),
];
const GROUPS = [group(BACKEND, 'backend', [ENG]), group(ENG, 'engineering'), group(SALES, 'sales')];

function connector(appSlug?: string) {
  return new AuthentikConnector({ baseUrl: AK, token: 'ak-token', egress: strictEgress, appSlug, retry: FAST_RETRY });
}

/** Users across 3 pages of 2, groups on 2 pages of 2. */
function mockDirectory(scope: nock.Scope): nock.Scope {
  const users = USERS.map((u) => akUserJson(u, AK));
  const groups = GROUPS.map(akGroupJson);
  for (const page of [1, 2, 3]) {
    const body = akPage(users, page, 2);
    scope
      .get('/api/v3/core/users/')
      .query({ include_groups: 'false', include_roles: 'false', page: String(page), page_size: '500' })
      .matchHeader('authorization', 'Bearer ak-token')
      .reply(200, body);
  }
  for (const page of [1, 2]) {
    scope.get('/api/v3/core/groups/').query({ include_users: 'false', page: String(page), page_size: '500' }).reply(200, akPage(groups, page, 2));
  }
  return scope;
}

function mockApp(scope: nock.Scope, bindings: AkBinding[], mode: 'any' | 'all' = 'any'): nock.Scope {
  return scope
    .get('/api/v3/core/applications/crm/')
    .reply(200, akAppJson({ pk: APP_PK, slug: 'crm', name: 'CRM', policy_engine_mode: mode }))
    .get('/api/v3/policies/bindings/')
    .query({ target: APP_PK, page: '1', page_size: '500' })
    .reply(200, akPage(bindings.map(akBindingJson), 1, 500));
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('AuthentikConnector', () => {
  it('reads every page of users and groups, leaving service accounts out', async () => {
    const scope = mockDirectory(nock(AK));
    const c = connector();
    const snap = await c.readSnapshot();
    expect(scope.isDone()).toBe(true);
    expect([...snap.users.keys()]).toEqual(['1', '2', '3', '4']);
    expect(snap.users.get('2')).toMatchObject({ userName: 'bob', active: false, status: 'inactive' });
    expect(snap.users.get('4')).toMatchObject({ givenName: 'Daniel', familyName: 'Example', attributes: { givenName: 'Daniel', department: 'Ops' } });
    expect([...snap.groups.values()].map((g) => g.name)).toEqual(['backend', 'engineering', 'sales']);
    // Nested: bob is in backend, a child of engineering, so a member of both.
    expect(snap.memberships.get(ENG)).toEqual(new Set(['1', '2']));
    expect(snap.memberships.get(BACKEND)).toEqual(new Set(['2']));
    expect(c.stats.requests).toBe(5);
  });

  it('scopes to the users and groups bound to an application; disabled bindings grant nothing', async () => {
    const scope = mockDirectory(
      mockApp(nock(AK), [
        binding({ group: ENG }),
        binding({ user: 4 }),
        binding({ group: SALES, enabled: false }),
        binding({ policy: '9e2d7c1a-0000-4000-8000-00000000abcd' }),
      ]),
    );
    const c = connector('crm');
    const snap = await c.readSnapshot();
    expect(scope.isDone()).toBe(true);
    expect([...snap.users.keys()]).toEqual(['1', '2', '4']);
    expect([...snap.groups.keys()]).toEqual([ENG]);
    expect(snap.memberships.get(ENG)).toEqual(new Set(['1', '2']));
    expect(c.stats.ignoredPolicyBindings).toBe(1);
  });

  it('honours Retry-After on a 429 and retries a 500', async () => {
    const scope = nock(AK)
      .get('/api/v3/core/users/')
      .query(true)
      .reply(429, { detail: 'Request was throttled. Expected available in 1 second.' }, { 'Retry-After': '1' })
      .get('/api/v3/core/users/')
      .query(true)
      .reply(500, 'Internal Server Error', { 'content-type': 'text/plain' })
      .get('/api/v3/core/users/')
      .query(true)
      .reply(200, akPage([akUserJson(USERS[0]!, AK)], 1, 500))
      .get('/api/v3/core/groups/')
      .query(true)
      .reply(200, akPage([], 1, 500));
    const c = connector();
    const started = Date.now();
    const snap = await c.readSnapshot();
    expect(snap.users.size).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(c.stats).toMatchObject({ rateLimited: 1, retries: 2 });
    expect(scope.isDone()).toBe(true);
  });

  it('fails the read when a page keeps failing', async () => {
    nock(AK)
      .get('/api/v3/core/users/')
      .query((q) => q.page === '1')
      .reply(200, akPage(USERS.slice(0, 4).map((u) => akUserJson(u, AK)), 1, 2))
      .get('/api/v3/core/users/')
      .query((q) => q.page === '2')
      .times(3)
      .reply(502, '<html>Bad Gateway</html>', { 'content-type': 'text/html' });
    const error = await connector().readSnapshot().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdpReadError);
    expect((error as Error).message).toBe(
      'authentik GET /api/v3/core/users/?page=2 failed after 3 attempts: HTTP 502; authentik answered with a server error (502): try again later',
    );
  });

  it('says when the token is rejected, without retrying', async () => {
    const scope = nock(AK).get('/api/v3/core/users/').query(true).reply(403, { detail: 'Token invalid/expired' });
    // authentik answers an invalid token with 403, not 401: its detail says which 403 it is.
    await expect(connector().readSnapshot()).rejects.toThrow(/HTTP 403; authentik rejected the API token: it is invalid or expired/);
    expect(scope.isDone()).toBe(true);
  });

  it("says when the token's user may not read", async () => {
    nock(AK).get('/api/v3/core/users/').query(true).reply(403, { detail: 'You do not have permission to perform this action.' });
    await expect(connector().readSnapshot()).rejects.toThrow(/HTTP 403; the token's user may not read this \(authentik: "You do not have permission/);
  });

  it('names an unknown application', async () => {
    nock(AK).get('/api/v3/core/applications/crm/').reply(404, { detail: 'No Application matches the given query.' });
    await expect(connector('crm').readSnapshot()).rejects.toThrow('authentik GET /api/v3/core/applications/crm/ failed: HTTP 404; authentik has no application with slug "crm": check --authentik-app');
  });

  it('rejects a body that is not a paginated list', async () => {
    nock(AK).get('/api/v3/core/users/').query(true).times(3).reply(200, { results: [] });
    await expect(connector().readSnapshot()).rejects.toThrow(IdpReadError);
  });
});
