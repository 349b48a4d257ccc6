import okta from '@okta/okta-sdk-nodejs';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IdpReadError } from '../../src/connectors/connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import { type OktaAppUserLike, appUserToDirectoryUser, toDirectoryUser } from '../../src/connectors/okta/okta.mapping.js';
import { strictEgress } from '../support/egress.js';

// Okta's wire format, as its management API returns it.
const ORG = 'https://acme.okta.test';
const FAST_RETRY = { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 20 };

function oktaUser(id: string, login: string, status = 'ACTIVE', profile: Record<string, unknown> = {}) {
  return {
    id,
    status,
    created: '2023-03-01T10:00:00.000Z',
    activated: '2023-03-01T10:00:01.000Z',
    statusChanged: '2024-05-01T10:00:00.000Z',
    lastLogin: '2024-06-01T09:00:00.000Z',
    lastUpdated: '2024-05-01T10:00:00.000Z',
    passwordChanged: '2023-03-01T10:00:01.000Z',
    type: { id: 'oty1abcdEFGH2345' },
    profile: { firstName: 'First', lastName: 'Last', mobilePhone: null, secondEmail: null, login, email: login, ...profile },
    credentials: { password: {}, provider: { type: 'OKTA', name: 'OKTA' } },
    _links: { self: { href: `${ORG}/api/v1/users/${id}` } },
  };
}

function oktaGroup(id: string, name: string, type = 'OKTA_GROUP') {
  return {
    id,
    created: '2023-01-01T00:00:00.000Z',
    lastUpdated: '2024-01-01T00:00:00.000Z',
    lastMembershipUpdated: '2024-02-01T00:00:00.000Z',
    objectClass: ['okta:user_group'],
    type,
    profile: { name, description: `${name} team` },
    _links: { users: { href: `${ORG}/api/v1/groups/${id}/users` }, apps: { href: `${ORG}/api/v1/groups/${id}/apps` } },
  };
}

function appUser(appId: string, user: ReturnType<typeof oktaUser>, scope: 'USER' | 'GROUP') {
  return {
    id: user.id,
    externalId: null,
    created: '2024-01-01T00:00:00.000Z',
    lastUpdated: '2024-01-01T00:00:00.000Z',
    scope,
    status: 'PROVISIONED',
    statusChanged: '2024-01-01T00:00:00.000Z',
    passwordChanged: null,
    syncState: 'DISABLED',
    credentials: { userName: user.profile.login },
    profile: {},
    _links: { app: { href: `${ORG}/api/v1/apps/${appId}` }, user: { href: `${ORG}/api/v1/users/${user.id}` } },
    _embedded: { user },
  };
}

function appGroup(appId: string, group: ReturnType<typeof oktaGroup>) {
  return {
    id: group.id,
    lastUpdated: '2024-01-01T00:00:00.000Z',
    priority: 0,
    profile: {},
    _links: { app: { href: `${ORG}/api/v1/apps/${appId}` }, group: { href: `${ORG}/api/v1/groups/${group.id}` } },
    _embedded: { group },
  };
}

const rate = () => ({
  'X-Rate-Limit-Limit': '600',
  'X-Rate-Limit-Remaining': '598',
  'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000) + 60),
  Date: new Date().toUTCString(),
});

function links(path: string, next?: string): Record<string, string[]> {
  const l = [`<${ORG}${path}>; rel="self"`];
  if (next) l.push(`<${ORG}${next}>; rel="next"`);
  return { link: l };
}

/** The SDK's own client, for comparing with its models (SSWS stated: no okta.yaml or OKTA_CLIENT_* may change it). */
function sdkClient() {
  return new okta.Client({ orgUrl: ORG, token: 'test-token', authorizationMode: 'SSWS', cacheMiddleware: null } as ConstructorParameters<typeof okta.Client>[0]);
}

function connector(appId?: string) {
  return new OktaConnector({ orgUrl: ORG, credentials: { kind: 'token', token: 'test-token' }, egress: strictEgress, appId, retry: FAST_RETRY });
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('OktaConnector, app-scoped', () => {
  const APP = '0oa1app';
  const ann = oktaUser('00u1', 'ann@acme.test', 'ACTIVE', { costCenter: 'R&D', nickName: 'Annie' });
  const bob = oktaUser('00u2', 'bob@acme.test', 'SUSPENDED');
  const cat = oktaUser('00u3', 'cat@acme.test', 'DEPROVISIONED');
  const dan = oktaUser('00u4', 'dan@acme.test', 'STAGED');
  const eve = oktaUser('00u5', 'eve@acme.test', 'LOCKED_OUT');
  const outsider = oktaUser('00u9', 'out@acme.test');
  const eng = oktaGroup('00g1', 'Engineering');

  function mockApp(scope: nock.Scope) {
    return scope
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .matchHeader('authorization', 'SSWS test-token')
      .reply(200, [appUser(APP, ann, 'USER'), appUser(APP, bob, 'GROUP'), appUser(APP, cat, 'USER')], {
        ...rate(),
        ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, `/api/v1/apps/${APP}/users?after=00u3&expand=user&limit=500`),
      })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u3', expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, dan, 'GROUP'), appUser(APP, eve, 'USER')], {
        ...rate(),
        ...links(`/api/v1/apps/${APP}/users?after=00u3&expand=user&limit=500`),
      })
      .get(`/api/v1/apps/${APP}/groups`)
      .query({ expand: 'group', limit: '200' })
      .reply(200, [appGroup(APP, eng)], { ...rate(), ...links(`/api/v1/apps/${APP}/groups?expand=group&limit=200`) });
  }

  function mockMembers(scope: nock.Scope) {
    return scope
      .get('/api/v1/groups/00g1/users')
      .query({ limit: '1000' })
      .reply(200, [bob, dan], { ...rate(), ...links('/api/v1/groups/00g1/users?limit=1000', '/api/v1/groups/00g1/users?after=00u4&limit=1000') })
      .get('/api/v1/groups/00g1/users')
      .query({ after: '00u4', limit: '1000' })
      .reply(200, [outsider], { ...rate(), ...links('/api/v1/groups/00g1/users?after=00u4&limit=1000') });
  }

  it('reads app users (direct and group-scoped, every status), app groups and members across pages', async () => {
    const scope = mockMembers(mockApp(nock(ORG)));
    const c = connector(APP);
    const snap = await c.readSnapshot();
    expect(scope.isDone()).toBe(true);

    expect([...snap.users.keys()]).toEqual(['00u1', '00u2', '00u3', '00u4', '00u5']);
    const byId = (id: string) => snap.users.get(id)!;
    expect(byId('00u1')).toMatchObject({
      userName: 'ann@acme.test',
      email: 'ann@acme.test',
      givenName: 'First',
      familyName: 'Last',
      displayName: 'First Last',
      active: true,
      status: 'ACTIVE',
    });
    // Every raw profile attribute is kept, custom ones included.
    expect(byId('00u1').attributes).toMatchObject({ costCenter: 'R&D', nickName: 'Annie', mobilePhone: null });
    expect(byId('00u2')).toMatchObject({ active: false, status: 'SUSPENDED' });
    expect(byId('00u3')).toMatchObject({ active: false, status: 'DEPROVISIONED' });
    expect(byId('00u4')).toMatchObject({ active: true, status: 'STAGED' });
    expect(byId('00u5')).toMatchObject({ active: true, status: 'LOCKED_OUT' });

    expect(snap.groups.get('00g1')).toMatchObject({ name: 'Engineering', description: 'Engineering team' });
    // The member outside the app's scope is dropped.
    expect([...snap.memberships.get('00g1')!]).toEqual(['00u2', '00u4']);
    expect(c.stats.requests).toBe(5);
  });

  it('waits for X-Rate-Limit-Reset on a 429 and carries on', async () => {
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query(true)
      .reply(
        429,
        { errorCode: 'E0000047', errorSummary: 'API call exceeded rate limit due to too many requests.', errorLink: 'E0000047', errorId: 'sampleQP', errorCauses: [] },
        {
          'X-Rate-Limit-Limit': '600',
          'X-Rate-Limit-Remaining': '0',
          // Reset is now: the SDK waits reset - Date + 1 s.
          'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000)),
          Date: new Date().toUTCString(),
        },
      );
    mockMembers(mockApp(scope));
    const c = connector(APP);
    const started = Date.now();
    const snap = await c.readSnapshot();
    expect(snap.users.size).toBe(5);
    expect(c.stats.rateLimited).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(scope.isDone()).toBe(true);
  });

  it('retries a 500 on a middle page and reads the rest', async () => {
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, ann, 'USER')], {
        ...rate(),
        ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, `/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`),
      })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(500, { errorCode: 'E0000009', errorSummary: 'Internal Server Error', errorCauses: [] }, rate())
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, bob, 'USER')], { ...rate(), ...links(`/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`) })
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const c = connector(APP);
    const snap = await c.readSnapshot();
    expect([...snap.users.keys()]).toEqual(['00u1', '00u2']);
    expect(c.stats.retries).toBe(1);
    expect(scope.isDone()).toBe(true);
  });

  it('asks again for a page whose body is JSON but not a list, never taking it for an empty page', async () => {
    nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, { errorCode: 'E0000009', errorSummary: 'Internal Server Error' }, rate())
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, ann, 'USER')], rate())
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const snap = await connector(APP).readSnapshot();
    expect([...snap.users.keys()]).toEqual(['00u1']);
  });

  // A middle page whose Link points past it: the SDK's cursor has moved on before the body is read.
  it.each([
    ['truncated (not JSON)', '[{"id": "00u2", "sta'],
    ['an object', JSON.stringify({ errorCode: 'E0000009', errorSummary: 'Internal Server Error' })],
    ['null', 'null'],
    ['a list with a null item', '[null]'],
    ['a list with a string item', '["00u2"]'],
  ])('asks again for a middle page that is %s, never skipping it or ending the listing there', async (_, body) => {
    const page2 = `/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`;
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, ann, 'USER')], { ...rate(), ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, page2) })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(200, body, { 'content-type': 'application/json', ...rate(), ...links(page2, `/api/v1/apps/${APP}/users?after=00u2&expand=user&limit=500`) })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, bob, 'USER')], { ...rate(), ...links(page2) })
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const c = connector(APP);
    const snap = await c.readSnapshot();
    expect([...snap.users.keys()]).toEqual(['00u1', '00u2']);
    expect(c.stats.retries).toBe(1);
    expect(scope.isDone()).toBe(true);
  });

  it('reads on past an empty middle page that links to the next one', async () => {
    const page2 = `/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`;
    const page3 = `/api/v1/apps/${APP}/users?after=00u1x&expand=user&limit=500`;
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, ann, 'USER')], { ...rate(), ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, page2) })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(200, [], { ...rate(), ...links(page2, page3) })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1x', expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, bob, 'USER')], { ...rate(), ...links(page3) })
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const snap = await connector(APP).readSnapshot();
    expect([...snap.users.keys()]).toEqual(['00u1', '00u2']);
    expect(scope.isDone()).toBe(true);
  });

  // Listings are read as JSON (okta.json-pages.ts); a targeted run gets a single app user as the SDK's model.
  it("maps app users read as JSON pages exactly as the SDK's model of the single app user", async () => {
    const odd = oktaUser('00u7', 'Zoë@acme.test', 'RECOVERY', { costCenter: 12, nested: { x: [null, 'z'] }, manager: null, constructor: 'x', '10': 'ten' });
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, odd, 'GROUP')], rate())
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate())
      .get(`/api/v1/apps/${APP}/users/00u7`)
      .query({ expand: 'user' })
      .reply(200, appUser(APP, odd, 'GROUP'), rate());
    const snap = await connector(APP).readSnapshot();
    const model = await sdkClient().applicationApi.getApplicationUser({ appId: APP, userId: '00u7', expand: 'user' });
    expect(snap.users.get('00u7')).toEqual(appUserToDirectoryUser(model as OktaAppUserLike));
    expect(snap.users.get('00u7')?.attributes).toMatchObject({ costCenter: 12, '10': 'ten' });
    expect(scope.isDone()).toBe(true);
  });

  it('fails the whole read when a page keeps failing, naming the endpoint', async () => {
    nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [appUser(APP, ann, 'USER')], {
        ...rate(),
        ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, `/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`),
      })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .times(3)
      .reply(503, { errorCode: 'E0000009', errorSummary: 'Service Unavailable', errorCauses: [] }, rate());
    const error = await connector(APP).readSnapshot().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdpReadError);
    expect((error as Error).message).toMatch(new RegExp(`/api/v1/apps/${APP}/users failed after 3 attempts: HTTP 503`));
  });

  it('does not retry a rejected token and says what to fix', async () => {
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query(true)
      .reply(401, { errorCode: 'E0000011', errorSummary: 'Invalid token provided', errorCauses: [] }, rate());
    const error = await connector(APP).readSnapshot().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdpReadError);
    expect((error as IdpReadError).status).toBe(401);
    expect((error as Error).message).toMatch(/HTTP 401 E0000011.*Okta rejected the API token: it is invalid, expired or revoked/);
    expect(scope.isDone()).toBe(true);
  });

  it('names a missing app', async () => {
    nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query(true)
      .reply(404, { errorCode: 'E0000007', errorSummary: `Not found: Resource not found: ${APP} (AppInstance)`, errorCauses: [] }, rate());
    await expect(connector(APP).readSnapshot()).rejects.toThrow(/HTTP 404 E0000007.*Okta has no app with id 0oa1app: check --okta-app-id/);
  });

  it('skips a user without a login as bad data, keeping its id and status, and reads the rest', async () => {
    const broken = { ...oktaUser('00u7', 'x@acme.test'), status: 'SUSPENDED' };
    delete (broken.profile as Record<string, unknown>).login;
    nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query(true)
      .reply(200, [appUser(APP, broken, 'USER'), appUser(APP, oktaUser('00u8', 'y@acme.test'), 'USER')], rate())
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const snapshot = await connector(APP).readSnapshot();
    expect([...snapshot.users.keys()]).toEqual(['00u8']);
    expect(snapshot.skipped).toEqual([{ kind: 'user', externalId: '00u7', subject: '00u7', reason: 'Okta user 00u7 has no profile.login', active: false }]);
  });

  it('skips both users whose logins differ only in case', async () => {
    nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query(true)
      .reply(200, [appUser(APP, oktaUser('00u1', 'Ann@acme.test'), 'USER'), appUser(APP, oktaUser('00u2', 'ann@ACME.test'), 'USER')], rate())
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], rate());
    const snapshot = await connector(APP).readSnapshot();
    expect(snapshot.users.size).toBe(0);
    expect(snapshot.skipped.map((r) => [r.externalId, r.reason])).toEqual([
      ['00u1', expect.stringMatching(/00u1 and 00u2 have the same userName/)],
      ['00u2', expect.stringMatching(/00u1 and 00u2 have the same userName/)],
    ]);
  });
});

describe('OktaConnector, whole org', () => {
  it('reads every user including DEPROVISIONED ones, which the plain listing omits', async () => {
    const scope = nock(ORG)
      .get('/api/v1/users')
      .query({ limit: '200' })
      .reply(200, [oktaUser('00u1', 'ann@acme.test')], {
        ...rate(),
        ...links('/api/v1/users?limit=200', '/api/v1/users?after=00u1&limit=200'),
      })
      .get('/api/v1/users')
      .query({ after: '00u1', limit: '200' })
      .reply(200, [oktaUser('00u2', 'bob@acme.test', 'SUSPENDED')], { ...rate(), ...links('/api/v1/users?after=00u1&limit=200') })
      .get('/api/v1/users')
      .query({ filter: 'status eq "DEPROVISIONED"', limit: '200' })
      .reply(200, [oktaUser('00u3', 'cat@acme.test', 'DEPROVISIONED')], rate())
      .get('/api/v1/groups')
      .query({ limit: '10000' })
      .reply(200, [oktaGroup('00g0', 'Everyone', 'BUILT_IN'), oktaGroup('00g1', 'Sales')], rate())
      .get('/api/v1/groups/00g0/users')
      .query(true)
      .reply(200, [oktaUser('00u1', 'ann@acme.test'), oktaUser('00u2', 'bob@acme.test', 'SUSPENDED')], rate())
      .get('/api/v1/groups/00g1/users')
      .query(true)
      .reply(200, [oktaUser('00u2', 'bob@acme.test', 'SUSPENDED')], rate());
    const snap = await connector().readSnapshot();
    expect(scope.isDone()).toBe(true);
    expect([...snap.users.values()].map((u) => [u.externalId, u.status, u.active])).toEqual([
      ['00u1', 'ACTIVE', true],
      ['00u2', 'SUSPENDED', false],
      ['00u3', 'DEPROVISIONED', false],
    ]);
    expect(snap.groups.get('00g0')?.attributes).toMatchObject({ type: 'BUILT_IN' });
    expect([...snap.memberships.get('00g0')!]).toEqual(['00u1', '00u2']);
  });

  // Listings are read as Okta's JSON, not the SDK's models (okta.json-pages.ts); targeted runs
  // still get single users as models (getUser). Both must map to the same user, fingerprint
  // included, or every targeted run would update what the last full run wrote.
  it("maps users read as JSON pages exactly as it maps the SDK's models of them", async () => {
    const odd = oktaUser('00u7', 'Zoë@acme.test', 'PASSWORD_EXPIRED', {
      costCenter: 12,
      isManager: true,
      tags: ['a', 'b'],
      nested: { x: 1, y: [null, 'z'] },
      empty: '',
      manager: null,
      displayName: 'Zoë Ä',
      startDate: '2024-01-01T00:00:00.000Z',
      'dotted.key': 2,
    });
    // lastName undefined: absent on the wire (JSON drops it).
    const plain = oktaUser('00u8', 'max@acme.test', 'ACTIVE', { firstName: null, lastName: undefined });
    const scope = nock(ORG)
      .get('/api/v1/users')
      .query({ limit: '200' })
      .reply(200, [odd, plain], rate())
      .get('/api/v1/users')
      .query({ filter: 'status eq "DEPROVISIONED"', limit: '200' })
      .reply(200, [], rate())
      .get('/api/v1/groups')
      .query({ limit: '10000' })
      .reply(200, [], rate())
      .get('/api/v1/users/00u7')
      .reply(200, odd, rate())
      .get('/api/v1/users/00u8')
      .reply(200, plain, rate());
    const snap = await connector().readSnapshot();
    const sdk = sdkClient();
    for (const id of ['00u7', '00u8']) {
      expect(snap.users.get(id)).toEqual(toDirectoryUser(await sdk.userApi.getUser({ userId: id })));
    }
    expect(snap.users.get('00u7')?.attributes).toMatchObject({ costCenter: 12, nested: { x: 1, y: [null, 'z'] }, 'dotted.key': 2 });
    expect(scope.isDone()).toBe(true);
  });
});

describe('OktaConnector pacing', () => {
  it('waits for the bucket to reset once it has used its share, instead of running into 429s', async () => {
    const APP = '0oaPace';
    const resetIn = 2;
    const headers = (remaining: number) => ({
      'X-Rate-Limit-Limit': '100',
      'X-Rate-Limit-Remaining': String(remaining),
      'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000) + resetIn),
      Date: new Date().toUTCString(),
    });
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      // 40 of 100 left: more than half of the bucket is used, so the next call waits for the reset.
      .reply(200, [appUser(APP, oktaUser('00u1', 'ann@acme.test'), 'USER')], {
        ...headers(40),
        ...links(`/api/v1/apps/${APP}/users?expand=user&limit=500`, `/api/v1/apps/${APP}/users?after=00u1&expand=user&limit=500`),
      })
      .get(`/api/v1/apps/${APP}/users`)
      .query({ after: '00u1', expand: 'user', limit: '500' })
      .reply(200, [], headers(99))
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], headers(99));
    const c = connector(APP);
    const started = Date.now();
    await c.readSnapshot();
    expect(scope.isDone()).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(c.stats.pacedMs).toBeGreaterThan(500);
    expect(c.stats.rateLimited).toBe(0);
    // The fullest the bucket was seen (60 of 100 spent, by anyone): shown in the run's stats.
    expect(c.stats.rateLimitPeakPercent).toBe(60);
  });

  it('uses the share it is given: at 75% it does not wait with 40 of 100 left', async () => {
    const APP = '0oaShare';
    const reply = (remaining: number) => ({
      'X-Rate-Limit-Limit': '100',
      'X-Rate-Limit-Remaining': String(remaining),
      'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000) + 30),
      Date: new Date().toUTCString(),
    });
    const scope = nock(ORG)
      .get(`/api/v1/apps/${APP}/users`)
      .query({ expand: 'user', limit: '500' })
      .reply(200, [], reply(40))
      .get(`/api/v1/apps/${APP}/groups`)
      .query(true)
      .reply(200, [], reply(39));
    const c = new OktaConnector({ orgUrl: ORG, credentials: { kind: 'token', token: 'test-token' }, egress: strictEgress, appId: APP, retry: FAST_RETRY, rateLimitShare: 0.75 });
    await c.readSnapshot();
    expect(scope.isDone()).toBe(true);
    expect(c.stats.pacedMs).toBe(0);
    expect(c.stats.rateLimitPeakPercent).toBe(61);
  });
});
