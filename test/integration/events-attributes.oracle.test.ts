import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository, type TenantUserView } from '../../src/db/directory.repository.js';
import { EventRepository, type EventPage } from '../../src/db/event.repository.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, approveNow, createOktaIntegration, runNow } from '../support/fixtures.js';

/**
 * An oracle written from SPEC.md alone ("Events", "Run", "Safety", "Identity", the deprovision
 * modes and the Event paragraph under Interfaces), for IdP edits that change an attribute and
 * the status of one user at once:
 *
 * - "every applied change, from any source, is an event" and `user.updated` carries "changed
 *   fields with previous and new values": an email change that was applied is heard, with the
 *   value it had and the value it has.
 * - "`data` carries the account ... as `dirsync users` shows it": the last event about an
 *   account describes it as `dirsync users` shows it afterwards.
 * - "`user.deprovisioned` (mode, reason, lock)", "`user.reprovisioned` (lock lifted)".
 * - "Safety": a held plan applies creates and updates at once; destructive operations wait
 *   for approval. The same applied changes mean the same events, held or not.
 */

type FeedEvent = EventPage['events'][number];
type Cursor = EventPage['next'];
type Change = { previous: unknown; new: unknown };

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
const fakes: FakeOkta[] = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterEach(async () => {
  while (fakes.length) await fakes.pop()!.stop();
});
afterAll(async () => dropDb());

const deps = () => ({ db, config });
const feed = () => new EventRepository(db);

/** Every event of a tenant after `after` (all of them without it), in feed order. */
async function eventsAfter(tenantId: string, after?: Cursor): Promise<{ events: FeedEvent[]; next: Cursor | undefined }> {
  const out: FeedEvent[] = [];
  let page = await feed().after({ tenantId, limit: 1000, after });
  let next: Cursor | undefined = after;
  while (page.events.length > 0) {
    out.push(...page.events);
    next = page.next;
    page = await feed().after({ tenantId, limit: 1000, after: page.next });
  }
  return { events: out, next: page.next ?? next };
}

/** The cursor at the end of a tenant's feed now. */
async function endOf(tenantId: string): Promise<Cursor | undefined> {
  return (await eventsAfter(tenantId)).next;
}

/**
 * A 3-user org (u0..u2 with firstName, lastName, email), one group, app-scoped, as events.test.ts
 * builds it; `extra` more users (x0.., assigned to the app directly) when a scenario needs more
 * than 5 deprovisions to reach SPEC's guard ("more than 20% ... *and* more than 5").
 */
async function oktaOrg(mode: string, threshold: string, extra = 0) {
  const okta = await new FakeOkta().start();
  fakes.push(okta);
  const domain = `${uniqueSlug('evo')}.test`;
  const app = okta.addApp('0oaApp');
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const u = okta.addUser(`u${i}@${domain}`, { id: `00u${i}`, profile: { firstName: `First${i}`, lastName: 'Last', email: `u${i}@${domain}` } });
    app.users.add(u.id);
    ids.push(u.id);
  }
  const g = okta.addGroup('Staff', { id: '00gStaff' });
  for (const id of ids) okta.addMember(g.id, id);
  app.groups.add(g.id);
  const extras: string[] = [];
  for (let i = 0; i < extra; i++) {
    const x = okta.addUser(`x${i}@${domain}`, { id: `00x${i}`, profile: { firstName: `Extra${i}`, lastName: 'Last', email: `x${i}@${domain}` } });
    app.users.add(x.id);
    extras.push(x.id);
  }
  const t = await createOktaIntegration(db, config, okta, { appId: '0oaApp', deprovision: mode, threshold });
  return { okta, ids, extras, domain, t };
}

/** The account of an IdP id (the only thing that identifies a user, SPEC "Identity"). */
async function accountOf(t: TestIntegration, externalId: string) {
  return db
    .selectFrom('accounts')
    .select(['id', 'user_id', 'user_name', 'email', 'active'])
    .where('integration_id', '=', t.integrationId)
    .where('external_id', '=', externalId)
    .executeTakeFirst();
}

/** What `dirsync users --tenant <slug>` shows (the repository behind the command). */
async function usersView(t: TestIntegration): Promise<TenantUserView[]> {
  return new DirectoryRepository(db).listTenantUsers(t.tenantId);
}

/** Events whose subject (data.account) is the given account. */
function about(events: FeedEvent[], accountId: string, externalId: string): FeedEvent[] {
  return events.filter((e) => {
    const account = (e.data as { account?: { id?: string; externalId?: string } }).account;
    return account !== undefined && (account.id === accountId || account.externalId === externalId);
  });
}

/** The `email` change (previous and new) an event carries, wherever in `data.changes` SPEC's "changed fields" are. */
function emailChangeOf(e: FeedEvent): Change | undefined {
  const changes = (e.data as { changes?: Record<string, Change> }).changes;
  return changes?.email;
}

const typesOf = (events: FeedEvent[]) => events.map((e) => e.type);
const multiset = (types: string[]) => [...types].sort();
const accountData = (e: FeedEvent) => (e.data as { account: Record<string, unknown> }).account;

/** SPEC: the last word about an account is the account as `dirsync users` shows it now. */
function expectMatchesView(e: FeedEvent, view: TenantUserView) {
  const account = accountData(e);
  expect(account, `last event (${e.type}) data.account vs dirsync users`).toBeDefined();
  expect.soft({ id: account.id, userName: account.userName, email: account.email, active: account.active, locked: account.locked }, `last event (${e.type}) data.account vs dirsync users`).toEqual({
    id: view.id,
    userName: view.userName,
    email: view.email,
    active: view.active,
    locked: view.locked,
  });
}

/**
 * Scenario 1's edit against a fresh org: one sync, then u1's email and status change in one IdP
 * edit, then one run. Returns everything about u1 after the first sync.
 */
async function suspendWithEmailChange(threshold: string, extra = 0) {
  const { okta, t, domain, extras } = await oktaOrg('suspend', threshold, extra);
  const first = await runNow(deps(), t.integrationId);
  expect(first.status).toBe('succeeded');
  const a1 = (await accountOf(t, '00u1'))!;
  expect(a1).toBeDefined();
  const cursor = await endOf(t.tenantId);
  const oldEmail = `u1@${domain}`;
  const newEmail = `changed1@${domain}`;
  okta.updateUser('00u1', { status: 'SUSPENDED', profile: { email: newEmail } });
  // Extras (when any) are suspended in the same edit, only to make the plan big enough to hold.
  for (const x of extras.slice(0, 5)) okta.updateUser(x, { status: 'SUSPENDED' });
  const run = await runNow(deps(), t.integrationId);
  return { okta, t, domain, a1, cursor, oldEmail, newEmail, run };
}

describe('oracle: an attribute change and a status change in one IdP edit', () => {
  it('1. suspend mode, not held: the email change is heard with both values, the last event is the account as it is, the deprovision says suspend', async () => {
    const { t, a1, cursor, oldEmail, newEmail, run } = await suspendWithEmailChange('100');
    expect(run.status).toBe('succeeded');

    const { events } = await eventsAfter(t.tenantId, cursor);
    const mine = about(events, a1.id, '00u1');
    expect(mine.length).toBeGreaterThan(0);

    // (a) user.updated carries changed fields with previous and new values.
    const emailChanges = mine.map(emailChangeOf).filter((c): c is Change => c !== undefined);
    expect.soft(emailChanges, `events about u1: ${JSON.stringify(mine.map((e) => ({ type: e.type, data: e.data })))}`).toContainEqual({ previous: oldEmail, new: newEmail });

    // SPEC on the resulting state: suspend keeps the account, inactive, with a lock, holding the IdP's email.
    const view = (await usersView(t)).find((u) => u.id === a1.id)!;
    expect(view).toBeDefined();
    expect.soft({ email: view.email, active: view.active, locked: view.locked }, 'u1 as dirsync users shows it').toEqual({ email: newEmail, active: false, locked: true });

    // (b) the last event about u1 carries the account as `dirsync users` shows it now.
    expectMatchesView(mine.at(-1)!, view);

    // (c) a user.deprovisioned event with mode suspend (and, per SPEC, a reason and the lock).
    const deprovisioned = mine.filter((e) => e.type === 'user.deprovisioned');
    expect(deprovisioned).toHaveLength(1);
    expect(deprovisioned[0]!.data).toMatchObject({ mode: 'suspend' });
    expect.soft(deprovisioned[0]!.data).toHaveProperty('reason');
    expect.soft(deprovisioned[0]!.data).toHaveProperty('lock');
    // Suspend removes no membership: u1 stays in Staff as the IdP lists it.
    expect(typesOf(mine)).not.toContain('group.user_removed');
  });

  it('2. the same edit with the deprovision held: the update applies and is heard now, the deprovision after approval; the same events as unheld', async () => {
    // SPEC's guard is "more than N% of the tenant's current count *and* more than 5": one
    // deprovision of 3 users is never held, so 5 extra users are suspended in the same edit
    // (6 of 9 users: over 10% and over 5). Only events about u1 are compared below.
    const { t, a1, cursor, oldEmail, newEmail, run } = await suspendWithEmailChange('10', 6);
    expect(run.status).toBe('held');

    // What applies now (SPEC "Safety": creates and updates apply at once).
    const heldView = (await usersView(t)).find((u) => u.id === a1.id)!;
    expect.soft({ email: heldView.email, active: heldView.active, locked: heldView.locked }, 'u1 as dirsync users shows it while the deprovision is held').toEqual({
      email: newEmail,
      active: true,
      locked: false,
    });
    const held = await eventsAfter(t.tenantId, cursor);
    const heldMine = about(held.events, a1.id, '00u1');
    expect.soft(heldMine.map(emailChangeOf).filter(Boolean), `events about u1 while held: ${JSON.stringify(heldMine.map((e) => ({ type: e.type, data: e.data })))}`).toContainEqual({
      previous: oldEmail,
      new: newEmail,
    });
    // What waits: nothing destructive was applied, so nothing destructive is heard.
    expect.soft(typesOf(heldMine)).not.toContain('user.deprovisioned');
    expect.soft(typesOf(heldMine)).not.toContain('group.user_removed');
    expect.soft(heldMine.length, 'events about u1 while held').toBeGreaterThan(0);
    if (heldMine.length > 0) expectMatchesView(heldMine.at(-1)!, heldView);

    // Approval applies the deprovision.
    const approval = await approveNow(deps(), run.id);
    expect(approval.status).toBe('succeeded');
    const view = (await usersView(t)).find((u) => u.id === a1.id)!;
    expect.soft({ email: view.email, active: view.active, locked: view.locked }, 'u1 after approval').toEqual({ email: newEmail, active: false, locked: true });
    const approved = await eventsAfter(t.tenantId, held.next);
    const approvedMine = about(approved.events, a1.id, '00u1');
    const deprovisioned = approvedMine.filter((e) => e.type === 'user.deprovisioned');
    expect.soft(deprovisioned, `events about u1 after approval: ${JSON.stringify(approvedMine.map((e) => ({ type: e.type, data: e.data })))}`).toHaveLength(1);
    expect.soft(deprovisioned[0]?.data).toMatchObject({ mode: 'suspend' });
    expect.soft(approvedMine.length, 'events about u1 after approval').toBeGreaterThan(0);
    if (approvedMine.length > 0) expectMatchesView(approvedMine.at(-1)!, view);
    // The email change was applied (and heard) once, before approval: it is not heard again.
    expect.soft(approvedMine.map(emailChangeOf).filter(Boolean)).toEqual([]);

    // An operator hears the same things whether or not the deprovision waited for approval.
    const unheld = await suspendWithEmailChange('100', 6);
    expect(unheld.run.status).toBe('succeeded');
    const unheldMine = about((await eventsAfter(unheld.t.tenantId, unheld.cursor)).events, unheld.a1.id, '00u1');
    expect(multiset(typesOf([...heldMine, ...approvedMine])), 'types about u1, held then approved, vs one unheld run').toEqual(multiset(typesOf(unheldMine)));
  });

  it('3. suspend mode: a suspended user reactivated with a new email is reprovisioned, the email change heard, the last event the account as it is', async () => {
    const { okta, t, domain } = await oktaOrg('suspend', '100');
    expect((await runNow(deps(), t.integrationId)).status).toBe('succeeded');
    const a1 = (await accountOf(t, '00u1'))!;
    okta.updateUser('00u1', { status: 'SUSPENDED' });
    expect((await runNow(deps(), t.integrationId)).status).toBe('succeeded');
    const suspended = (await usersView(t)).find((u) => u.id === a1.id)!;
    expect({ active: suspended.active, locked: suspended.locked }).toEqual({ active: false, locked: true });
    const cursor = await endOf(t.tenantId);

    const oldEmail = `u1@${domain}`;
    const newEmail = `back1@${domain}`;
    okta.updateUser('00u1', { status: 'ACTIVE', profile: { email: newEmail } });
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('succeeded');

    const mine = about((await eventsAfter(t.tenantId, cursor)).events, a1.id, '00u1');
    const dump = JSON.stringify(mine.map((e) => ({ type: e.type, data: e.data })));
    expect(typesOf(mine).filter((x) => x === 'user.reprovisioned'), `events about u1: ${dump}`).toHaveLength(1);
    expect.soft(mine.map(emailChangeOf).filter(Boolean), `events about u1: ${dump}`).toContainEqual({ previous: oldEmail, new: newEmail });

    // The same identity provisioned again: lock lifted, access restored, the IdP's email.
    const view = (await usersView(t)).find((u) => u.id === a1.id)!;
    expect.soft({ email: view.email, active: view.active, locked: view.locked }, 'u1 as dirsync users shows it').toEqual({ email: newEmail, active: true, locked: false });
    expectMatchesView(mine.at(-1)!, view);
  });

  it('4. remove-access mode: an email change and a deactivation in one run remove the account, keep the person, record a lock, and say remove-access', async () => {
    const { okta, t, domain } = await oktaOrg('remove-access', '100');
    expect((await runNow(deps(), t.integrationId)).status).toBe('succeeded');
    const a1 = (await accountOf(t, '00u1'))!;
    const cursor = await endOf(t.tenantId);

    okta.updateUser('00u1', { status: 'DEPROVISIONED', profile: { email: `gone1@${domain}` } });
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('succeeded');

    // The account is gone, from the table and from `dirsync users`.
    expect(await accountOf(t, '00u1')).toBeUndefined();
    expect((await usersView(t)).map((u) => u.userName)).not.toContain(`u1@${domain}`);
    // The person remains.
    const person = await db.selectFrom('users').select('id').where('id', '=', a1.user_id).executeTakeFirst();
    expect(person).toBeDefined();
    // A lock is recorded for that person in that tenant.
    const locks = await db.selectFrom('locks').selectAll().where('tenant_id', '=', t.tenantId).where('user_id', '=', a1.user_id).execute();
    expect(locks).toHaveLength(1);

    const mine = about((await eventsAfter(t.tenantId, cursor)).events, a1.id, '00u1');
    const deprovisioned = mine.filter((e) => e.type === 'user.deprovisioned');
    expect(deprovisioned, `events about u1: ${JSON.stringify(mine.map((e) => ({ type: e.type, data: e.data })))}`).toHaveLength(1);
    expect(deprovisioned[0]!.data).toMatchObject({ mode: 'remove-access' });
  });
});
