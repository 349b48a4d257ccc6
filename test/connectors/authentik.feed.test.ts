import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthentikConnector } from '../../src/connectors/authentik/authentik.connector.js';
import { FEED_OVERLAP_MS } from '../../src/connectors/authentik/authentik.feed.js';
import type { ChangeFeedRead } from '../../src/connectors/connector.js';
import { type AkGroup, type AkUser, FakeAuthentik } from '../support/fake-authentik.js';
import { loopbackEgress } from '../support/egress.js';

/**
 * The authentik change feed (readChanges) against the fake authentik, whose mutations log the
 * model events authentik's AuditMiddleware would, through the real @goauthentik/api SDK.
 */

const FAST_RETRY = { retries: 1, minTimeoutMs: 10, maxTimeoutMs: 20 };
const MINUTE = 60_000;

let ak: FakeAuthentik;
let eng: AkGroup;
let sales: AkGroup;
let ann: AkUser;
let bob: AkUser;
let cat: AkUser;

beforeEach(async () => {
  ak = await new FakeAuthentik().start();
  // The directory was set up an hour ago: outside any cursor taken now.
  ak.clockOffsetMs = -60 * MINUTE;
  eng = ak.addGroup('Engineering');
  sales = ak.addGroup('Sales');
  ann = ak.addUser('ann.lee@acme.test', { pk: 11 });
  bob = ak.addUser('bob.king@acme.test', { pk: 12 });
  cat = ak.addUser('cat.ray@acme.test', { pk: 13 });
  ak.addMember(eng.pk, ann.pk);
  ak.addMember(eng.pk, bob.pk);
  ak.addApp('crm');
  ak.addApp('wiki');
  ak.bind('crm', { group: eng.pk });
  ak.recordEvent('login');
  ak.clockOffsetMs = 0;
  ak.requests.length = 0;
});
afterEach(async () => {
  await ak.stop();
});

function connector(appSlug?: string) {
  return new AuthentikConnector({ baseUrl: ak.url, token: ak.token, egress: loopbackEgress, appSlug: appSlug ?? null, retry: FAST_RETRY });
}

function changes(read: ChangeFeedRead) {
  if (read.kind !== 'changes') throw new Error(`feed unavailable: ${read.reason}`);
  return { ...read, userIds: [...read.names.userIds].sort(), groupIds: [...read.names.groupIds].sort() };
}

const EVENTS_PAGE_1 = 'GET /api/v3/events/events/?actions=model_created&actions=model_updated&actions=model_deleted&ordering=-created&page=1&page_size=500';
const usersChangedPage1 = (after: string) => `GET /api/v3/core/users/?include_groups=false&include_roles=false&last_updated__gt=${encodeURIComponent(after)}&page=1&page_size=500`;

describe('authentik change feed', () => {
  it('nothing changed: two requests, no names, and a cursor at authentik\'s clock (read back one overlap)', async () => {
    const c = connector('crm');
    const at = new Date();
    const cursor = c.feedCursorAt(at);
    expect(cursorTime(cursor)).toBe(at.getTime());

    const read = changes(await c.readChanges(cursor));
    expect(read).toMatchObject({ userIds: [], groupIds: [], unnarrowable: [], events: 0 });
    expect(read.names.logins).toEqual([]);
    expect(ak.requests).toEqual([usersChangedPage1(new Date(at.getTime() - FEED_OVERLAP_MS - 1).toISOString()), EVENTS_PAGE_1]);
    expect(c.stats.requests).toBe(2);
    // authentik's Date header has whole seconds: the next cursor is that instant.
    const next = cursorTime(read.cursor);
    expect(Date.now() - next).toBeGreaterThanOrEqual(0);
    expect(Date.now() - next).toBeLessThan(5_000);
  });

  it('names users changed by last_updated, also when authentik recorded no event for the change', async () => {
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.updateUser(bob.pk, { is_active: false });
    ak.withoutEvents(() => ak.updateUser(cat.pk, { name: 'Cat Ray-Synced' })); // a source sync in authentik's worker
    const read = changes(await c.readChanges(cursor));
    expect(read.userIds).toEqual(['12', '13']);
    expect(read.groupIds).toEqual([]);
    expect(read.unnarrowable).toEqual([]);
    expect(read.events).toBe(3); // two users listed, one model event
  });

  it('names groups from their model events (membership changes, deletions) and deleted users', async () => {
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.addMember(sales.pk, cat.pk); // group.users.add: a model_updated of the group, cat's last_updated unchanged
    const doomed = ak.addGroup('Doomed');
    ak.deleteGroup(doomed.pk);
    ak.deleteUser(ann.pk);
    const read = changes(await c.readChanges(cursor));
    expect(read.userIds).toEqual(['11']);
    expect(read.groupIds).toEqual([sales.pk, doomed.pk].sort()); // dashed, as the API shows them, from the events' hex
    expect(read.unnarrowable).toEqual([]);
  });

  it('a membership change made outside a request is not in the feed (what full runs are for)', async () => {
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.withoutEvents(() => ak.addMember(sales.pk, cat.pk));
    const read = changes(await c.readChanges(cursor));
    expect(read).toMatchObject({ userIds: [], groupIds: [], events: 0 });
  });

  it('a change to the application or to one of its policy bindings cannot be narrowed; another application\'s can be ignored', async () => {
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.bind('wiki', { group: sales.pk });
    ak.updateApp('wiki', { name: 'Wiki 2' });
    ak.requests.length = 0;
    const quiet = changes(await c.readChanges(cursor));
    expect(quiet.unnarrowable).toEqual([]);
    expect(ak.requests).toContain('GET /api/v3/core/applications/crm/'); // once, to tell them apart
    expect(ak.requests.filter((r) => r.startsWith('GET /api/v3/core/applications/'))).toHaveLength(1);

    const binding = ak.bind('crm', { user: cat.pk });
    ak.unbind(binding);
    ak.updateApp('crm', { policy_engine_mode: 'all' });
    const loud = changes(await c.readChanges(cursor));
    expect(loud.unnarrowable).toEqual([
      'authentik application crm changed (model_updated)',
      `a policy binding of authentik application crm changed (model_deleted: Binding from crm #2 to User Cat Ray)`,
      `a policy binding of authentik application crm changed (model_created: Binding from crm #2 to User Cat Ray)`,
    ]);

    // Without an application, bindings decide nothing.
    const open = changes(await connector().readChanges(cursor));
    expect(open.unnarrowable).toEqual([]);
  });

  it('a deleted application cannot be narrowed either', async () => {
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.updateApp('crm', { name: 'CRM' });
    ak.apps.delete('crm');
    const read = changes(await c.readChanges(cursor));
    expect(read.unnarrowable).toEqual(['authentik has no application "crm" any more']);
  });

  it('pages changed users and events back to the cursor, each event once', async () => {
    ak.maxPageSize = 2;
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    for (const u of [ann, bob, cat]) ak.updateUser(u.pk, { attributes: { seen: true } });
    ak.addMember(sales.pk, ann.pk);
    ak.addMember(sales.pk, bob.pk);
    const read = changes(await c.readChanges(cursor));
    expect(read.userIds).toEqual(['11', '12', '13']);
    expect(read.groupIds).toEqual([sales.pk]);
    expect(read.events).toBe(3 + 5);
    // users: 3 on 2 pages; events: 5 in the window on 3 pages, the third reaching back past the cursor.
    expect(ak.requests.filter((r) => r.includes('/core/users/'))).toHaveLength(2);
    expect(ak.requests.filter((r) => r.includes('/events/events/'))).toHaveLength(3);
  });

  it('chains cursors: the next read sees what changed after the previous one, and passes over what it read already', async () => {
    const c = connector('crm');
    const first = changes(await c.readChanges(c.feedCursorAt(new Date())));
    ak.clockOffsetMs = 5 * MINUTE; // time passes
    ak.updateUser(cat.pk, { is_active: false });
    ak.clockOffsetMs = 7 * MINUTE;
    const second = changes(await c.readChanges(first.cursor));
    expect(second.userIds).toEqual(['13']);
    ak.clockOffsetMs = 10 * MINUTE - FEED_OVERLAP_MS / 2;
    ak.updateUser(bob.pk, { is_active: false }); // within the overlap before the third read
    ak.clockOffsetMs = 10 * MINUTE;
    const third = changes(await c.readChanges(second.cursor));
    expect(third.userIds).toEqual(['12']);
    // bob changed within the overlap before the third read: read again, but passed over (the
    // cursor remembers his last_updated); a change of his since is named.
    ak.clockOffsetMs = 20 * MINUTE;
    const fourth = changes(await c.readChanges(third.cursor));
    expect(fourth.userIds).toEqual([]);
    ak.updateUser(bob.pk, { is_active: true });
    expect(changes(await c.readChanges(fourth.cursor)).userIds).toEqual(['12']);
  });

  it('takes the next cursor from authentik\'s clock (its Date header), not dirsync\'s', async () => {
    const c = connector('crm');
    ak.clockOffsetMs = 10 * MINUTE;
    const read = changes(await c.readChanges(c.feedCursorAt(new Date())));
    const next = cursorTime(read.cursor);
    expect(next - (Date.now() + 10 * MINUTE)).toBeGreaterThan(-5_000);
    expect(next - (Date.now() + 10 * MINUTE)).toBeLessThanOrEqual(0);
  });

  it('still reads a v1 cursor (an instant stored already one overlap behind), and answers with a v2 one', async () => {
    const c = connector('crm');
    const v1 = `authentik:v1:${new Date(Date.now() - FEED_OVERLAP_MS).toISOString()}`;
    ak.updateUser(bob.pk, { is_active: false });
    const read = changes(await c.readChanges(v1));
    expect(read.userIds).toEqual(['12']);
    expect(read.cursor.startsWith('authentik:v2:')).toBe(true);
    expect(changes(await c.readChanges(read.cursor)).userIds).toEqual([]);
  });

  it('covers clock skew up to the overlap between dirsync and authentik', async () => {
    const c = connector('crm');
    ak.clockOffsetMs = -(FEED_OVERLAP_MS / 2); // authentik's clock runs half an overlap behind
    const cursor = c.feedCursorAt(new Date());
    ak.updateUser(bob.pk, { is_active: false });
    expect(changes(await c.readChanges(cursor)).userIds).toEqual(['12']);
  });

  it('events the token may not read: unavailable, with the reason', async () => {
    ak.eventsAccess = 'forbidden';
    const c = connector('crm');
    const read = await c.readChanges(c.feedCursorAt(new Date()));
    expect(read.kind).toBe('unavailable');
    expect(read.kind === 'unavailable' && read.reason).toMatch(/^the token's user may not read authentik's events \(authentik GET \/api\/v3\/events\/events\/\?page=1 failed: HTTP 403;/);
  });

  it('events hidden by permissions (an empty list): user changes are still seen', async () => {
    ak.eventsAccess = 'hidden';
    const c = connector('crm');
    const cursor = c.feedCursorAt(new Date());
    ak.updateUser(bob.pk, { is_active: false });
    ak.addMember(sales.pk, cat.pk);
    expect(changes(await c.readChanges(cursor))).toMatchObject({ userIds: ['12'], groupIds: [] });
  });

  it('a request that fails after retries, or a cursor it did not make: unavailable, never thrown', async () => {
    ak.fault = ({ path }) => (path === '/api/v3/core/users/' ? { status: 502, body: { detail: 'bad gateway' } } : undefined);
    const c = connector('crm');
    const failed = await c.readChanges(c.feedCursorAt(new Date()));
    expect(failed).toEqual({
      kind: 'unavailable',
      reason: expect.stringMatching(/^authentik's change feed could not be read \(authentik GET \/api\/v3\/core\/users\/\?last_updated__gt=\?page=1 failed after 2 attempts: HTTP 502/),
    });
    ak.requests.length = 0;
    expect(await c.readChanges('okta:2026-01-01')).toMatchObject({ kind: 'unavailable', reason: expect.stringContaining('is not an authentik cursor') });
    expect(ak.requests).toEqual([]);
  });

  it('an abort still throws', async () => {
    const c = connector('crm');
    const controller = new AbortController();
    controller.abort();
    await expect(c.readChanges(c.feedCursorAt(new Date()), controller.signal)).rejects.toThrow();
  });
});

/** The instant an authentik cursor (authentik:v2:, base64url JSON) holds, in ms. */
function cursorTime(cursor: string): number {
  expect(cursor.startsWith('authentik:v2:')).toBe(true);
  return Date.parse((JSON.parse(Buffer.from(cursor.slice('authentik:v2:'.length), 'base64url').toString('utf8')) as { t: string }).t);
}
