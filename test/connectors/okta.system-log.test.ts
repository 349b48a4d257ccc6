import { FEED_OVERLAP_MS } from '../../src/connectors/okta/okta.system-log.js';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeFeedRead } from '../../src/connectors/connector.js';
import { OktaConnector } from '../../src/connectors/okta/okta.connector.js';
import { OKTA_CHANGE_EVENT_FILTER } from '../../src/connectors/okta/okta.events.js';
import { parseOktaPrivateKey } from '../../src/integrations/okta-private-key.js';
import { FakeOkta } from '../support/fake-okta.js';
import { loopbackEgress, strictEgress } from '../support/egress.js';
import { serviceAppKey } from '../support/okta-oauth.js';

/**
 * Incremental reads of Okta's System Log (readChanges): nock fixtures in the API's wire format for
 * the polling form's paging and failures, then the fake Okta org for a read after real changes and
 * for a service app without okta.logs.read.
 */

const ORG = 'https://acme.okta.test';
const APP = '0oaPortal';
const FAST_RETRY = { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 20 };
const SINCE = '2026-11-30T10:00:00.000Z';
const NOW = () => new Date('2026-11-30T12:00:00.000Z');

const rate = () => ({ 'X-Rate-Limit-Limit': '120', 'X-Rate-Limit-Remaining': '110', 'X-Rate-Limit-Reset': String(Math.floor(Date.now() / 1000) + 60), Date: new Date().toUTCString() });

type Target = { id: string; type: string; alternateId: string; displayName: string };
const user = (id: string): Target => ({ id, type: 'User', alternateId: `${id}@acme.test`, displayName: id });
const group = (id: string): Target => ({ id, type: 'UserGroup', alternateId: id, displayName: id });
const app = (id: string): Target => ({ id, type: 'AppInstance', alternateId: id, displayName: id });

/** A System Log event as GET /api/v1/logs returns it (Okta's LogEvent object). */
function logEvent(uuid: string, eventType: string, target: Target[], published = '2026-11-30T11:00:00.000Z') {
  return {
    actor: { id: '00uAdmin', type: 'User', alternateId: 'admin@acme.test', displayName: 'Admin', detailEntry: null },
    client: { userAgent: { rawUserAgent: 'Mozilla/5.0', os: 'Mac OS X', browser: 'CHROME' }, zone: 'null', device: 'Computer', id: null, ipAddress: '203.0.113.7', geographicalContext: null },
    device: null,
    authenticationContext: { authenticationProvider: null, credentialProvider: null, credentialType: null, issuer: null, interface: null, authenticationStep: 0, externalSessionId: 'trs1' },
    displayMessage: eventType,
    eventType,
    outcome: { result: 'SUCCESS', reason: null },
    published,
    securityContext: { asNumber: null, asOrg: null, isp: null, domain: null, isProxy: null },
    severity: 'INFO',
    debugContext: { debugData: { requestUri: '/api/v1/users' } },
    legacyEventType: null,
    transaction: { type: 'WEB', id: 'YjL1XxEi6TcTjFhQ2xPzHQAABAo', detail: {} },
    uuid,
    version: '0',
    request: { ipChain: [] },
    target: target.map((t) => ({ ...t, detailEntry: null })),
  };
}

/** The polling form's next link: `after` plus the query it continues (an opaque cursor Okta issues). */
const nextLink = (after: string) => `${ORG}/api/v1/logs?limit=1000&sortOrder=ASCENDING&filter=${encodeURIComponent(OKTA_CHANGE_EVENT_FILTER)}&after=${after}`;
const links = (self: string, after: string) => ({ link: [`<${self}>; rel="self"`, `<${nextLink(after)}>; rel="next"`] });

/** The first page of a read from SINCE: exactly the polling form, filtered to the events that matter. */
const first = () =>
  nock(ORG)
    .get('/api/v1/logs')
    .query((q) => q.since === SINCE && q.sortOrder === 'ASCENDING' && q.limit === '1000' && q.filter === OKTA_CHANGE_EVENT_FILTER && q.after === undefined);
const after = (cursor: string) =>
  nock(ORG)
    .get('/api/v1/logs')
    .query((q) => q.after === cursor && q.sortOrder === 'ASCENDING' && q.filter === OKTA_CHANGE_EVENT_FILTER);

function connector(appId: string | null = null, feed = {}) {
  return new OktaConnector({ orgUrl: ORG, credentials: { kind: 'token', token: 't0k3n' }, egress: strictEgress, appId, retry: FAST_RETRY, feed: { now: NOW, ...feed } });
}

function changes(read: ChangeFeedRead) {
  if (read.kind !== 'changes') throw new Error(`expected changes, got: ${read.reason}`);
  return read;
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('Okta System Log, at the wire', () => {
  it('follows next links to the first empty page, names what the events name, and keeps that page\'s next link as the cursor', async () => {
    first().reply(200, [logEvent('e1', 'user.lifecycle.deactivate', [user('00uAnn')]), logEvent('e2', 'group.user_membership.add', [group('00gEng'), user('00uBob')])], { ...rate(), ...links('self1', 'c1') });
    after('c1').reply(200, [logEvent('e3', 'group.lifecycle.delete', [group('00gOld')])], { ...rate(), ...links('self2', 'c2') });
    after('c2').reply(200, [], { ...rate(), ...links('self3', 'c3') });
    const c = connector();
    // A minute before the time asked for: dirsync's clock and Okta's are two clocks.
    expect(c.feedCursorAt(new Date(Date.parse(SINCE) + FEED_OVERLAP_MS))).toBe(`since:${SINCE}`);
    const read = changes(await c.readChanges(c.feedCursorAt(new Date(Date.parse(SINCE) + FEED_OVERLAP_MS))));
    expect(read).toMatchObject({ names: { userIds: ['00uAnn', '00uBob'], logins: [], groupIds: ['00gOld'] }, unnarrowable: [], events: 3 });
    expect(read.cursor).toMatch(/^next:2026-11-30T12:00:00.000Z \/api\/v1\/logs\?.*&after=c3$/);
    expect(c.stats.requests).toBe(3);

    // The next read starts at that link: nothing new costs one request.
    after('c3').reply(200, [], { ...rate(), ...links('self4', 'c3') });
    const again = connector();
    const next = changes(await again.readChanges(read.cursor));
    expect(next).toMatchObject({ names: { userIds: [], groupIds: [] }, events: 0 });
    expect(next.cursor).toMatch(/after=c3$/);
    expect(again.stats.requests).toBe(1);
    expect(nock.isDone()).toBe(true);
  });

  it('takes events whatever the order of their published times, and each uuid once', async () => {
    first().reply(
      200,
      [
        logEvent('e1', 'user.lifecycle.suspend', [user('00uAnn')], '2026-11-30T11:00:05.000Z'),
        logEvent('e2', 'user.account.update_profile', [user('00uBob')], '2026-11-30T11:00:01.000Z'),
        logEvent('e1', 'user.lifecycle.suspend', [user('00uAnn')], '2026-11-30T11:00:05.000Z'),
      ],
      { ...rate(), ...links('s1', 'c1') },
    );
    after('c1').reply(200, [logEvent('e2', 'user.account.update_profile', [user('00uBob')], '2026-11-30T11:00:01.000Z'), logEvent('e4', 'group.profile.update', [group('00gEng')], '2026-11-30T10:59:59.000Z')], { ...rate(), ...links('s2', 'c2') });
    after('c2').reply(200, [], { ...rate(), ...links('s3', 'c2') });
    const read = changes(await connector().readChanges(`since:${SINCE}`));
    expect(read.events).toBe(3);
    // A suspension and a profile update keep an app assignment: both may be read in place.
    expect(read.names).toEqual({ userIds: ['00uAnn', '00uBob'], logins: [], groupIds: ['00gEng'], inPlace: ['00uAnn', '00uBob'] });
  });

  it('answers unavailable when Okta refuses the cursor as too old (400), without retrying', async () => {
    first().reply(400, { errorCode: 'E0000001', errorSummary: 'Api validation failed: since', errorLink: 'E0000001', errorId: 'oae1', errorCauses: [{ errorSummary: 'since: The since parameter must be no earlier than 180 days ago' }] }, rate());
    const c = connector();
    const read = await c.readChanges(`since:${SINCE}`);
    expect(read).toEqual({
      kind: 'unavailable',
      reason: 'Okta refused to read its System Log from the stored cursor (HTTP 400 E0000001 (Api validation failed: since)): the cursor is older than the 180 days Okta allows, or no longer valid',
    });
    expect(c.stats.requests).toBe(1);
  });

  it('answers unavailable when the API token\'s admin may not read the log (403)', async () => {
    first().reply(403, { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action', errorLink: 'E0000006', errorId: 'oae2', errorCauses: [] }, rate());
    const read = await connector().readChanges(`since:${SINCE}`);
    expect(read).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/^the API token's admin may not read Okta's System Log \(HTTP 403 E0000006/) });
  });

  it('retries a 500 and goes on', async () => {
    first().reply(500, { errorCode: 'E0000009', errorSummary: 'Internal Server Error' }, rate());
    first().reply(200, [logEvent('e1', 'user.lifecycle.activate', [user('00uAnn')])], { ...rate(), ...links('s1', 'c1') });
    after('c1').reply(200, [], { ...rate(), ...links('s2', 'c1') });
    const c = connector();
    expect(changes(await c.readChanges(`since:${SINCE}`)).names.userIds).toEqual(['00uAnn']);
    expect(c.stats.retries).toBe(1);
  });

  it('answers unavailable when a page keeps failing', async () => {
    first().times(3).reply(503, { errorCode: 'E0000009', errorSummary: 'Service Unavailable' }, rate());
    const read = await connector().readChanges(`since:${SINCE}`);
    expect(read).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/^Okta's System Log could not be read: Okta GET \/api\/v1\/logs failed after 3 attempts: HTTP 503/) });
  });

  it('stops after its page cap and says the run must read everything, keeping where it stopped', async () => {
    first().reply(200, [logEvent('e1', 'user.lifecycle.activate', [user('00u1')]), logEvent('e2', 'user.lifecycle.activate', [user('00u2')])], { ...rate(), ...links('s1', 'c1') });
    after('c1').reply(200, [logEvent('e3', 'user.lifecycle.activate', [user('00u3')]), logEvent('e4', 'user.lifecycle.activate', [user('00u4')])], { ...rate(), ...links('s2', 'c2') });
    const c = connector(null, { pageSize: 1000, maxPages: 2 });
    const read = changes(await c.readChanges(`since:${SINCE}`));
    expect(read.unnarrowable).toEqual(["more changes since the last run than one incremental read takes (2 pages of up to 1000 events of Okta's System Log)"]);
    expect(read.events).toBe(4);
    expect(read.cursor).toMatch(/after=c2$/);
    expect(c.stats.requests).toBe(2);
  });

  it('cannot narrow a change to the integration\'s app itself, and ignores other apps', async () => {
    first().reply(
      200,
      [
        logEvent('e1', 'application.lifecycle.deactivate', [app(APP)]),
        logEvent('e2', 'application.user_membership.add', [{ id: '0uaX', type: 'AppUser', alternateId: 'x', displayName: 'x' }, app('0oaOther'), user('00uX')]),
        logEvent('e3', 'group.application_assignment.remove', [app(APP), group('00gEng')]),
      ],
      { ...rate(), ...links('s1', 'c1') },
    );
    after('c1').reply(200, [], { ...rate(), ...links('s2', 'c1') });
    const read = changes(await connector(APP).readChanges(`since:${SINCE}`));
    expect(read.names).toEqual({ userIds: [], logins: [], groupIds: ['00gEng'] });
    expect(read.unnarrowable).toEqual([`the Okta app ${APP} itself changed (application.lifecycle.deactivate), which changes every assignment`]);
  });

  it('answers unavailable without asking for a cursor older than the log\'s 90 days, or one it did not write', async () => {
    const c = connector();
    expect(await c.readChanges('since:2026-08-01T00:00:00.000Z')).toEqual({ kind: 'unavailable', reason: 'the Okta System Log was last read 121 days ago, and Okta keeps its events for 90 days only' });
    expect(await c.readChanges('next:2026-11-30T11:00:00.000Z https://evil.test/x')).toMatchObject({ kind: 'unavailable', reason: expect.stringContaining('not one dirsync writes') });
    expect(c.stats.requests).toBe(0);
  });
});

describe('Okta System Log, from the fake org', () => {
  const servers: FakeOkta[] = [];
  beforeAll(() => nock.enableNetConnect('127.0.0.1'));
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  async function org(): Promise<FakeOkta> {
    const o = await new FakeOkta().start();
    servers.push(o);
    o.addUser('ann@acme.test', { id: '00uAnn' });
    o.addUser('bob@acme.test', { id: '00uBob' });
    o.addGroup('Engineering', { id: '00gEng' });
    o.addGroup('Ops', { id: '00gOps' });
    o.addMember('00gEng', '00uAnn');
    o.addApp(APP);
    o.assignGroup(APP, '00gEng');
    // The set-up is logged too: a cursor taken in the same millisecond would include it.
    await new Promise((resolve) => setTimeout(resolve, 5));
    return o;
  }

  const tokenConnector = (o: FakeOkta, appId: string | null = APP) =>
    new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, appId, retry: FAST_RETRY });

  it('names what changed since the cursor, then nothing until the next change', async () => {
    const o = await org();
    const c = tokenConnector(o);
    // From now exactly (feedCursorAt would reach back into the set-up).
    const start = `since:${new Date().toISOString()}`;
    o.updateUser('00uAnn', { status: 'DEPROVISIONED' });
    o.addMember('00gOps', '00uBob');
    o.assignUser(APP, '00uBob');
    o.unassignGroup(APP, '00gEng');
    o.users.get('00uBob')!.profile.title = 'Staff'; // edited behind Okta's back: nobody logged it

    const read = changes(await c.readChanges(start));
    expect(read).toMatchObject({ names: { userIds: ['00uAnn', '00uBob'], logins: [], groupIds: ['00gEng'] }, unnarrowable: [], events: 4 });
    expect(c.stats.requests).toBe(2); // the page with the events, then the empty page

    const quiet = tokenConnector(o);
    const nothing = changes(await quiet.readChanges(read.cursor));
    expect(nothing).toMatchObject({ names: { userIds: [], groupIds: [] }, events: 0 });
    expect(quiet.stats.requests).toBe(1);

    o.updateUser('00uBob', { status: 'SUSPENDED' });
    const later = changes(await tokenConnector(o).readChanges(nothing.cursor));
    expect(later).toMatchObject({ names: { userIds: ['00uBob'], groupIds: [] }, events: 1 });

    // What they name reads as the targeted read expects: Ann deactivated, Bob assigned, Engineering gone from the app.
    const subjects = await tokenConnector(o).readSubjects(read.names);
    expect([...subjects.snapshot.users.keys()]).toEqual(['00uBob']);
    expect(subjects.snapshot.groups.size).toBe(0);
  });

  it('pages through the fake\'s polling links with small pages, to its cap', async () => {
    const o = await org();
    const start = `since:${new Date().toISOString()}`;
    for (let i = 0; i < 5; i += 1) o.addUser(`hire${i}@acme.test`, { id: `00uHire${i}`, status: 'STAGED' });
    const c = new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, appId: APP, retry: FAST_RETRY, feed: { pageSize: 2, maxPages: 2 } });
    const capped = changes(await c.readChanges(start));
    expect(capped.unnarrowable).toEqual(["more changes since the last run than one incremental read takes (2 pages of up to 2 events of Okta's System Log)"]);
    expect(capped.names.userIds).toEqual(['00uHire0', '00uHire1', '00uHire2', '00uHire3']);
    const rest = changes(await new OktaConnector({ orgUrl: o.url, credentials: { kind: 'token', token: o.token }, egress: loopbackEgress, appId: APP, retry: FAST_RETRY, feed: { pageSize: 2 } }).readChanges(capped.cursor));
    expect(rest).toMatchObject({ names: { userIds: ['00uHire4'] }, unnarrowable: [], events: 1 });
  });

  it('refuses a since older than 180 days with a 400, as Okta does', async () => {
    const o = await org();
    const since = new Date(Date.now() - 181 * 24 * 3600_000).toISOString();
    const res = await fetch(`${o.url}/api/v1/logs?since=${since}&sortOrder=ASCENDING`, { headers: { authorization: `SSWS ${o.token}` } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ errorCode: 'E0000001', errorSummary: 'Api validation failed: since' });
    const ok = await fetch(`${o.url}/api/v1/logs?since=${new Date(Date.now() - 1000).toISOString()}&sortOrder=ASCENDING`, { headers: { authorization: `SSWS ${o.token}` } });
    expect(ok.headers.get('link')).toMatch(/rel="next"/);
  });

  describe('a service app (OAuth 2.0, private key)', () => {
    const key = serviceAppKey('rsa');
    const SYNC_SCOPES = ['okta.users.read', 'okta.groups.read', 'okta.apps.read'];

    function serviceAppConnector(o: FakeOkta) {
      const { jwk, keyId } = parseOktaPrivateKey(key.privatePem, 'k1');
      return new OktaConnector({ orgUrl: o.url, credentials: { kind: 'okta-private-key', clientId: '0oaSvc', privateKey: jwk, keyId }, egress: loopbackEgress, appId: APP, retry: FAST_RETRY });
    }

    it('without okta.logs.read granted: full reads go on; the log is unavailable, saying which scope to grant', async () => {
      const o = await org();
      o.serviceApp = { clientId: '0oaSvc', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set(SYNC_SCOPES), dpop: false };
      const c = serviceAppConnector(o);
      const snapshot = await c.readSnapshot();
      expect([...snapshot.users.keys()]).toEqual(['00uAnn']);
      const read = await c.readChanges(c.feedCursorAt(new Date()));
      expect(read).toEqual({
        kind: 'unavailable',
        reason: "the service app is not granted the scope okta.logs.read, which reading Okta's System Log needs: grant it in the Okta Admin Console (Applications > the service app > Okta API Scopes)",
      });
      expect(o.tokenRequests.map((t) => t.scopes)).toEqual([SYNC_SCOPES, ['okta.logs.read']]);
      // The sync's token still works after the refusal.
      expect((await c.readSubjects({ userIds: ['00uAnn'], logins: [], groupIds: [] })).snapshot.users.size).toBe(1);
    });

    it.each([false, true])('with okta.logs.read granted: reads the log with a token of its own (DPoP: %s)', async (dpop) => {
      const o = await org();
      o.serviceApp = { clientId: '0oaSvc', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set([...SYNC_SCOPES, 'okta.logs.read']), dpop };
      const c = serviceAppConnector(o);
      const start = `since:${new Date().toISOString()}`;
      o.updateUser('00uAnn', { status: 'SUSPENDED' });
      expect(changes(await c.readChanges(start)).names.userIds).toEqual(['00uAnn']);
      await c.readSnapshot();
      // One token each (with DPoP, each asked for twice: the first request learns Okta's nonce).
      expect([...new Set(o.tokenRequests.map((t) => t.scopes.join(' ')))]).toEqual(['okta.logs.read', SYNC_SCOPES.join(' ')]);
      expect(o.tokenRequests).toHaveLength(dpop ? 4 : 2);
    });

    it('says so when the log\'s token lacks the scope at the API (403 insufficient_scope)', async () => {
      const o = await org();
      o.serviceApp = { clientId: '0oaSvc', publicKey: key.publicKey, keyId: 'k1', grantedScopes: new Set([...SYNC_SCOPES, 'okta.logs.read']), dpop: false };
      const c = serviceAppConnector(o);
      // The token is issued, but the API refuses it, as Okta does for a token without the endpoint's scope.
      o.fault = (r) =>
        r.path === '/api/v1/logs'
          ? { status: 403, body: { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action' }, headers: { 'www-authenticate': 'Bearer error="insufficient_scope", scope="okta.logs.read"' } }
          : undefined;
      const read = await c.readChanges(c.feedCursorAt(new Date()));
      expect(read).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/^the service app may not read Okta's System Log \(HTTP 403 E0000006.*it needs the scope okta.logs.read/) });
    });
  });
});
