import { afterEach, describe, expect, it } from 'vitest';
import { IdpReadError, NO_SUBJECTS, type SubjectNames } from '../../src/connectors/connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import { FakeOkta } from '../support/fake-okta.js';
import { loopbackEgress } from '../support/egress.js';

/**
 * Targeted reads (readSubjects) against the fake Okta org, which answers single users, groups and
 * app assignments in Okta's wire format (404 E0000007 for what is not there), through the real SDK.
 * Every test pins the exact requests: a single named user costs 2, a login 3 (app-scoped).
 */

const APP = '0oaPortal';
const FAST_RETRY = { retries: 1, minTimeoutMs: 10, maxTimeoutMs: 20 };
const servers: FakeOkta[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** Ann and Bob in Engineering (assigned to the app), Cy in Ops (not assigned), Dee assigned directly. */
async function org(): Promise<FakeOkta> {
  const o = await new FakeOkta().start();
  servers.push(o);
  o.addUser('ann@acme.test', { id: '00uAnn' });
  o.addUser('bob@acme.test', { id: '00uBob' });
  o.addUser('cy@acme.test', { id: '00uCy' });
  o.addUser('dee@acme.test', { id: '00uDee', status: 'SUSPENDED' });
  o.addGroup('Engineering', { id: '00gEng' });
  o.addGroup('Ops', { id: '00gOps' });
  o.addMember('00gEng', '00uAnn');
  o.addMember('00gEng', '00uBob');
  o.addMember('00gOps', '00uCy');
  o.addApp(APP);
  o.assignGroup(APP, '00gEng');
  o.assignUser(APP, '00uDee');
  return o;
}

function connector(o: FakeOkta, appId: string | null) {
  return new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, appId, retry: FAST_RETRY });
}

/** Reads `names` and returns the read with the requests it made. */
async function read(o: FakeOkta, appId: string | null, names: Partial<SubjectNames>) {
  const c = connector(o, appId);
  const before = o.requests.length;
  const result = await c.readSubjects({ ...NO_SUBJECTS, ...names });
  const requests = o.requests.slice(before);
  expect(c.stats.requests).toBe(requests.length);
  return { ...result, requests };
}

describe('readSubjects, app-scoped', () => {
  it('reads a user assigned through a group: the app user with its embedded user, then its groups (2 requests)', async () => {
    const o = await org();
    const r = await read(o, APP, { userIds: ['00uAnn'] });
    expect(r.requests).toEqual([`GET /api/v1/apps/${APP}/users/00uAnn?expand=user`, 'GET /api/v1/users/00uAnn/groups']);
    expect([...r.snapshot.users.keys()]).toEqual(['00uAnn']);
    expect(r.snapshot.users.get('00uAnn')).toMatchObject({ userName: 'ann@acme.test', active: true, status: 'ACTIVE' });
    expect(r.snapshot.groups.size).toBe(0);
    expect(r.userIds).toEqual(['00uAnn']);
    expect([...r.groupsOf]).toEqual([['00uAnn', ['00gEng']]]);
    expect(r.groupIds).toEqual([]);
  });

  it('reads a user assigned directly, suspended: in scope, inactive', async () => {
    const o = await org();
    const r = await read(o, APP, { userIds: ['00uDee'] });
    expect(r.requests).toHaveLength(2);
    expect(r.snapshot.users.get('00uDee')).toMatchObject({ active: false, status: 'SUSPENDED' });
    expect([...r.groupsOf]).toEqual([['00uDee', []]]);
  });

  it('finds a user the app does not reach out of scope with one request, and asks nothing more of it', async () => {
    const o = await org();
    const r = await read(o, APP, { userIds: ['00uCy'] });
    expect(r.requests).toEqual([`GET /api/v1/apps/${APP}/users/00uCy?expand=user`]);
    expect(r.snapshot.users.size).toBe(0);
    expect(r.userIds).toEqual(['00uCy']);
    expect(r.groupsOf.size).toBe(0);
  });

  it('reads a user named in place through the users API alone (2 requests, none to the app) and says it took it in scope', async () => {
    const o = await org();
    o.updateUser('00uAnn', { profile: { department: 'Sales' } });
    const r = await read(o, APP, { userIds: ['00uAnn', '00uBob'], inPlace: ['00uAnn'] });
    expect(r.requests.filter((q) => q.includes('00uAnn'))).toEqual(['GET /api/v1/users/00uAnn', 'GET /api/v1/users/00uAnn/groups']);
    // Bob is not named in place: the app says whether he is in scope.
    expect(r.requests.filter((q) => q.includes('00uBob'))).toEqual([`GET /api/v1/apps/${APP}/users/00uBob?expand=user`, 'GET /api/v1/users/00uBob/groups']);
    expect(r.snapshot.users.get('00uAnn')).toMatchObject({ userName: 'ann@acme.test', active: true, attributes: expect.objectContaining({ department: 'Sales' }) });
    expect(r.assumedInScope).toEqual(['00uAnn']);
    expect([...r.groupsOf]).toEqual([['00uAnn', ['00gEng']], ['00uBob', ['00gEng']]]);
  });

  it('reads a user named in place the same whichever way: the app user and the user map to the same record', async () => {
    const o = await org();
    const viaApp = await read(o, APP, { userIds: ['00uAnn', '00uDee'] });
    const inPlace = await read(o, APP, { userIds: ['00uAnn', '00uDee'], inPlace: ['00uAnn', '00uDee'] });
    expect(inPlace.snapshot.users).toEqual(viaApp.snapshot.users);
    expect(inPlace.groupsOf).toEqual(viaApp.groupsOf);
    expect(inPlace.requests.some((q) => q.startsWith('GET /api/v1/apps/'))).toBe(false);
  });

  it('asks the app about a user named in place who was deactivated since (Okta takes its assignments away then)', async () => {
    const o = await org();
    o.updateUser('00uAnn', { status: 'DEPROVISIONED' });
    const r = await read(o, APP, { userIds: ['00uAnn'], inPlace: ['00uAnn'] });
    expect(r.requests[0]).toBe('GET /api/v1/users/00uAnn');
    expect(r.requests[1]).toBe(`GET /api/v1/apps/${APP}/users/00uAnn?expand=user`);
    expect(r.assumedInScope).toEqual([]);
  });

  it('finds a user named in place but deleted out of scope, with one request', async () => {
    const o = await org();
    o.deleteUser('00uAnn');
    const r = await read(o, APP, { userIds: ['00uAnn'], inPlace: ['00uAnn'] });
    expect(r.requests).toEqual(['GET /api/v1/users/00uAnn']);
    expect(r.snapshot.users.size).toBe(0);
    expect(r.assumedInScope).toEqual([]);
  });

  it('finds a deleted user out of scope', async () => {
    const o = await org();
    o.deleteUser('00uAnn');
    const r = await read(o, APP, { userIds: ['00uAnn'] });
    expect(r.requests).toHaveLength(1);
    expect(r.snapshot.users.size).toBe(0);
    expect(r.userIds).toEqual(['00uAnn']);
  });

  it('resolves a login to its user, whatever its case, with one more request (3)', async () => {
    const o = await org();
    const r = await read(o, APP, { logins: ['Ann@Acme.test'] });
    expect(r.requests).toEqual([
      'GET /api/v1/users/Ann%40Acme.test',
      `GET /api/v1/apps/${APP}/users/00uAnn?expand=user`,
      'GET /api/v1/users/00uAnn/groups',
    ]);
    expect(r.userIds).toEqual(['00uAnn']);
    expect(r.unknownLogins).toEqual([]);
    expect([...r.snapshot.users.keys()]).toEqual(['00uAnn']);
  });

  it('reads a user named twice (by id and by login) once', async () => {
    const o = await org();
    const r = await read(o, APP, { userIds: ['00uAnn', '00uAnn'], logins: ['ann@acme.test'] });
    expect(r.requests).toHaveLength(3);
    expect(r.userIds).toEqual(['00uAnn']);
  });

  it('says which logins no user has', async () => {
    const o = await org();
    const r = await read(o, APP, { logins: ['nobody@acme.test'] });
    expect(r.requests).toEqual(['GET /api/v1/users/nobody%40acme.test']);
    expect(r.unknownLogins).toEqual(['nobody@acme.test']);
    expect(r.userIds).toEqual([]);
    expect(r.snapshot.users.size).toBe(0);
  });

  it('reads a group assigned to the app with all its members, each in scope (2 requests)', async () => {
    const o = await org();
    const r = await read(o, APP, { groupIds: ['00gEng'] });
    expect(r.requests).toEqual([`GET /api/v1/apps/${APP}/groups/00gEng?expand=group`, 'GET /api/v1/groups/00gEng/users?limit=1000']);
    expect([...r.snapshot.groups.keys()]).toEqual(['00gEng']);
    expect(r.snapshot.groups.get('00gEng')).toMatchObject({ name: 'Engineering' });
    expect([...r.snapshot.memberships.get('00gEng')!].sort()).toEqual(['00uAnn', '00uBob']);
    expect([...r.snapshot.users.keys()].sort()).toEqual(['00uAnn', '00uBob']);
    expect(r.groupIds).toEqual(['00gEng']);
    expect(r.userIds).toEqual([]);
    expect(r.groupsOf.size).toBe(0);
  });

  it('finds a group not assigned to the app (or deleted) out of scope, with one request each', async () => {
    const o = await org();
    o.addGroup('Gone', { id: '00gGone' });
    o.deleteGroup('00gGone');
    const r = await read(o, APP, { groupIds: ['00gOps', '00gGone'] });
    expect(r.requests.sort()).toEqual([`GET /api/v1/apps/${APP}/groups/00gGone?expand=group`, `GET /api/v1/apps/${APP}/groups/00gOps?expand=group`]);
    expect(r.snapshot.groups.size).toBe(0);
    expect(r.snapshot.users.size).toBe(0);
    expect(r.groupIds).toEqual(['00gOps', '00gGone']);
  });

  it('skips a malformed user alone, as a full read does: it is in scope (its groups are read), the others are taken', async () => {
    const o = await org();
    (o.users.get('00uBob')!.profile as Record<string, unknown>).login = 42;
    const r = await read(o, APP, { userIds: ['00uAnn', '00uBob'] });
    expect(r.requests).toHaveLength(4);
    expect([...r.snapshot.users.keys()]).toEqual(['00uAnn']);
    expect(r.snapshot.skipped).toEqual([expect.objectContaining({ kind: 'user', externalId: '00uBob', active: true, reason: expect.stringContaining('profile.login') })]);
    expect([...r.groupsOf.keys()]).toEqual(['00uAnn', '00uBob']);
  });

  it('reads users and groups together: a named user who is also a member is read once as each', async () => {
    const o = await org();
    const r = await read(o, APP, { userIds: ['00uBob', '00uCy'], groupIds: ['00gEng'] });
    expect(r.requests).toHaveLength(2 + 1 + 2);
    expect([...r.snapshot.users.keys()].sort()).toEqual(['00uAnn', '00uBob']);
    expect([...r.groupsOf.keys()]).toEqual(['00uBob']);
  });

  it('fails when the app itself is gone instead of finding every user out of scope', async () => {
    const o = await org();
    o.apps.delete(APP);
    const error = await connector(o, APP).readSubjects({ ...NO_SUBJECTS, userIds: ['00uAnn'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdpReadError);
    expect((error as IdpReadError).message).toMatch(new RegExp(`Okta GET /api/v1/apps/${APP}/users/00uAnn failed: HTTP 404 E0000007.*Okta has no app with id ${APP}`));
  });

  it('retries a single resource that fails with a 500, as any page', async () => {
    const o = await org();
    let failures = 1;
    o.fault = ({ path }) => (path.endsWith('/users/00uAnn') && failures-- > 0 ? { status: 500, body: { errorCode: 'E0000009', errorSummary: 'Internal Server Error' } } : undefined);
    const c = connector(o, APP);
    const r = await c.readSubjects({ ...NO_SUBJECTS, userIds: ['00uAnn'] });
    expect([...r.snapshot.users.keys()]).toEqual(['00uAnn']);
    expect(c.stats.retries).toBe(1);
    expect(c.stats.requests).toBe(3);
  });
});

describe('readSubjects, whole org', () => {
  it('asks nothing when nothing is named', async () => {
    const o = await org();
    const r = await read(o, null, {});
    expect(r.requests).toEqual([]);
    expect(r).toMatchObject({ userIds: [], unknownLogins: [], groupIds: [] });
    expect(r.snapshot.users.size + r.snapshot.groups.size).toBe(0);
  });

  it('reads a user by id and its groups (2 requests); a deactivated one is in scope, inactive', async () => {
    const o = await org();
    o.updateUser('00uCy', { status: 'DEPROVISIONED' });
    const r = await read(o, null, { userIds: ['00uCy'] });
    expect(r.requests).toEqual(['GET /api/v1/users/00uCy', 'GET /api/v1/users/00uCy/groups']);
    expect(r.snapshot.users.get('00uCy')).toMatchObject({ active: false, status: 'DEPROVISIONED' });
    expect([...r.groupsOf]).toEqual([['00uCy', ['00gOps']]]);
  });

  it('resolves a login with the same request that reads the user (2 requests)', async () => {
    const o = await org();
    const r = await read(o, null, { logins: ['cy@acme.test'] });
    expect(r.requests).toEqual(['GET /api/v1/users/cy%40acme.test', 'GET /api/v1/users/00uCy/groups']);
    expect(r.userIds).toEqual(['00uCy']);
    expect([...r.snapshot.users.keys()]).toEqual(['00uCy']);
  });

  it('finds a deleted user gone (1 request)', async () => {
    const o = await org();
    o.deleteUser('00uCy');
    const r = await read(o, null, { userIds: ['00uCy'] });
    expect(r.requests).toEqual(['GET /api/v1/users/00uCy']);
    expect(r.snapshot.users.size).toBe(0);
    expect(r.userIds).toEqual(['00uCy']);
  });

  it('reads any group with its members; a deleted one is gone', async () => {
    const o = await org();
    o.addGroup('Gone', { id: '00gGone' });
    o.deleteGroup('00gGone');
    const r = await read(o, null, { groupIds: ['00gOps', '00gGone'] });
    expect(r.requests.sort()).toEqual(['GET /api/v1/groups/00gGone', 'GET /api/v1/groups/00gOps', 'GET /api/v1/groups/00gOps/users?limit=1000']);
    expect([...r.snapshot.groups.keys()]).toEqual(['00gOps']);
    expect([...r.snapshot.memberships.get('00gOps')!]).toEqual(['00uCy']);
    expect([...r.snapshot.users.keys()]).toEqual(['00uCy']);
  });

  // The SDK's Group model drops custom profile attributes: groups are read as JSON both ways (okta.json-pages.ts).
  it('reads a group with every profile attribute, the same as the full read does (an AD group: groupType, groupScope, objectSid)', async () => {
    const o = await org();
    const ad = o.addGroup('Domain Users', { id: '00gAD', type: 'APP_GROUP' });
    Object.assign(ad.profile as Record<string, unknown>, {
      samAccountName: 'Domain Users',
      dn: 'CN=Domain Users,CN=Users,DC=acme,DC=test',
      windowsDomainQualifiedName: 'ACME\\Domain Users',
      externalId: 'lU4v4I1rYEa2Tyk9R3a1Ng==',
      groupType: 'Security',
      groupScope: 'Global',
      objectSid: 'S-1-5-21-1-2-3-513',
    });
    const targeted = (await read(o, null, { groupIds: ['00gAD'] })).snapshot.groups.get('00gAD');
    const full = (await connector(o, null).readSnapshot()).groups.get('00gAD');
    expect(targeted?.attributes).toMatchObject({ groupType: 'Security', groupScope: 'Global', objectSid: 'S-1-5-21-1-2-3-513', type: 'APP_GROUP' });
    expect(full).toEqual(targeted);
  });

  it('skips a malformed member of a named group alone', async () => {
    const o = await org();
    (o.users.get('00uBob')!.profile as Record<string, unknown>).login = '';
    const r = await read(o, null, { groupIds: ['00gEng'] });
    expect([...r.snapshot.users.keys()]).toEqual(['00uAnn']);
    expect(r.snapshot.skipped.map((s) => s.externalId)).toEqual(['00uBob']);
    // A member skipped as unreadable is still a member (SnapshotBuilder keeps skipped members in scope).
    expect([...r.snapshot.memberships.get('00gEng')!].sort()).toEqual(['00uAnn', '00uBob']);
  });
});
