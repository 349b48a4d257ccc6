import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthentikConnector } from '../../src/connectors/authentik/authentik.connector.js';
import { GROUPS_PER_LISTING } from '../../src/connectors/authentik/authentik.subjects.js';
import { IdpReadError, NO_SUBJECTS, type SubjectNames } from '../../src/connectors/connector.js';
import { type AkGroup, type AkUser, FakeAuthentik } from '../support/fake-authentik.js';
import { loopbackEgress } from '../support/egress.js';

/**
 * Targeted reads (readSubjects) against the fake authentik, which speaks /api/v3 as authentik
 * does, through the real @goauthentik/api SDK: the requests each read sends, and (a property
 * test) that naming everyone reads exactly what the full read does.
 */

const FAST_RETRY = { retries: 1, minTimeoutMs: 10, maxTimeoutMs: 20 };

let ak: FakeAuthentik;
let eng: AkGroup; // bound to crm
let backend: AkGroup; // below eng
let sales: AkGroup; // not bound
let ann: AkUser; // bound directly, member of sales
let bob: AkUser; // member of eng
let cat: AkUser; // member of backend
let dan: AkUser; // member of sales only: out of crm's scope
let svc: AkUser; // service account in eng: never in scope
const GONE_PK = 999;

beforeEach(async () => {
  ak = await new FakeAuthentik().start();
  eng = ak.addGroup('Engineering');
  backend = ak.addGroup('Backend', { parents: [eng.pk] });
  sales = ak.addGroup('Sales');
  ann = ak.addUser('ann.lee@acme.test', { pk: 11 });
  bob = ak.addUser('bob.king@acme.test', { pk: 12 });
  cat = ak.addUser('cat.ray@acme.test', { pk: 13 });
  dan = ak.addUser('dan.fox@acme.test', { pk: 14 });
  svc = ak.addUser('ci-bot', { pk: 15, type: 'service_account' });
  ak.addMember(sales.pk, ann.pk);
  ak.addMember(eng.pk, bob.pk);
  ak.addMember(backend.pk, cat.pk);
  ak.addMember(sales.pk, dan.pk);
  ak.addMember(eng.pk, svc.pk);
  ak.addApp('crm');
  ak.bind('crm', { user: ann.pk });
  ak.bind('crm', { group: eng.pk });
  ak.bind('crm', { policy: 'e0c7c8a2-0000-4000-8000-00000000000a' });
  ak.requests.length = 0;
});
afterEach(async () => {
  await ak.stop();
});

function connector(appSlug?: string) {
  return new AuthentikConnector({ baseUrl: ak.url, token: ak.token, egress: loopbackEgress, appSlug: appSlug ?? null, retry: FAST_RETRY });
}

const names = (n: Partial<SubjectNames>): SubjectNames => ({ ...NO_SUBJECTS, ...n });
const ids = (...users: AkUser[]) => users.map((u) => String(u.pk));
const sorted = (list: Iterable<string>) => [...list].sort();
const appRequests = () => [`GET /api/v3/core/applications/crm/`, `GET /api/v3/policies/bindings/?page=1&page_size=500&target=${ak.apps.get('crm')!.pk}`];
const GROUPS_LISTING = 'GET /api/v3/core/groups/?include_users=false&page=1&page_size=500';
const userRequest = (pk: number) => `GET /api/v3/core/users/${pk}/`;

describe('readSubjects with an application', () => {
  it('reads users bound directly, through a group and through a child group; others are read but out of scope', async () => {
    const c = connector('crm');
    const read = await c.readSubjects(names({ userIds: [...ids(ann, bob, cat, dan, svc), String(GONE_PK)] }));

    expect(sorted(read.snapshot.users.keys())).toEqual(ids(ann, bob, cat));
    expect(read.snapshot.users.get('12')).toMatchObject({ userName: 'bob.king@acme.test', givenName: 'Bob', familyName: 'King', active: true });
    expect(read.userIds).toEqual([...ids(ann, bob, cat, dan, svc), String(GONE_PK)]);
    expect(read.unknownLogins).toEqual([]);
    expect(read.groupIds).toEqual([]);
    expect(read.snapshot.groups.size).toBe(0);
    // Every group they belong to, the groups above them included (a member of backend is a member of eng).
    expect(Object.fromEntries(read.groupsOf)).toEqual({ '11': [sales.pk], '12': [eng.pk], '13': sorted([backend.pk, eng.pk]) });
    expect(read.snapshot.skipped).toEqual([]);

    // One request per named user, the application and its bindings once, the group hierarchy once.
    expect(sorted(ak.requests)).toEqual(sorted([...appRequests(), ...[11, 12, 13, 14, 15, GONE_PK].map(userRequest), GROUPS_LISTING]));
    expect(c.stats).toMatchObject({ requests: 9, retries: 0, ignoredPolicyBindings: 1 });
  });

  it('resolves logins with one request each and reports the unknown ones', async () => {
    const c = connector('crm');
    const read = await c.readSubjects(names({ logins: ['cat.ray@acme.test', 'nobody@acme.test', 'dan.fox@acme.test'] }));

    expect(read.userIds).toEqual(ids(cat, dan));
    expect(read.unknownLogins).toEqual(['nobody@acme.test']);
    expect([...read.snapshot.users.keys()]).toEqual(ids(cat));
    expect(Object.fromEntries(read.groupsOf)).toEqual({ '13': sorted([backend.pk, eng.pk]) });
    const byLogin = (login: string) => `GET /api/v3/core/users/?include_groups=false&include_roles=false&page=1&page_size=500&username=${encodeURIComponent(login)}`;
    expect(sorted(ak.requests)).toEqual(
      sorted([...appRequests(), byLogin('cat.ray@acme.test'), byLogin('nobody@acme.test'), byLogin('dan.fox@acme.test'), GROUPS_LISTING]),
    );
  });

  it('a user named by id and by login is read once per name and reported once', async () => {
    const read = await connector('crm').readSubjects(names({ userIds: ids(bob), logins: ['bob.king@acme.test'] }));
    expect(read.userIds).toEqual(ids(bob));
    expect([...read.snapshot.users.keys()]).toEqual(ids(bob));
  });

  it('a bound group in scope comes with all its members (those of its child groups too), and a user read in it is in scope', async () => {
    const c = connector('crm');
    const read = await c.readSubjects(names({ groupIds: [eng.pk] }));

    expect([...read.snapshot.groups.keys()]).toEqual([eng.pk]);
    expect(read.snapshot.groups.get(eng.pk)).toMatchObject({ name: 'Engineering' });
    expect(sorted(read.snapshot.memberships.get(eng.pk)!)).toEqual(ids(bob, cat));
    expect(sorted(read.snapshot.users.keys())).toEqual(ids(bob, cat)); // not the service account
    expect(read.groupIds).toEqual([eng.pk]);
    expect(read.userIds).toEqual([]);
    const members = `GET /api/v3/core/users/?groups_by_pk=${eng.pk}&groups_by_pk=${backend.pk}&include_groups=false&include_roles=false&page=1&page_size=500`;
    expect(sorted(ak.requests)).toEqual(sorted([...appRequests(), GROUPS_LISTING, members]));
  });

  it('a group that is not bound, or gone, is read but not in scope, and its members are not read', async () => {
    const gone = 'a1b2c3d4-0000-4000-8000-0000000000ff';
    const read = await connector('crm').readSubjects(names({ groupIds: [sales.pk, backend.pk, gone] }));
    expect(read.snapshot.groups.size).toBe(0);
    expect(read.snapshot.users.size).toBe(0);
    expect(read.groupIds).toEqual([sales.pk, backend.pk, gone]);
    expect(sorted(ak.requests)).toEqual(sorted([...appRequests(), GROUPS_LISTING]));
  });

  it('engine mode all: a member of a bound group who fails another binding is neither a user nor a member', async () => {
    ak.updateApp('crm', { policy_engine_mode: 'all' });
    // all of: ann bound directly, members of eng: nobody passes both.
    const read = await connector('crm').readSubjects(names({ userIds: ids(ann, bob), groupIds: [eng.pk] }));
    expect(read.snapshot.users.size).toBe(0);
    expect([...read.snapshot.groups.keys()]).toEqual([eng.pk]);
    expect([...read.snapshot.memberships.get(eng.pk)!]).toEqual([]);
    expect(read.groupsOf.size).toBe(0);
  });

  it('pages the bindings, the group hierarchy and a group\'s members', async () => {
    ak.maxPageSize = 1;
    const c = connector('crm');
    const read = await c.readSubjects(names({ groupIds: [eng.pk] }));
    expect(sorted(read.snapshot.memberships.get(eng.pk)!)).toEqual(ids(bob, cat));
    const pages = (prefix: string) => ak.requests.filter((r) => r.startsWith(prefix)).length;
    expect(pages('GET /api/v3/policies/bindings/')).toBe(3);
    expect(pages('GET /api/v3/core/groups/')).toBe(3);
    expect(pages('GET /api/v3/core/users/?groups_by_pk=')).toBe(3); // bob, cat and the service account
    expect(c.stats.requests).toBe(1 + 3 + 3 + 3);
  });

  it('lists the members of a group with many groups below it in chunks of GROUPS_PER_LISTING', async () => {
    let parent = eng.pk;
    for (let i = 0; i < GROUPS_PER_LISTING + 5; i += 1) parent = ak.addGroup(`Level ${i}`, { parents: [parent] }).pk;
    const deep = ak.addUser('dee.p@acme.test', { pk: 20 });
    ak.addMember(parent, deep.pk);
    ak.requests.length = 0;
    const read = await connector('crm').readSubjects(names({ groupIds: [eng.pk] }));
    expect(sorted(read.snapshot.memberships.get(eng.pk)!)).toEqual(ids(bob, cat, deep));
    const listings = ak.requests.filter((r) => r.startsWith('GET /api/v3/core/users/?groups_by_pk='));
    expect(listings).toHaveLength(2);
    expect(listings.map((r) => new URL(r.slice(4), 'http://x').searchParams.getAll('groups_by_pk').length)).toEqual([GROUPS_PER_LISTING, 7]);
  });

  it('a user with no groups needs no group hierarchy: one request per user plus the application', async () => {
    const loner = ak.addUser('lou.ng@acme.test', { pk: 16 });
    ak.bind('crm', { user: loner.pk });
    ak.requests.length = 0;
    const c = connector('crm');
    const read = await c.readSubjects(names({ userIds: ids(loner) }));
    expect([...read.snapshot.users.keys()]).toEqual(ids(loner));
    expect(Object.fromEntries(read.groupsOf)).toEqual({ '16': [] });
    expect(sorted(ak.requests)).toEqual(sorted([...appRequests(), userRequest(16)]));
  });

  it('suspects the read, as the full read does, when a bound group is missing from the groups listing', async () => {
    ak.rewriteList = (path, items) => (path === '/api/v3/core/groups/' ? items.filter((g) => g.pk !== eng.pk) : items);
    const read = await connector('crm').readSubjects(names({ userIds: ids(bob) }));
    expect(read.snapshot.suspicious).toEqual([expect.stringContaining(`name 1 group(s) that the groups listing lacks (${eng.pk})`)]);
  });
});

describe('readSubjects without an application', () => {
  it('every user but service accounts is in scope; a gone user is read and absent', async () => {
    const c = connector();
    const read = await c.readSubjects(names({ userIds: [...ids(ann, dan, svc), String(GONE_PK), 'not-a-pk'] }));
    expect(sorted(read.snapshot.users.keys())).toEqual(ids(ann, dan));
    expect(read.userIds).toEqual([...ids(ann, dan, svc), String(GONE_PK), 'not-a-pk']);
    expect(Object.fromEntries(read.groupsOf)).toEqual({ '11': [sales.pk], '14': [sales.pk] });
    // No request for an id that cannot be an authentik pk.
    expect(sorted(ak.requests)).toEqual(sorted([...[11, 14, 15, GONE_PK].map(userRequest), GROUPS_LISTING]));
    expect(c.stats.ignoredPolicyBindings).toBeUndefined();
  });

  it('every group is in scope, with its members', async () => {
    const read = await connector().readSubjects(names({ groupIds: [sales.pk, backend.pk] }));
    expect(sorted(read.snapshot.groups.keys())).toEqual(sorted([sales.pk, backend.pk]));
    expect(sorted(read.snapshot.memberships.get(sales.pk)!)).toEqual(ids(ann, dan));
    expect(sorted(read.snapshot.memberships.get(backend.pk)!)).toEqual(ids(cat));
    expect(sorted(read.snapshot.users.keys())).toEqual(ids(ann, cat, dan));
    expect(ak.requests).toHaveLength(3); // hierarchy + one member listing per group
  });

  it('nothing named costs nothing', async () => {
    const read = await connector().readSubjects(NO_SUBJECTS);
    expect(read.snapshot.users.size).toBe(0);
    expect(ak.requests).toEqual([]);
  });
});

describe('readSubjects per-record isolation and errors', () => {
  it('skips a malformed named user and a malformed member alone', async () => {
    ak.rewriteList = (path, items) =>
      items.map((u) => (path.startsWith('/api/v3/core/users/') && (u.pk === bob.pk || u.pk === cat.pk) ? { ...u, username: null } : u));
    const read = await connector('crm').readSubjects(names({ userIds: ids(ann, bob), groupIds: [eng.pk] }));
    expect([...read.snapshot.users.keys()]).toEqual(ids(ann));
    expect(read.snapshot.skipped.map((s) => [s.kind, s.externalId])).toEqual([
      ['user', '12'],
      ['user', '13'],
    ]);
    expect(read.snapshot.skipped[0]!.reason).toContain('username');
    // A skipped member stays a member: it is evidence the record exists.
    expect(sorted(read.snapshot.memberships.get(eng.pk)!)).toEqual(ids(bob, cat));
    expect(read.groupsOf.get('12')).toEqual([eng.pk]);
  });

  it('a 404 without authentik\'s error body is a wrong address, not a gone user', async () => {
    ak.fault = ({ path }) => (path === `/api/v3/core/users/${bob.pk}/` ? { status: 404, rawBody: '<html>nginx</html>', headers: { 'content-type': 'text/html' } } : undefined);
    await expect(connector().readSubjects(names({ userIds: ids(bob) }))).rejects.toThrow(IdpReadError);
  });

  it('retries a 503 and fails with the full read\'s wording when it persists', async () => {
    let failures = 1;
    ak.fault = ({ path }) => (path === `/api/v3/core/users/${bob.pk}/` && failures-- > 0 ? { status: 503, body: { detail: 'busy' } } : undefined);
    const c = connector();
    const read = await c.readSubjects(names({ userIds: ids(bob) }));
    expect([...read.snapshot.users.keys()]).toEqual(ids(bob));
    expect(c.stats.retries).toBe(1);

    ak.fault = ({ path }) => (path === `/api/v3/core/users/${bob.pk}/` ? { status: 503, body: { detail: 'busy' } } : undefined);
    await expect(connector().readSubjects(names({ userIds: ids(bob) }))).rejects.toThrow(
      `authentik GET /api/v3/core/users/${bob.pk}/ failed after 2 attempts: HTTP 503; authentik answered with a server error (503): try again later`,
    );
  });
});

describe('readSubjects agrees with the full read', () => {
  /** A random directory: groups in a hierarchy, users (some service accounts) in them, bindings of every kind. */
  const directory = fc.record({
    parents: fc.array(fc.array(fc.nat(5), { maxLength: 2 }), { minLength: 6, maxLength: 6 }),
    users: fc.array(fc.record({ groups: fc.uniqueArray(fc.nat(5), { maxLength: 3 }), service: fc.boolean(), active: fc.boolean() }), { minLength: 1, maxLength: 8 }),
    bindings: fc.array(
      fc.record({ to: fc.oneof(fc.record({ user: fc.nat(7) }), fc.record({ group: fc.nat(5) }), fc.constant({ policy: true })), negate: fc.boolean(), enabled: fc.boolean() }),
      { maxLength: 4 },
    ),
    mode: fc.constantFrom('any' as const, 'all' as const),
    withApp: fc.boolean(),
  });

  it('every user and group named: the same users, groups and memberships as readSnapshot', async () => {
    await fc.assert(
      fc.asyncProperty(directory, async (d) => {
        const fake = await new FakeAuthentik().start();
        try {
          const groups = d.parents.map((_, i) => fake.addGroup(`G${i}`));
          // Parents only among earlier groups: authentik refuses cycles.
          d.parents.forEach((ps, i) => {
            groups[i]!.parents = [...new Set(ps.filter((p) => p < i).map((p) => groups[p]!.pk))];
          });
          const users = d.users.map((u, i) =>
            fake.addUser(`u${i}.x@acme.test`, { pk: 200 + i, is_active: u.active, type: u.service ? 'service_account' : 'internal', groups: u.groups.map((g) => groups[g]!.pk) }),
          );
          fake.addApp('crm', d.mode);
          for (const b of d.bindings) {
            const to = 'user' in b.to ? { user: users[b.to.user % users.length]!.pk } : 'group' in b.to ? { group: groups[b.to.group]!.pk } : { policy: 'e0c7c8a2-0000-4000-8000-00000000000a' };
            fake.bind('crm', { ...to, negate: b.negate, enabled: b.enabled });
          }
          const make = () =>
            new AuthentikConnector({ baseUrl: fake.url, token: fake.token, egress: loopbackEgress, appSlug: d.withApp ? 'crm' : null, retry: FAST_RETRY });
          const full = await make().readSnapshot();
          const read = await make().readSubjects(names({ userIds: users.map((u) => String(u.pk)), groupIds: groups.map((g) => g.pk) }));
          expect(sorted(read.snapshot.users.keys())).toEqual(sorted(full.users.keys()));
          expect(sorted(read.snapshot.groups.keys())).toEqual(sorted(full.groups.keys()));
          for (const g of full.groups.keys()) expect(sorted(read.snapshot.memberships.get(g)!)).toEqual(sorted(full.memberships.get(g)!));
          // groupsOf, restricted to the groups in scope, is each user's memberships in the full read.
          for (const u of full.users.keys()) {
            const inFull = [...full.memberships].filter(([, members]) => members.has(u)).map(([g]) => g);
            expect(sorted(read.groupsOf.get(u)!.filter((g) => full.groups.has(g)))).toEqual(sorted(inFull));
          }
        } finally {
          await fake.stop();
        }
      }),
      { numRuns: 40 },
    );
  });
});
