import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson, ZERO_COUNTS } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { DirsyncProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/**
 * An independent oracle for the events feed, written from SPEC.md ("Events", "Event:", the CLI
 * and HTTP interface, deprovision modes, identity) and README.md ("Consuming dirsync events",
 * the command list) alone, without reading the implementation. It drives dirsync as a host-app
 * developer would: the built `dirsync` bin, `dirsync start` (server and worker) with the admin
 * API on, and fake Okta orgs on loopback speaking Okta's wire format.
 *
 * The cases share one scenario and run in order (each builds on the state the previous left):
 * tenant "alpha" (Okta, suspend mode) and tenant "beta" (Okta, delete mode), whose syncs
 * interleave in the one feed.
 */

const cli = new CliHarness();
const ADMIN_TOKEN = `oracle-admin-${randomBytes(12).toString('hex')}`;
const OKTA_TOKEN_A = `okta-a-${randomBytes(8).toString('hex')}`;
const OKTA_TOKEN_B = `okta-b-${randomBytes(8).toString('hex')}`;
const ALPHA = 'alpha';
const BETA = 'beta';
const APP_A = '0oaAlphaApp';
const APP_B = '0oaBetaApp';

let server: DirsyncProcess | undefined;
let oktaA: FakeOkta;
let oktaB: FakeOkta;
let alphaId: string;
let betaId: string;

// ---- shapes, as SPEC/README give them ----------------------------------------------------

type Summary = RunSummaryJson & { integrationId: string; mode: string; approvesRunId: string | null };
type Counts = typeof ZERO_COUNTS;

interface Account {
  id: string;
  personId: string;
  externalId: string;
  userName: string;
  email?: string | null;
  givenName?: string | null;
  familyName?: string | null;
  displayName?: string | null;
  active?: boolean;
  locked?: boolean;
}
interface GroupRef {
  id: string;
  externalId: string;
  name: string;
  description?: string | null;
}
interface Lock {
  id: string;
  personId: string;
  reason: string;
  since: string;
}
interface Ev {
  id: string;
  cursor: string;
  type: string;
  tenant: string;
  integrationId: string;
  runId: string | null;
  occurredAt: string;
  data: {
    account?: Account;
    group?: GroupRef;
    lock?: Lock;
    mode?: string;
    reason?: string;
    changes?: Record<string, unknown>;
    changed?: string[];
    members?: number;
    with?: string;
    adopted?: string;
  };
}
interface Page {
  events: Ev[];
  next: string;
}
interface UserRow {
  id: string;
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}
interface GroupRow {
  id: string;
  name: string;
  members: string[];
}

const EVENT_KEYS = ['cursor', 'data', 'id', 'integrationId', 'occurredAt', 'runId', 'tenant', 'type'];
const ACCOUNT_FIELDS = ['userName', 'email', 'givenName', 'familyName', 'displayName', 'active', 'locked'] as const;

/** Where README puts the list of what moved: `changed`, beside `changes`. */
const changedOf = (e: Ev) => e.data.changed ?? (e.data.changes?.changed as string[] | undefined);

/** Run summary counts -> event types (SPEC: one event per applied change). */
function countsOf(events: Ev[]): Counts {
  const c = { ...ZERO_COUNTS };
  for (const e of events) {
    switch (e.type) {
      case 'user.created': c.usersCreated++; break;
      case 'user.updated': c.usersUpdated++; break;
      case 'user.deprovisioned': c.usersDeprovisioned++; break;
      case 'user.deleted': c.usersDeprovisioned++; break; // the deprovision of delete mode
      case 'user.reprovisioned': c.usersReprovisioned++; break;
      case 'group.created': c.groupsCreated++; break;
      case 'group.updated': c.groupsUpdated++; break;
      case 'group.deleted': c.groupsDeleted++; break;
      case 'group.user_added': c.membershipsAdded++; break;
      case 'group.user_removed': c.membershipsRemoved++; break;
      default: throw new Error(`event type ${e.type} is not one SPEC lists`);
    }
  }
  return c;
}

// ---- driving dirsync ----------------------------------------------------------------------

const json = <T = unknown>(args: string[]) => cli.json<T>(args);
const sync = (id: string, ...flags: string[]) => json<Summary>(['sync', id, '--wait', ...flags]);
const users = (tenant: string) => json<UserRow[]>(['users', '--tenant', tenant]);
const groups = (tenant: string) => json<GroupRow[]>(['groups', '--tenant', tenant]);

/** GET /api/v1/events with the admin token. */
async function apiEvents(q: { tenant?: string; after?: string; limit?: number }): Promise<{ status: number; body: unknown }> {
  const params = new URLSearchParams();
  if (q.tenant) params.set('tenant', q.tenant);
  if (q.after !== undefined) params.set('after', q.after);
  params.set('limit', String(q.limit ?? 1000));
  const res = await fetch(`http://127.0.0.1:${cli.port}/api/v1/events?${params}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: res.status, body: await res.json() };
}
async function apiPage(q: { tenant?: string; after?: string; limit?: number }): Promise<Page> {
  const { status, body } = await apiEvents(q);
  if (status !== 200) throw new Error(`GET /api/v1/events answered ${status}: ${JSON.stringify(body)}`);
  return body as Page;
}

/** `dirsync events --json` with the given options. */
function cliPage(q: { tenant?: string; after?: string; limit?: number }): Promise<Page> {
  const args = ['events'];
  if (q.tenant) args.push('--tenant', q.tenant);
  if (q.after !== undefined) args.push('--after', q.after);
  if (q.limit !== undefined) args.push('--limit', String(q.limit));
  return cli.json<Page>(args);
}

/**
 * The whole feed after the mark, once `expected` events are visible (events are handed out
 * once every older transaction has ended, so a just-finished run's may take a moment). With
 * nothing expected it gives stray events a second to show.
 */
let mark: string | undefined;
async function eventsSinceMark(expected: number): Promise<Ev[]> {
  let page: Page;
  if (expected === 0) {
    await new Promise((r) => setTimeout(r, 1000));
    page = await apiPage({ after: mark });
  } else {
    page = await waitFor(`${expected} new events after ${mark}`, async () => {
      const p = await apiPage({ after: mark });
      return p.events.length >= expected ? p : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100 });
  }
  mark = page.next;
  return page.events;
}

function expectEventShape(e: Ev): void {
  expect(Object.keys(e).sort(), `keys of ${e.type} ${e.id}`).toEqual(EVENT_KEYS);
  expect(typeof e.id).toBe('string');
  expect(typeof e.cursor).toBe('string');
  expect(e.occurredAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  expect(Number.isNaN(Date.parse(e.occurredAt))).toBe(false);
  expect(typeof e.data).toBe('object');
}

/** An account in an event against the `dirsync users` row for it. */
function expectAccountIs(account: Account | undefined, row: UserRow, externalId: string): void {
  expect(account).toBeDefined();
  expect(account!.id).toBe(row.id);
  expect(account!.externalId).toBe(externalId);
  expect(typeof account!.personId).toBe('string');
  expect(account!.personId.length).toBeGreaterThan(0);
  for (const f of ACCOUNT_FIELDS) expect(account![f], `account.${f} of ${row.userName}`).toEqual(row[f]);
}

const byUserName = (rows: UserRow[], userName: string): UserRow => {
  const row = rows.find((r) => r.userName === userName);
  if (!row) throw new Error(`dirsync users has no ${userName}: ${rows.map((r) => r.userName).join(', ')}`);
  return row;
};
const byGroupName = (rows: GroupRow[], name: string): GroupRow => {
  const row = rows.find((r) => r.name === name);
  if (!row) throw new Error(`dirsync groups has no ${name}`);
  return row;
};

// ---- state carried between the cases -----------------------------------------------------

const person: Record<string, string> = {}; // userName -> personId (from events)
const accountId: Record<string, string> = {}; // `${tenant}/${userName}` -> account id
const lockOf: Record<string, Lock> = {};
let annUpdate: Ev;

beforeAll(async () => {
  await cli.createDatabase();
  const started = new DirsyncProcess(cli, 'start', { DIRSYNC_ADMIN_TOKEN: ADMIN_TOKEN }).start();

  // Okta org A: ann assigned directly (and in Engineering), bob only through Ops, dan directly
  // and in both groups, cara assigned directly but SUSPENDED from the start; both groups
  // assigned to the app.
  oktaA = await new FakeOkta().start();
  oktaA.token = OKTA_TOKEN_A;
  const appA = oktaA.addApp(APP_A);
  oktaA.addUser('ann.lee@oracle.test', { id: '00uAnnA', profile: { department: 'R&D', title: 'Engineer' } });
  oktaA.addUser('bob.king@oracle.test', { id: '00uBobA' });
  oktaA.addUser('cara.diaz@oracle.test', { id: '00uCaraA', status: 'SUSPENDED' });
  oktaA.addUser('dan.ito@oracle.test', { id: '00uDanA', profile: { displayName: 'Dan Ito' } });
  oktaA.addGroup('Engineering', { id: '00gEngA', description: 'Builds the product' });
  oktaA.addGroup('Ops', { id: '00gOpsA' });
  oktaA.addMember('00gEngA', '00uAnnA');
  oktaA.addMember('00gEngA', '00uDanA');
  oktaA.addMember('00gOpsA', '00uBobA');
  oktaA.addMember('00gOpsA', '00uDanA');
  appA.users.add('00uAnnA');
  appA.users.add('00uCaraA');
  appA.users.add('00uDanA');
  appA.groups.add('00gEngA');
  appA.groups.add('00gOpsA');

  // Okta org B: the same person as alpha's ann under another spelling of the login, and eve;
  // both in Finance.
  oktaB = await new FakeOkta().start();
  oktaB.token = OKTA_TOKEN_B;
  const appB = oktaB.addApp(APP_B);
  oktaB.addUser('Ann.Lee@Oracle.TEST', { id: '00uAnnB' });
  oktaB.addUser('eve.moss@oracle.test', { id: '00uEveB' });
  oktaB.addGroup('Finance', { id: '00gFinB' });
  oktaB.addMember('00gFinB', '00uAnnB');
  oktaB.addMember('00gFinB', '00uEveB');
  appB.users.add('00uAnnB');
  appB.groups.add('00gFinB');

  await Promise.all([json(['tenant', 'create', ALPHA, '--name', 'Alpha Inc']), json(['tenant', 'create', BETA, '--name', 'Beta Ltd'])]);
  [alphaId, betaId] = (
    await Promise.all([
      json<{ id: string }>(['integration', 'create', '--tenant', ALPHA, '--provider', 'okta', '--base-url', oktaA.url, '--token', OKTA_TOKEN_A, '--okta-app-id', APP_A]),
      json<{ id: string }>([
        'integration', 'create', '--tenant', BETA, '--provider', 'okta', '--base-url', oktaB.url, '--token', OKTA_TOKEN_B, '--okta-app-id', APP_B, '--deprovision', 'delete',
      ]),
    ])
  ).map((i) => i.id) as [string, string];
  server = await started;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await oktaA?.stop();
  await oktaB?.stop();
  await cli.stop();
});

describe('events oracle (SPEC "Events" / README "Consuming dirsync events")', () => {
  it('1. a first sync gives exactly one event per applied change, shaped as SPEC says', async () => {
    const run = await sync(alphaId);
    expect(run).toMatchObject({ status: 'succeeded', dryRun: false, integrationId: alphaId });
    // ann, bob, dan (cara is suspended and was never had: not created); Engineering, Ops;
    // ann+dan in Engineering, bob+dan in Ops.
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 3, groupsCreated: 2, membershipsAdded: 4 });

    const events = await eventsSinceMark(9);
    expect(events).toHaveLength(9);
    for (const e of events) {
      expectEventShape(e);
      expect(e).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id });
    }
    expect(countsOf(events)).toEqual(run.counts);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(new Set(events.map((e) => e.cursor)).size).toBe(events.length);

    // The run's change log is the feed: as many applied changes as events.
    const shown = await json<{ changes: { state?: string }[] }>(['run', 'show', run.id]);
    expect(shown.changes.filter((c) => (c.state ?? 'applied') === 'applied')).toHaveLength(events.length);

    const [u, g] = await Promise.all([users(ALPHA), groups(ALPHA)]);
    expect(u.map((r) => r.userName)).toEqual(['ann.lee@oracle.test', 'bob.king@oracle.test', 'dan.ito@oracle.test']);
    const ext: Record<string, string> = { 'ann.lee@oracle.test': '00uAnnA', 'bob.king@oracle.test': '00uBobA', 'dan.ito@oracle.test': '00uDanA' };
    const created = events.filter((e) => e.type === 'user.created');
    expect(created.map((e) => e.data.account!.userName).sort()).toEqual(u.map((r) => r.userName));
    for (const e of created) {
      const row = byUserName(u, e.data.account!.userName);
      expectAccountIs(e.data.account, row, ext[row.userName]!);
      person[row.userName] = e.data.account!.personId;
      accountId[`${ALPHA}/${row.userName}`] = row.id;
    }
    expect(created.some((e) => e.data.account!.userName.startsWith('cara'))).toBe(false);
    // Three people, three person ids.
    expect(new Set(Object.values(person)).size).toBe(3);

    const gExt: Record<string, { externalId: string; description: string | null }> = {
      Engineering: { externalId: '00gEngA', description: 'Builds the product' },
      Ops: { externalId: '00gOpsA', description: null },
    };
    const groupCreated = events.filter((e) => e.type === 'group.created');
    expect(groupCreated.map((e) => e.data.group!.name).sort()).toEqual(['Engineering', 'Ops']);
    for (const e of groupCreated) {
      const row = byGroupName(g, e.data.group!.name);
      expect(e.data.group).toMatchObject({ id: row.id, name: row.name, ...gExt[row.name] });
    }

    const added = events.filter((e) => e.type === 'group.user_added');
    const pairs = added.map((e) => `${e.data.account!.userName} in ${e.data.group!.name}`).sort();
    expect(pairs).toEqual(g.flatMap((row) => row.members.map((m) => `${m} in ${row.name}`)).sort());
    for (const e of added) {
      const acc = byUserName(u, e.data.account!.userName);
      const grp = byGroupName(g, e.data.group!.name);
      expect(e.data.account).toMatchObject({ id: acc.id, personId: person[acc.userName], externalId: ext[acc.userName], userName: acc.userName });
      expect(e.data.group).toMatchObject({ id: grp.id, externalId: gExt[grp.name]!.externalId, name: grp.name });
    }

    // Beta's first sync: its ann is the same person (the login normalizes alike), another account.
    const betaRun = await sync(betaId);
    expect(betaRun.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 2, groupsCreated: 1, membershipsAdded: 2 });
    const betaEvents = await eventsSinceMark(5);
    expect(betaEvents).toHaveLength(5);
    for (const e of betaEvents) {
      expectEventShape(e);
      expect(e).toMatchObject({ tenant: BETA, integrationId: betaId, runId: betaRun.id });
    }
    expect(countsOf(betaEvents)).toEqual(betaRun.counts);
    const bu = await users(BETA);
    const betaAnn = betaEvents.find((e) => e.type === 'user.created' && e.data.account!.userName === 'Ann.Lee@Oracle.TEST');
    expectAccountIs(betaAnn?.data.account, byUserName(bu, 'Ann.Lee@Oracle.TEST'), '00uAnnB');
    expect(betaAnn!.data.account!.personId).toBe(person['ann.lee@oracle.test']);
    expect(betaAnn!.data.account!.id).not.toBe(accountId[`${ALPHA}/ann.lee@oracle.test`]);
    const betaEve = betaEvents.find((e) => e.type === 'user.created' && e.data.account!.userName === 'eve.moss@oracle.test');
    expectAccountIs(betaEve?.data.account, byUserName(bu, 'eve.moss@oracle.test'), '00uEveB');
    person['eve.moss@oracle.test'] = betaEve!.data.account!.personId;
    accountId[`${BETA}/eve.moss@oracle.test`] = betaEve!.data.account!.id;
  }, 60_000);

  it('2. suspend gives one user.deprovisioned with mode, reason and lock; un-suspend a user.reprovisioned; delete mode a user.deleted', async () => {
    // suspend mode (alpha): bob, who is in Ops, is suspended in Okta.
    oktaA.updateUser('00uBobA', { status: 'SUSPENDED' });
    const run = await sync(alphaId);
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersDeprovisioned: 1 });
    const events = await eventsSinceMark(1);
    expect(events.map((e) => e.type)).toEqual(['user.deprovisioned']);
    const [dep] = events;
    expectEventShape(dep!);
    expect(dep).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id });
    expect(dep!.data.mode).toBe('suspend');
    expect(dep!.data.reason).toBe('idp-status');
    const bob = byUserName(await users(ALPHA), 'bob.king@oracle.test');
    expect(bob).toMatchObject({ active: false, locked: true, groups: ['Ops'] }); // suspend keeps the membership Okta still lists
    expectAccountIs(dep!.data.account, bob, '00uBobA');
    expect(dep!.data.account).toMatchObject({ active: false, locked: true, personId: person['bob.king@oracle.test'] });
    expect(dep!.data.lock).toMatchObject({ id: expect.any(String), personId: person['bob.king@oracle.test'], reason: 'idp-status', since: expect.any(String) });
    lockOf.bob = dep!.data.lock!;

    // Un-suspend: the lock is lifted, the same one.
    oktaA.updateUser('00uBobA', { status: 'ACTIVE' });
    const back = await sync(alphaId);
    expect(back.counts).toEqual({ ...ZERO_COUNTS, usersReprovisioned: 1 });
    const backEvents = await eventsSinceMark(1);
    expect(backEvents.map((e) => e.type)).toEqual(['user.reprovisioned']);
    const [rep] = backEvents;
    expectEventShape(rep!);
    expect(rep).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: back.id });
    const bobAgain = byUserName(await users(ALPHA), 'bob.king@oracle.test');
    expect(bobAgain).toMatchObject({ active: true, locked: false });
    expectAccountIs(rep!.data.account, bobAgain, '00uBobA');
    expect(rep!.data.lock).toMatchObject({ id: lockOf.bob.id, personId: person['bob.king@oracle.test'] });

    // delete mode (beta): eve is suspended. Her account goes with its membership of Finance.
    const eveRow = byUserName(await users(BETA), 'eve.moss@oracle.test');
    oktaB.updateUser('00uEveB', { status: 'SUSPENDED' });
    const del = await sync(betaId);
    expect(del.counts).toEqual({ ...ZERO_COUNTS, usersDeprovisioned: 1, membershipsRemoved: 1 });
    const delEvents = await eventsSinceMark(2);
    expect(delEvents.map((e) => e.type).sort()).toEqual(['group.user_removed', 'user.deleted']);
    expect(countsOf(delEvents)).toEqual(del.counts);
    for (const e of delEvents) {
      expectEventShape(e);
      expect(e).toMatchObject({ tenant: BETA, integrationId: betaId, runId: del.id });
    }
    const deleted = delEvents.find((e) => e.type === 'user.deleted')!;
    expect(deleted.data.mode).toBe('delete');
    expect(deleted.data.reason).toBe('idp-status');
    // "account as it was before it went"
    expect(deleted.data.account).toMatchObject({ id: eveRow.id, personId: person['eve.moss@oracle.test'], externalId: '00uEveB', userName: 'eve.moss@oracle.test', email: eveRow.email });
    expect(deleted.data.lock).toMatchObject({ id: expect.any(String), personId: person['eve.moss@oracle.test'], reason: 'idp-status' });
    lockOf.eve = deleted.data.lock!;
    const removed = delEvents.find((e) => e.type === 'group.user_removed')!;
    expect(removed.data.account).toMatchObject({ id: eveRow.id, personId: person['eve.moss@oracle.test'], externalId: '00uEveB', userName: 'eve.moss@oracle.test' });
    expect(removed.data.group).toMatchObject({ externalId: '00gFinB', name: 'Finance' });
    expect(removed.data.with).toBe('user deprovisioned');
    expect((await users(BETA)).map((r) => r.userName)).toEqual(['Ann.Lee@Oracle.TEST']);

    // Okta re-activates eve: the same identity provisioned again is a reprovision lifting that lock,
    // and Okta still lists her in Finance.
    oktaB.updateUser('00uEveB', { status: 'ACTIVE' });
    const reb = await sync(betaId);
    expect(reb.counts).toEqual({ ...ZERO_COUNTS, usersReprovisioned: 1, membershipsAdded: 1 });
    const rebEvents = await eventsSinceMark(2);
    expect(countsOf(rebEvents)).toEqual(reb.counts);
    const eveBack = rebEvents.find((e) => e.type === 'user.reprovisioned')!;
    expect(eveBack.data.account).toMatchObject({ userName: 'eve.moss@oracle.test', externalId: '00uEveB', active: true, locked: false });
    expect(eveBack.data.lock).toMatchObject({ id: lockOf.eve.id });
    accountId[`${BETA}/eve.moss@oracle.test`] = eveBack.data.account!.id;
    person['eve.moss@oracle.test'] = eveBack.data.account!.personId;
  }, 60_000);

  it('3. a profile update is one user.updated with each changed field, previous and new', async () => {
    const before = byUserName(await users(ALPHA), 'ann.lee@oracle.test');
    oktaA.updateUser('00uAnnA', { profile: { firstName: 'Annabel', email: 'annabel.lee@oracle.test', title: 'Staff Engineer' } });
    const run = await sync(alphaId);
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersUpdated: 1 });
    const events = await eventsSinceMark(1);
    expect(events.map((e) => e.type)).toEqual(['user.updated']);
    const [upd] = events;
    expectEventShape(upd!);
    expect(upd).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id });
    const after = byUserName(await users(ALPHA), 'ann.lee@oracle.test');
    expect(after).toMatchObject({ givenName: 'Annabel', email: 'annabel.lee@oracle.test' });
    expectAccountIs(upd!.data.account, after, '00uAnnA');
    const changes = upd!.data.changes!;
    expect(changes.givenName).toEqual({ previous: 'Ann', new: 'Annabel' });
    expect(changes.email).toEqual({ previous: 'ann.lee@oracle.test', new: 'annabel.lee@oracle.test' });
    // Every field `dirsync users` shows that moved is there with both values; none that did not move.
    for (const f of ACCOUNT_FIELDS) {
      if (before[f] !== after[f]) expect(changes[f], f).toEqual({ previous: before[f], new: after[f] });
      else expect(changes, f).not.toHaveProperty(f);
    }
    expect(changes).not.toHaveProperty('personId'); // the login did not change
    annUpdate = upd!;
  }, 60_000);

  it('3b. an update of raw profile attributes alone is a user.updated whose `changed` lists `attributes`', async () => {
    // README: `changed` lists `attributes`, and `changes.attributes` holds each raw attribute that differs, as it was and is.
    oktaA.updateUser('00uAnnA', { profile: { title: 'Principal Engineer' } }); // Okta's `title`: no field shows it
    const run = await sync(alphaId);
    expect(run.counts).toEqual({ ...ZERO_COUNTS, usersUpdated: 1 });
    const events = await eventsSinceMark(1);
    expect(events.map((e) => e.type)).toEqual(['user.updated']);
    const [upd] = events;
    expect(upd).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id, data: { account: { externalId: '00uAnnA' } } });
    for (const f of ACCOUNT_FIELDS) expect(upd!.data.changes ?? {}, f).not.toHaveProperty(f);
    expect(changedOf(upd!)).toContain('attributes');
    expect(upd!.data.changes).toEqual({ attributes: { previous: { title: 'Staff Engineer' }, new: { title: 'Principal Engineer' } } });
  }, 60_000);

  // Found by this oracle: `changed` listed the fields only when fields and raw attributes moved
  // together (case 3 moved Okta's firstName, email and title, which is in no field).
  it('3c. an update moving fields and raw attributes together also lists `attributes` in `changed`', () => {
    expect(changedOf(annUpdate)).toEqual(expect.arrayContaining(['email', 'givenName', 'displayName', 'attributes']));
  });

  it('4. Okta membership changes give group.user_added / group.user_removed naming the account and the group', async () => {
    oktaA.addMember('00gOpsA', '00uAnnA'); // ann (assigned directly) joins Ops
    oktaA.removeMember('00gEngA', '00uDanA'); // dan (still assigned directly) leaves Engineering
    const run = await sync(alphaId);
    expect(run.counts).toEqual({ ...ZERO_COUNTS, membershipsAdded: 1, membershipsRemoved: 1 });
    const events = await eventsSinceMark(2);
    expect(countsOf(events)).toEqual(run.counts);
    const [u, g] = await Promise.all([users(ALPHA), groups(ALPHA)]);
    const ann = byUserName(u, 'ann.lee@oracle.test');
    const dan = byUserName(u, 'dan.ito@oracle.test');
    const ops = byGroupName(g, 'Ops');
    const eng = byGroupName(g, 'Engineering');
    expect(ops.members).toContain('ann.lee@oracle.test');
    expect(eng.members).not.toContain('dan.ito@oracle.test');

    const added = events.find((e) => e.type === 'group.user_added')!;
    expectEventShape(added);
    expect(added).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id });
    expect(added.data.account).toMatchObject({ id: ann.id, personId: person['ann.lee@oracle.test'], externalId: '00uAnnA', userName: 'ann.lee@oracle.test' });
    expect(added.data.group).toMatchObject({ id: ops.id, externalId: '00gOpsA', name: 'Ops' });

    const removed = events.find((e) => e.type === 'group.user_removed')!;
    expectEventShape(removed);
    expect(removed).toMatchObject({ tenant: ALPHA, integrationId: alphaId, runId: run.id });
    expect(removed.data.account).toMatchObject({ id: dan.id, personId: person['dan.ito@oracle.test'], externalId: '00uDanA', userName: 'dan.ito@oracle.test' });
    expect(removed.data.group).toMatchObject({ id: eng.id, externalId: '00gEngA', name: 'Engineering' });
    expect(removed.data.with).toBeUndefined(); // neither its group's deletion nor its user's deprovision
  }, 60_000);

  it('5. a dry run and a held plan make no events; the approval makes them', async () => {
    oktaA.updateUser('00uDanA', { profile: { lastName: 'Itō-Park' } });
    const dry = await sync(alphaId, '--dry-run');
    expect(dry).toMatchObject({ dryRun: true, status: 'succeeded' });
    expect(dry.counts).toEqual({ ...ZERO_COUNTS, usersUpdated: 1 });
    expect(await eventsSinceMark(0)).toEqual([]);
    // The same change for real is one event.
    const real = await sync(alphaId);
    expect(real.counts).toEqual({ ...ZERO_COUNTS, usersUpdated: 1 });
    const realEvents = await eventsSinceMark(1);
    expect(realEvents.map((e) => [e.type, e.runId, e.data.account?.userName])).toEqual([['user.updated', real.id, 'dan.ito@oracle.test']]);
    expect(realEvents[0]!.data.changes!.familyName).toEqual({ previous: 'Ito', new: 'Itō-Park' });

    // Seven new hires, then all seven leave the app: 7 of 10 active accounts > 20% and > 5: held.
    const temps: string[] = [];
    for (let i = 0; i < 7; i++) {
      const t = oktaA.addUser(`temp${i}.contractor@oracle.test`, { id: `00uTemp${i}A` });
      oktaA.apps.get(APP_A)!.users.add(t.id);
      temps.push(t.id);
    }
    const hires = await sync(alphaId);
    expect(hires.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 7 });
    const hireEvents = await eventsSinceMark(7);
    expect(countsOf(hireEvents)).toEqual(hires.counts);
    expect(hireEvents.every((e) => e.runId === hires.id)).toBe(true);

    for (const id of temps) oktaA.apps.get(APP_A)!.users.delete(id);
    const held = await sync(alphaId);
    expect(held.status).toBe('held');
    expect(held.counts).toEqual(ZERO_COUNTS);
    expect(await eventsSinceMark(0)).toEqual([]);
    const stillActive = (await users(ALPHA)).filter((r) => r.userName.startsWith('temp'));
    expect(stillActive.every((r) => r.active && !r.locked)).toBe(true);

    const approval = await json<Summary>(['run', 'approve', held.id]);
    expect(approval).toMatchObject({ status: 'succeeded', approvesRunId: held.id });
    expect(approval.counts).toEqual({ ...ZERO_COUNTS, usersDeprovisioned: 7 });
    const approved = await eventsSinceMark(7);
    expect(approved).toHaveLength(7);
    expect(countsOf(approved)).toEqual(approval.counts);
    const after = await users(ALPHA);
    for (const e of approved) {
      expectEventShape(e);
      expect(e).toMatchObject({ type: 'user.deprovisioned', tenant: ALPHA, integrationId: alphaId, runId: approval.id });
      expect(e.data).toMatchObject({ mode: 'suspend', reason: 'out-of-scope', lock: { reason: 'out-of-scope' } });
      expectAccountIs(e.data.account, byUserName(after, e.data.account!.userName), e.data.account!.externalId);
      expect(e.data.account).toMatchObject({ active: false, locked: true });
    }
    expect(approved.map((e) => e.data.account!.externalId).sort()).toEqual([...temps].sort());
  }, 60_000);

  it('6. cursors: pages give every event once in order; the end is empty; bad cursors are one sentence; --tenant loses nothing', async () => {
    const whole = await cliPage({ limit: 1000 });
    expect(whole.events.length).toBeGreaterThan(30);
    expect(whole.events.length).toBeLessThan(1000);
    expect(new Set(whole.events.map((e) => e.id)).size).toBe(whole.events.length);
    // The admin API answers the same feed.
    expect(await apiPage({ limit: 1000 })).toEqual(whole);

    // Paged with --limit/--after: every event exactly once, in the same order.
    const paged: Ev[] = [];
    let page = await cliPage({ limit: 15 });
    let pages = 1;
    while (page.events.length > 0) {
      expect(page.events.length).toBeLessThanOrEqual(15);
      paged.push(...page.events);
      expect(page.next).toBe(page.events.at(-1)!.cursor);
      page = await cliPage({ limit: 15, after: page.next });
      pages++;
      expect(pages).toBeLessThan(20);
    }
    expect(paged.map((e) => e.id)).toEqual(whole.events.map((e) => e.id));
    expect(paged).toEqual(whole.events);
    // Reading after the last `next` yields nothing.
    expect(page.events).toEqual([]);
    expect((await cliPage({ after: whole.next })).events).toEqual([]);
    expect((await apiPage({ after: whole.next })).events).toEqual([]);
    // Each event's own cursor resumes right after it.
    const mid = whole.events[Math.floor(whole.events.length / 2)]!;
    expect((await apiPage({ after: mid.cursor })).events.map((e) => e.id)).toEqual(whole.events.slice(whole.events.indexOf(mid) + 1).map((e) => e.id));

    // An invalid cursor: one sentence on stderr, exit 1; 400 from the API.
    const badCli = await cli.run(['events', '--after', 'not-a-cursor', '--json']);
    expect(badCli.code).toBe(1);
    expect(badCli.stdout).toBe('');
    expect(badCli.stderr.trim().split('\n')).toHaveLength(1);
    expect(badCli.stderr.trim()).toMatch(/cursor/i);
    for (const bad of ['not-a-cursor', 'abc.def']) {
      const api = await apiEvents({ after: bad });
      expect(api.status, bad).toBe(400);
      expect(api.body).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
    }

    // --tenant: only that tenant's events, all of them, in feed order, through small pages.
    const tenantFeed = async (tenant: string, limit: number, via: 'cli' | 'api', after?: string): Promise<{ events: Ev[]; next: string | undefined }> => {
      const out: Ev[] = [];
      let next = after;
      for (let i = 0; i < 30; i++) {
        const p = via === 'cli' ? await cliPage({ tenant, limit, after: next }) : await apiPage({ tenant, limit, after: next });
        out.push(...p.events);
        next = p.next;
        if (p.events.length === 0) break;
      }
      return { events: out, next };
    };
    const alphaFeed = await tenantFeed(ALPHA, 15, 'cli');
    const betaFeed = await tenantFeed(BETA, 2, 'api');
    expect(alphaFeed.events).toEqual(whole.events.filter((e) => e.tenant === ALPHA));
    expect(betaFeed.events).toEqual(whole.events.filter((e) => e.tenant === BETA));
    expect(alphaFeed.events.length + betaFeed.events.length).toBe(whole.events.length);

    // Interleaving: beta changes while alpha's reader waits; alpha's next moves past beta's events,
    // and nothing of alpha's is lost when both then change at once.
    oktaB.addUser('hal.berg@oracle.test', { id: '00uHalB' });
    oktaB.addMember('00gFinB', '00uHalB');
    const b1 = await sync(betaId);
    expect(b1.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1, membershipsAdded: 1 });
    await waitFor('beta events of run b1', async () => ((await apiPage({ tenant: BETA, after: betaFeed.next })).events.length >= 2 ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
    const alphaIdle = await cliPage({ tenant: ALPHA, after: alphaFeed.next });
    expect(alphaIdle.events).toEqual([]);

    oktaA.addUser('gil.ruiz@oracle.test', { id: '00uGilA' });
    oktaA.apps.get(APP_A)!.users.add('00uGilA');
    oktaA.addMember('00gEngA', '00uGilA');
    oktaB.addGroup('Audit', { id: '00gAudB', description: 'Internal audit' });
    oktaB.addMember('00gAudB', '00uEveB');
    oktaB.addMember('00gAudB', '00uHalB');
    oktaB.apps.get(APP_B)!.groups.add('00gAudB');
    const [a2, b2] = await Promise.all([sync(alphaId), sync(betaId)]);
    expect(a2.counts).toEqual({ ...ZERO_COUNTS, usersCreated: 1, membershipsAdded: 1 });
    expect(b2.counts).toEqual({ ...ZERO_COUNTS, groupsCreated: 1, membershipsAdded: 2 });
    const alphaNew = await waitFor('alpha events of run a2', async () => {
      const p = await apiPage({ tenant: ALPHA, after: alphaIdle.next });
      return p.events.length >= 2 ? p : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    expect(alphaNew.events.every((e) => e.tenant === ALPHA && e.runId === a2.id)).toBe(true);
    expect(countsOf(alphaNew.events)).toEqual(a2.counts);
    const betaNew = await tenantFeed(BETA, 2, 'api', betaFeed.next);
    expect(betaNew.events.map((e) => e.runId)).toEqual([b1.id, b1.id, b2.id, b2.id, b2.id]);
    expect(countsOf(betaNew.events.filter((e) => e.runId === b2.id))).toEqual(b2.counts);
    // The whole feed after the old end holds exactly both tenants' new events, each once.
    const wholeNew = await eventsSinceMarkFrom(whole.next, 7);
    expect(wholeNew.map((e) => e.id).sort()).toEqual([...alphaNew.events, ...betaNew.events].map((e) => e.id).sort());
    expect(wholeNew.filter((e) => e.tenant === ALPHA)).toEqual(alphaNew.events);
    expect(wholeNew.filter((e) => e.tenant === BETA)).toEqual(betaNew.events);
  }, 90_000);

  it('7. deleting an integration: group.user_removed per membership and group.deleted per group, runId null, earlier events kept', async () => {
    const before = await apiPage({ limit: 1000 });
    const g = await groups(BETA);
    expect(g.map((r) => r.name)).toEqual(['Audit', 'Finance']);
    const memberships = g.flatMap((row) => row.members.map((m) => `${m} in ${row.name}`)).sort();
    expect(memberships).toHaveLength(5); // Audit: eve, hal; Finance: ann, eve, hal
    const accountsBefore = await users(BETA);

    const deleted = await cli.run(['integration', 'delete', betaId, '--yes']);
    expect(deleted.code, deleted.stderr).toBe(0);

    const events = await eventsSinceMark(memberships.length + g.length);
    expect(events).toHaveLength(memberships.length + g.length);
    for (const e of events) {
      expectEventShape(e);
      expect(e).toMatchObject({ tenant: BETA, integrationId: betaId, runId: null });
    }
    expect(events.filter((e) => e.type.startsWith('user.'))).toEqual([]);
    const removed = events.filter((e) => e.type === 'group.user_removed');
    expect(removed.map((e) => `${e.data.account!.userName} in ${e.data.group!.name}`).sort()).toEqual(memberships);
    for (const e of removed) {
      const acc = byUserName(accountsBefore, e.data.account!.userName);
      const grp = byGroupName(g, e.data.group!.name);
      expect(e.data.account).toMatchObject({ id: acc.id, personId: expect.any(String), externalId: expect.any(String) });
      expect(e.data.group).toMatchObject({ id: grp.id, name: grp.name, externalId: expect.any(String) });
      expect(e.data.with).toBe('group deleted');
    }
    const groupDeleted = events.filter((e) => e.type === 'group.deleted');
    expect(groupDeleted.map((e) => e.data.group!.name).sort()).toEqual(['Audit', 'Finance']);
    for (const e of groupDeleted) {
      const grp = byGroupName(g, e.data.group!.name);
      expect(e.data.group).toMatchObject({ id: grp.id, name: grp.name, externalId: grp.name === 'Audit' ? '00gAudB' : '00gFinB' });
      expect(e.data.members).toBe(grp.members.length);
    }
    // Its accounts stay, unowned; the groups are gone.
    expect((await users(BETA)).map((r) => r.userName)).toEqual(accountsBefore.map((r) => r.userName));
    expect(await groups(BETA)).toEqual([]);
    // The integration's earlier events stay in the feed, even though its runs are deleted.
    const after = await apiPage({ limit: 1000 });
    expect(after.events.slice(0, before.events.length)).toEqual(before.events);
    expect(after.events.slice(before.events.length)).toEqual(events);
  }, 60_000);
});

/** Like eventsSinceMark, from a given cursor, without moving the mark. */
async function eventsSinceMarkFrom(after: string, expected: number): Promise<Ev[]> {
  const page = await waitFor(`${expected} events after ${after}`, async () => {
    const p = await apiPage({ after });
    return p.events.length >= expected ? p : undefined;
  }, { timeoutMs: 15_000, intervalMs: 100 });
  mark = page.next;
  return page.events;
}
