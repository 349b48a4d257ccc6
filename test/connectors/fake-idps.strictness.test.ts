import { afterEach, describe, expect, it } from 'vitest';
import { AuthentikConnector } from '../../src/connectors/authentik/authentik.connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { loopbackEgress } from '../support/egress.js';

/**
 * The fake IdPs refuse bad paging the way the real APIs do, so that a connector paging wrongly fails
 * a test instead of reading a truncated or foreign listing. These pin that strictness (the sources are
 * cited in the fakes), then read each fake through the production connector over many small pages.
 */

const FAST_RETRY = { retries: 1, minTimeoutMs: 10, maxTimeoutMs: 20 };
const servers: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function okta(): Promise<FakeOkta> {
  const o = await new FakeOkta().start();
  servers.push(o);
  return o;
}

async function authentik(): Promise<FakeAuthentik> {
  const a = await new FakeAuthentik().start();
  servers.push(a);
  return a;
}

async function get(base: string, path: string, auth: string): Promise<{ status: number; body: unknown; link: string | null }> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: auth } });
  return { status: res.status, body: await res.json(), link: res.headers.get('link') };
}

function nextOf(link: string | null): string | undefined {
  const next = link?.split(/,\s*/).find((l) => l.endsWith('rel="next"'));
  return next ? new URL(next.slice(1, next.indexOf('>'))).pathname + new URL(next.slice(1, next.indexOf('>'))).search : undefined;
}

describe('fake Okta paging', () => {
  it('refuses a cursor it did not issue, and one issued for another listing, with a 400', async () => {
    const o = await okta();
    for (let i = 0; i < 5; i += 1) o.addUser(`u${i}@acme.test`);
    o.addGroup('A');
    o.addGroup('B');
    o.addGroup('C');
    o.maxPageSize = 2;
    const auth = `SSWS ${o.token}`;

    const made = await get(o.url, '/api/v1/users?after=00u000002fake&limit=2', auth);
    expect(made.status).toBe(400);
    expect(made.body).toMatchObject({ errorCode: 'E0000001', errorSummary: 'Api validation failed: after' });

    const users = await get(o.url, '/api/v1/users?limit=2', auth);
    const next = nextOf(users.link)!;
    const cursor = new URL(next, o.url).searchParams.get('after')!;
    expect((await get(o.url, next, auth)).status).toBe(200);
    // The same cursor on the groups listing, or with another filter, is not a cursor of that listing.
    expect((await get(o.url, `/api/v1/groups?after=${cursor}&limit=2`, auth)).status).toBe(400);
    expect((await get(o.url, `/api/v1/users?filter=${encodeURIComponent('status eq "DEPROVISIONED"')}&after=${cursor}&limit=2`, auth)).status).toBe(400);
  });

  it('System Log: the polling form always links to what comes next, even from an empty page; its cursors are refused on another filter', async () => {
    const o = await okta();
    const auth = `SSWS ${o.token}`;
    const since = new Date(Date.now() - 1000).toISOString();
    const filter = encodeURIComponent('eventType eq "user.lifecycle.create"');
    o.addUser('ann@acme.test', { id: '00uAnn' });
    const first = await get(o.url, `/api/v1/logs?since=${since}&sortOrder=ASCENDING&filter=${filter}`, auth);
    expect(first.body).toEqual([expect.objectContaining({ eventType: 'user.lifecycle.create', target: [expect.objectContaining({ id: '00uAnn', type: 'User', alternateId: 'ann@acme.test' })] })]);
    const empty = await get(o.url, nextOf(first.link)!, auth);
    expect(empty.body).toEqual([]);
    expect(nextOf(empty.link)).toBeDefined();
    o.addUser('bob@acme.test', { id: '00uBob' });
    const later = await get(o.url, nextOf(empty.link)!, auth);
    expect((later.body as { target: { id: string }[] }[]).map((e) => e.target[0]!.id)).toEqual(['00uBob']);
    const cursor = new URL(nextOf(later.link)!, o.url).searchParams.get('after')!;
    expect((await get(o.url, `/api/v1/logs?sortOrder=ASCENDING&after=${cursor}`, auth)).status).toBe(400);
    expect((await get(o.url, `/api/v1/logs?filter=${encodeURIComponent('published gt "2026-01-01"')}`, auth)).status).toBe(400);
  });

  it('answers a single user (by id or login), group and app assignment, and Okta\'s 404 for what is not there', async () => {
    const o = await okta();
    o.addUser('ann@acme.test', { id: '00uAnn' });
    o.addGroup('Eng', { id: '00gEng' });
    o.addApp('0oaApp');
    o.assignGroup('0oaApp', '00gEng');
    o.addMember('00gEng', '00uAnn');
    const auth = `SSWS ${o.token}`;
    expect((await get(o.url, '/api/v1/users/ann%40acme.test', auth)).body).toMatchObject({ id: '00uAnn', profile: { login: 'ann@acme.test' } });
    expect((await get(o.url, '/api/v1/groups/00gEng', auth)).body).toMatchObject({ id: '00gEng', profile: { name: 'Eng' } });
    expect((await get(o.url, '/api/v1/apps/0oaApp/users/00uAnn?expand=user', auth)).body).toMatchObject({ id: '00uAnn', scope: 'GROUP', _embedded: { user: { id: '00uAnn' } } });
    expect((await get(o.url, '/api/v1/apps/0oaApp/groups/00gEng', auth)).body).toEqual(expect.not.objectContaining({ _embedded: expect.anything() }));
    const missing = await get(o.url, '/api/v1/users/00uNobody', auth);
    expect(missing).toMatchObject({ status: 404, body: { errorCode: 'E0000007', errorSummary: 'Not found: Resource not found: 00uNobody (User)', errorCauses: [] } });
    o.removeMember('00gEng', '00uAnn');
    expect((await get(o.url, '/api/v1/apps/0oaApp/users/00uAnn', auth)).status).toBe(404);
  });

  it('embeds the user and the group in app listings only when expand asks for them', async () => {
    const o = await okta();
    const u = o.addUser('ann@acme.test');
    const g = o.addGroup('Eng');
    o.addApp('0oaApp').users.add(u.id);
    o.apps.get('0oaApp')!.groups.add(g.id);
    const auth = `SSWS ${o.token}`;
    const bare = (await get(o.url, '/api/v1/apps/0oaApp/users', auth)).body as Record<string, unknown>[];
    expect(bare[0]).not.toHaveProperty('_embedded');
    const expanded = (await get(o.url, '/api/v1/apps/0oaApp/users?expand=user', auth)).body as { _embedded: { user: { id: string } } }[];
    expect(expanded[0]!._embedded.user.id).toBe(u.id);
    expect((await get(o.url, '/api/v1/apps/0oaApp/groups', auth)).body).toEqual([expect.not.objectContaining({ _embedded: expect.anything() })]);
    const groups = (await get(o.url, '/api/v1/apps/0oaApp/groups?expand=group', auth)).body as { _embedded: { group: { id: string } } }[];
    expect(groups[0]!._embedded.group.id).toBe(g.id);
  });

  it('is read whole by the connector over pages of one, org-wide and app-scoped', async () => {
    const o = await okta();
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1) ids.push(o.addUser(`u${i}@acme.test`).id);
    o.addUser('gone@acme.test', { status: 'DEPROVISIONED' });
    const g1 = o.addGroup('G1');
    const g2 = o.addGroup('G2');
    for (const id of ids.slice(0, 5)) o.addMember(g1.id, id);
    for (const id of ids.slice(3)) o.addMember(g2.id, id);
    const app = o.addApp('0oaApp');
    app.groups.add(g1.id);
    app.users.add(ids[6]!);
    o.maxPageSize = 1;

    const org = await new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, retry: FAST_RETRY }).readSnapshot();
    expect(org.users.size).toBe(8);
    expect(org.groups.size).toBe(2);
    expect([...org.memberships.get(g2.id)!].sort()).toEqual(ids.slice(3).sort());

    const scoped = await new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, appId: '0oaApp', retry: FAST_RETRY }).readSnapshot();
    expect([...scoped.users.keys()].sort()).toEqual([...ids.slice(0, 5), ids[6]!].sort());
    expect([...scoped.groups.keys()]).toEqual([g1.id]);
  });
});

describe('fake authentik paging and bindings', () => {
  it('answers 404 {"detail": "Invalid page."} for a page past the end, below 1 or not a number; page 1 of nothing is empty', async () => {
    const a = await authentik();
    const auth = `Bearer ${a.token}`;
    expect(await get(a.url, '/api/v3/core/groups/?page=1', auth)).toMatchObject({ status: 200, body: { results: [], pagination: { count: 0, next: 0 } } });
    for (let i = 0; i < 3; i += 1) a.addUser(`u${i}@acme.test`);
    for (const page of ['3', '0', '-1', 'x']) {
      expect(await get(a.url, `/api/v3/core/users/?page=${page}&page_size=2`, auth)).toMatchObject({ status: 404, body: { detail: 'Invalid page.' } });
    }
    expect(await get(a.url, '/api/v3/core/users/?page=2&page_size=2', auth)).toMatchObject({ status: 200, body: { pagination: { current: 2, next: 0 } } });
    expect(await get(a.url, '/api/v3/core/users/?page=last&page_size=2', auth)).toMatchObject({ status: 200, body: { pagination: { current: 2 } } });
    // A page size that is not a positive integer is ignored (authentik's default, 100).
    expect(await get(a.url, '/api/v3/core/users/?page=1&page_size=0', auth)).toMatchObject({ status: 200, body: { pagination: { total_pages: 1 } } });
  });

  it('lists every application\'s bindings without target, and refuses a target that is not a bindable object', async () => {
    const a = await authentik();
    const auth = `Bearer ${a.token}`;
    const crm = a.addApp('crm');
    a.addApp('wiki');
    const u = a.addUser('ann@acme.test');
    a.bind('crm', { user: u.pk });
    a.bind('wiki', { user: u.pk });
    a.bind('wiki', { user: u.pk, negate: true });
    expect(await get(a.url, '/api/v3/policies/bindings/', auth)).toMatchObject({ status: 200, body: { pagination: { count: 3 } } });
    expect(await get(a.url, `/api/v3/policies/bindings/?target=${crm.pk}`, auth)).toMatchObject({ status: 200, body: { pagination: { count: 1 } } });
    expect(await get(a.url, '/api/v3/policies/bindings/?target=00000000-0000-4000-8000-000000000000', auth)).toMatchObject({
      status: 400,
      body: { target: ['Select a valid choice. That choice is not one of the available choices.'] },
    });
  });

  it("scopes the connector to its own application's bindings while another application binds other groups", async () => {
    const a = await authentik();
    const ann = a.addUser('ann@acme.test');
    const bob = a.addUser('bob@acme.test');
    const cat = a.addUser('cat@acme.test');
    const eng = a.addGroup('Eng');
    const ops = a.addGroup('Ops');
    a.addMember(eng.pk, ann.pk);
    a.addMember(ops.pk, bob.pk);
    a.addApp('crm');
    a.addApp('wiki');
    a.bind('crm', { group: eng.pk });
    a.bind('wiki', { group: ops.pk });
    a.bind('wiki', { user: cat.pk });
    a.maxPageSize = 1;
    const snapshot = await new AuthentikConnector({ baseUrl: a.url, token: a.token, egress: loopbackEgress, appSlug: 'crm', retry: FAST_RETRY }).readSnapshot();
    expect([...snapshot.users.keys()]).toEqual([String(ann.pk)]);
    expect([...snapshot.groups.keys()]).toEqual([eng.pk]);
  });
});

describe('fake authentik filters and events', () => {
  it('filters users as UserFilter does: username exact, groups_by_pk any-of (400 for an unknown group), last_updated__gt strict to the microsecond', async () => {
    const a = await authentik();
    const eng = a.addGroup('Engineering');
    const ann = a.addUser('ann@acme.test', { last_updated: '2026-01-01T10:00:00.000500Z' });
    a.addUser('bob@acme.test', { last_updated: '2026-01-01T10:00:00.000400Z' });
    a.addMember(eng.pk, ann.pk);
    const auth = `Bearer ${a.token}`;
    const pks = (body: unknown) => (body as { results: { pk: number }[] }).results.map((u) => u.pk);

    expect(pks((await get(a.url, '/api/v3/core/users/?username=ANN@acme.test', auth)).body)).toEqual([]);
    expect(pks((await get(a.url, '/api/v3/core/users/?username=ann@acme.test', auth)).body)).toEqual([ann.pk]);
    expect(pks((await get(a.url, `/api/v3/core/users/?groups_by_pk=${eng.pk}`, auth)).body)).toEqual([ann.pk]);
    const unknown = await get(a.url, '/api/v3/core/users/?groups_by_pk=a1b2c3d4-0000-4000-8000-0000000000ff', auth);
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({ groups_by_pk: ['Select a valid choice. a1b2c3d4-0000-4000-8000-0000000000ff is not one of the available choices.'] });
    expect(pks((await get(a.url, '/api/v3/core/users/?last_updated__gt=2026-01-01T10:00:00.000400Z', auth)).body)).toEqual([ann.pk]);
    expect(pks((await get(a.url, '/api/v3/core/users/?last_updated__gt=2026-01-01T10:00:00.000Z', auth)).body)).toHaveLength(2);
  });

  it('retrieves one user, 404 with a detail when there is none', async () => {
    const a = await authentik();
    const ann = a.addUser('ann@acme.test');
    expect((await get(a.url, `/api/v3/core/users/${ann.pk}/`, `Bearer ${a.token}`)).body).toMatchObject({ pk: ann.pk, username: 'ann@acme.test' });
    expect(await get(a.url, '/api/v3/core/users/99999/', `Bearer ${a.token}`)).toMatchObject({ status: 404, body: { detail: 'No User matches the given query.' } });
  });

  it('logs model events as authentik does (group pks as hex) and lists them newest first, filtered by actions', async () => {
    const a = await authentik();
    const eng = a.addGroup('Engineering');
    const ann = a.addUser('ann@acme.test');
    a.recordEvent('login');
    a.deleteUser(ann.pk);
    const auth = `Bearer ${a.token}`;
    const listed = await get(a.url, '/api/v3/events/events/?actions=model_created&actions=model_deleted', auth);
    const results = (listed.body as { results: { action: string; context: { model: unknown } }[] }).results;
    expect(results.map((e) => [e.action, e.context.model])).toEqual([
      ['model_deleted', { app: 'authentik_core', model_name: 'user', pk: ann.pk, name: 'ann@acme.test' }],
      ['model_created', { app: 'authentik_core', model_name: 'user', pk: ann.pk, name: 'ann@acme.test' }],
      ['model_created', { app: 'authentik_core', model_name: 'group', pk: eng.pk.replace(/-/g, ''), name: 'Engineering' }],
    ]);
    expect((await get(a.url, '/api/v3/events/events/?actions=model_renamed', auth)).status).toBe(400);
  });
});
