import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withFingerprint } from '../../src/connectors/scim/scim.mapping.js';
import type { Db } from '../../src/db/database.js';
import { EventRepository } from '../../src/db/event.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { ScimRepository } from '../../src/db/scim.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { type DirsyncEvent, formatCursor, parseCursor } from '../../src/events/event.js';
import { EndpointService } from '../../src/events/endpoint.service.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { readUserBody } from '../../src/scim/scim.resource.js';
import { USER_SCHEMA } from '../../src/scim/scim.schemas.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, approveNow, createOktaIntegration, runNow } from '../support/fixtures.js';

/**
 * SPEC "Events": every applied change, from any source, is one event, written in the
 * transaction of the change; reading after a cursor never skips one, even when transactions
 * commit out of order. Expected payloads follow SPEC's Event paragraph.
 */

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

/** Every event of one tenant, paged through with `limit`. */
async function allEvents(tenantId: string, limit = 1000): Promise<DirsyncEvent[]> {
  const out: DirsyncEvent[] = [];
  let page = await feed().after({ tenantId, limit });
  while (page.events.length > 0) {
    out.push(...page.events);
    page = await feed().after({ tenantId, limit, after: page.next });
  }
  return out;
}

async function oktaOrg(mode = 'suspend', threshold?: string) {
  const okta = await new FakeOkta().start();
  fakes.push(okta);
  const domain = `${uniqueSlug('ev')}.test`;
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
  const t = await createOktaIntegration(db, config, okta, { appId: '0oaApp', deprovision: mode, threshold });
  return { okta, app, ids, domain, t };
}

const types = (events: DirsyncEvent[]) => events.map((e) => e.type);

describe('events from runs', () => {
  it('gives one event per applied change of a first sync, each with the account (id, person id) or group', async () => {
    const { t, domain } = await oktaOrg();
    const run = await runNow(deps(), t.integrationId);
    const events = await allEvents(t.tenantId);
    const counts = run.counts!;
    expect(events).toHaveLength(Object.values(counts).reduce((a, b) => a + b, 0));
    expect(types(events).filter((x) => x === 'user.created')).toHaveLength(3);
    // Only what SPEC's Event names: the subject, and per type its details.
    const keys = (type: string) => new Set(events.filter((e) => e.type === type).flatMap((e) => Object.keys(e.data)));
    expect(keys('user.created')).toEqual(new Set(['account']));
    expect(keys('group.created')).toEqual(new Set(['group']));
    expect(keys('group.user_added')).toEqual(new Set(['account', 'group']));
    expect(types(events).filter((x) => x === 'group.created')).toHaveLength(1);
    expect(types(events).filter((x) => x === 'group.user_added')).toHaveLength(3);
    const accounts = await db.selectFrom('accounts').select(['id', 'user_id', 'external_id']).where('tenant_id', '=', t.tenantId).execute();
    const created = events.find((e) => e.type === 'user.created' && (e.data.account as { userName: string }).userName === `u0@${domain}`)!;
    const a0 = accounts.find((a) => a.external_id === '00u0')!;
    expect(created).toMatchObject({ tenant: t.tenantSlug, integrationId: t.integrationId, runId: run.id });
    expect(created.data.account).toMatchObject({ id: a0.id, personId: a0.user_id, externalId: '00u0', userName: `u0@${domain}`, active: true, locked: false });
    const added = events.find((e) => e.type === 'group.user_added')!;
    expect(added.data).toMatchObject({ account: { externalId: expect.any(String) }, group: { name: 'Staff', externalId: '00gStaff', id: expect.any(String) } });
    // Events come in cursor order, and their ids are unique.
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it('user.updated carries each changed field with its previous and new value', async () => {
    const { okta, t, domain } = await oktaOrg();
    await runNow(deps(), t.integrationId);
    const { next } = await feed().after({ tenantId: t.tenantId, limit: 1000 });
    okta.updateUser('00u1', { profile: { firstName: 'Renamed', email: `renamed@${domain}` } });
    await runNow(deps(), t.integrationId);
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: next });
    expect(types(events)).toEqual(['user.updated']);
    expect(events[0]!.data.changes).toEqual({
      givenName: { previous: 'First1', new: 'Renamed' },
      email: { previous: `u1@${domain}`, new: `renamed@${domain}` },
      displayName: { previous: 'First1 Last', new: 'Renamed Last' },
      // The IdP's raw profile attributes that changed, as they were and are.
      attributes: { previous: { firstName: 'First1', email: `u1@${domain}` }, new: { firstName: 'Renamed', email: `renamed@${domain}` } },
    });
    expect(events[0]!.data.account).toMatchObject({ givenName: 'Renamed', email: `renamed@${domain}` });
  });

  it('user.updated for a change of raw attributes alone says which, as they were and are; a dry run plans it so', async () => {
    const { okta, t } = await oktaOrg();
    await runNow(deps(), t.integrationId);
    const { next } = await feed().after({ tenantId: t.tenantId, limit: 1000 });
    okta.updateUser('00u2', { profile: { costCenter: 'CC-7', address: { city: 'Oslo', zip: '0150' } } });
    await runNow(deps(), t.integrationId);
    okta.updateUser('00u2', { profile: { costCenter: null, address: { zip: '0150', city: 'Bergen' }, title: 'CTO' } });
    const dry = await runNow(deps(), t.integrationId, { dryRun: true });
    const run = await runNow(deps(), t.integrationId);
    expect(run.counts).toMatchObject({ usersUpdated: 1 });
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: next });
    expect(types(events)).toEqual(['user.updated', 'user.updated']);
    expect(events.map((e) => e.data.changes)).toEqual([
      { attributes: { previous: {}, new: { costCenter: 'CC-7', address: { city: 'Oslo', zip: '0150' } } } },
      { attributes: { previous: { costCenter: 'CC-7', address: { city: 'Oslo', zip: '0150' } }, new: { costCenter: null, address: { zip: '0150', city: 'Bergen' }, title: 'CTO' } } },
    ]);
    // The dry run's plan says the same of the update it did not apply.
    const planned = (await new RunRepository(db).listChanges(dry.id)).filter((c) => c.kind === 'user.updated');
    expect(planned.map((c) => (c.detail as { changes: unknown }).changes)).toEqual([events[1]!.data.changes]);
  });

  it('group.updated for a change of raw attributes alone says which, as they were and are', async () => {
    const { okta, t } = await oktaOrg();
    await runNow(deps(), t.integrationId);
    const { next } = await feed().after({ tenantId: t.tenantId, limit: 1000 });
    const staff = okta.groups.get('00gStaff')!;
    staff.profile = { ...staff.profile, groupScope: 'Global', objectSid: 'S-1-5-21-7' };
    staff.lastUpdated = new Date().toISOString();
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ groupsUpdated: 1 });
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: next });
    expect(types(events)).toEqual(['group.updated']);
    expect(events[0]!.data.changes).toEqual({ attributes: { previous: {}, new: { groupScope: 'Global', objectSid: 'S-1-5-21-7' } } });
    expect(events[0]!.data.group).toMatchObject({ externalId: '00gStaff', name: 'Staff' });
  });

  it("user.updated says when a rename moved the account to another person (changes.personId), and not otherwise", async () => {
    const { okta, t, domain } = await oktaOrg();
    await runNow(deps(), t.integrationId);
    const account = await db.selectFrom('accounts').select(['id', 'user_id']).where('tenant_id', '=', t.tenantId).where('external_id', '=', '00u1').executeTakeFirstOrThrow();
    const { next } = await feed().after({ tenantId: t.tenantId, limit: 1000 });
    okta.updateUser('00u1', { profile: { login: `moved@${domain}` } });
    await runNow(deps(), t.integrationId);
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: next });
    const updated = events.find((e) => e.type === 'user.updated')!;
    const now = await db.selectFrom('accounts').select(['id', 'user_id']).where('id', '=', account.id).executeTakeFirstOrThrow();
    const changes = updated.data.changes as Record<string, unknown>;
    expect(changes.userName).toEqual({ previous: `u1@${domain}`, new: `moved@${domain}` });
    // The person is the tenant's user of that userName: a new one for a name nobody had.
    expect(now.user_id).not.toBe(account.user_id);
    expect(changes.personId).toEqual({ previous: account.user_id, new: now.user_id });
    expect(updated.data.account).toMatchObject({ id: account.id, personId: now.user_id });
  });

  it('user.deprovisioned carries mode, reason and the lock; user.reprovisioned the lock it lifted', async () => {
    const { okta, t } = await oktaOrg('suspend');
    await runNow(deps(), t.integrationId);
    let cursor = (await feed().after({ tenantId: t.tenantId, limit: 1000 })).next;
    okta.updateUser('00u2', { status: 'SUSPENDED' });
    await runNow(deps(), t.integrationId);
    const off = await feed().after({ tenantId: t.tenantId, limit: 1000, after: cursor });
    expect(types(off.events)).toEqual(['user.deprovisioned']);
    const lock = await db.selectFrom('locks').select(['id', 'user_id']).where('tenant_id', '=', t.tenantId).executeTakeFirstOrThrow();
    expect(off.events[0]!.data).toMatchObject({ mode: 'suspend', reason: 'idp-status', account: { active: false, locked: true }, lock: { id: lock.id, personId: lock.user_id } });
    cursor = off.next;
    okta.updateUser('00u2', { status: 'ACTIVE' });
    await runNow(deps(), t.integrationId);
    const on = await feed().after({ tenantId: t.tenantId, limit: 1000, after: cursor });
    expect(types(on.events)).toEqual(['user.reprovisioned']);
    expect(on.events[0]!.data).toMatchObject({ account: { active: true, locked: false }, lock: { id: lock.id } });
  });

  it('in delete mode the deprovision is user.deleted, with the account as it was and the lock', async () => {
    const { okta, t } = await oktaOrg('delete');
    await runNow(deps(), t.integrationId);
    const account = await db.selectFrom('accounts').select(['id', 'user_id']).where('tenant_id', '=', t.tenantId).where('external_id', '=', '00u0').executeTakeFirstOrThrow();
    const cursor = (await feed().after({ tenantId: t.tenantId, limit: 1000 })).next;
    okta.updateUser('00u0', { status: 'DEPROVISIONED' });
    await runNow(deps(), t.integrationId);
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: cursor });
    const deleted = events.find((e) => e.type === 'user.deleted')!;
    expect(deleted, JSON.stringify(events)).toBeDefined();
    expect(deleted.data).toMatchObject({ mode: 'delete', reason: 'idp-status', account: { id: account.id, personId: account.user_id, active: false, locked: true }, lock: { personId: account.user_id } });
    expect(types(events).filter((x) => x === 'user.deprovisioned')).toEqual([]);
  });

  it('an event keeps the ids of its own moment: a user or group re-created later never lends them its ids', async () => {
    const { okta, t } = await oktaOrg('delete');
    await runNow(deps(), t.integrationId);
    const first = await allEvents(t.tenantId);
    const created = first.find((e) => e.type === 'user.created' && (e.data.account as { externalId: string }).externalId === '00u0')!;
    const added = first.find((e) => e.type === 'group.user_added' && (e.data.account as { externalId: string }).externalId === '00u0')!;
    const oldAccount = (created.data.account as { id: string }).id;
    expect(oldAccount).toEqual(expect.any(String));
    expect((added.data.account as { id: string }).id).toBe(oldAccount);
    okta.updateUser('00u0', { status: 'DEPROVISIONED' });
    await runNow(deps(), t.integrationId);
    okta.updateUser('00u0', { status: 'ACTIVE' });
    await runNow(deps(), t.integrationId);
    const now = await db.selectFrom('accounts').select('id').where('tenant_id', '=', t.tenantId).where('external_id', '=', '00u0').executeTakeFirstOrThrow();
    expect(now.id).not.toBe(oldAccount);
    const again = await allEvents(t.tenantId);
    expect((again.find((e) => e.id === created.id)!.data.account as { id: string }).id).toBe(oldAccount);
    expect((again.find((e) => e.id === added.id)!.data.account as { id: string }).id).toBe(oldAccount);
  });

  it('a dry run and a held plan give no event until applied; the approval gives them', async () => {
    const { app, t } = await oktaOrg('suspend', '10');
    await runNow(deps(), t.integrationId);
    const cursor = (await feed().after({ tenantId: t.tenantId, limit: 1000 })).next;
    for (let i = 0; i < 8; i++) {
      const u = fakes[0]!.addUser(`extra${i}@x.test`, { id: `00x${i}` });
      app.users.add(u.id);
    }
    await runNow(deps(), t.integrationId);
    const before = (await feed().after({ tenantId: t.tenantId, limit: 1000, after: cursor })).next;
    for (let i = 0; i < 8; i++) app.users.delete(`00x${i}`);
    expect((await runNow(deps(), t.integrationId, { dryRun: true })).counts).toMatchObject({ usersDeprovisioned: 8 });
    expect((await feed().after({ tenantId: t.tenantId, limit: 1000, after: before })).events).toEqual([]);
    const held = await runNow(deps(), t.integrationId);
    expect(held.status).toBe('held');
    expect((await feed().after({ tenantId: t.tenantId, limit: 1000, after: before })).events).toEqual([]);
    const approval = await approveNow(deps(), held.id);
    const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: before });
    expect(types(events)).toEqual(Array(8).fill('user.deprovisioned'));
    expect(events.every((e) => e.runId === approval.id)).toBe(true);
  });

  it('a SCIM push applied by its run is an event like any other', async () => {
    const slug = uniqueSlug();
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim' });
    await new ScimRepository(db).createUser(integration.id, withFingerprint(readUserBody({ schemas: [USER_SCHEMA], userName: 'pushed@s.test', active: true })));
    const run = await runNow(deps(), integration.id, { trigger: 'scim' });
    const events = await allEvents(tenant.id);
    expect(events.map((e) => [e.type, e.runId, (e.data.account as { userName: string }).userName])).toEqual([['user.created', run.id, 'pushed@s.test']]);
  });
});

describe('events when an integration is deleted', () => {
  it('keeps the events it made, and gives group.user_removed and group.deleted for what the deletion removes', async () => {
    const { t } = await oktaOrg('suspend');
    const okta = fakes[0]!;
    okta.updateUser('00u2', { status: 'SUSPENDED' });
    const first = await runNow(deps(), t.integrationId);
    const made = await allEvents(t.tenantId);
    const group = await db.selectFrom('groups').select('id').where('integration_id', '=', t.integrationId).executeTakeFirstOrThrow();
    await new IntegrationService(db, config).delete(t.integrationId);

    const after = await allEvents(t.tenantId);
    // Nothing the host app may not have received yet is lost with the runs.
    expect(after.slice(0, made.length)).toEqual(made);
    expect(made.every((e) => e.runId === first.id)).toBe(true);
    const removal = after.slice(made.length);
    // Members first, then their group, as a run applying the same removals records them.
    expect(types(removal)).toEqual(['group.user_removed', 'group.user_removed', 'group.deleted']);
    expect(removal.every((e) => e.runId === null && e.integrationId === t.integrationId)).toBe(true);
    expect(removal[0]!.data).toMatchObject({ with: 'group deleted', group: { id: group.id, externalId: '00gStaff', name: 'Staff' } });
    expect(removal[2]!.data).toMatchObject({ members: 2, group: { id: group.id, externalId: '00gStaff', name: 'Staff' } });
    expect(new Set(removal.slice(0, 2).map((e) => (e.data.account as { externalId: string }).externalId))).toEqual(new Set(['00u0', '00u1']));
    // The run history goes; its change log's non-event rows with it.
    expect(await db.selectFrom('runs').select('id').where('integration_id', '=', t.integrationId).execute()).toEqual([]);
    const orphans = await db.selectFrom('run_changes').select('id').where('run_id', '=', first.id).where('state', '<>', 'applied').execute();
    expect(orphans).toEqual([]);
  });

  it('with its accounts (the demo reset): user.deleted for each account as it was, then accounts, locks and the people only they had are gone', async () => {
    const { okta, t, domain } = await oktaOrg('suspend');
    await runNow(deps(), t.integrationId);
    // u2 suspended: deprovisioned and locked here, and never provisioned in the other tenant below.
    okta.updateUser('00u2', { status: 'SUSPENDED' });
    await runNow(deps(), t.integrationId);
    expect(await db.selectFrom('locks').select('user_id').where('tenant_id', '=', t.tenantId).execute()).toHaveLength(1);
    // The same Okta app synced into another tenant: people with accounts there too.
    const elsewhere = await createOktaIntegration(db, config, okta, { appId: '0oaApp' });
    await runNow(deps(), elsewhere.integrationId);
    const accounts = await db.selectFrom('accounts').select(['id', 'user_id', 'external_id']).where('integration_id', '=', t.integrationId).orderBy('external_id').execute();
    expect(accounts).toHaveLength(3);
    const made = await allEvents(t.tenantId);

    await new IntegrationService(db, config).delete(t.integrationId, { accounts: 'delete' });

    const removal = (await allEvents(t.tenantId)).slice(made.length);
    // In the order a run records the same removals: memberships, then accounts, then the group.
    expect(types(removal)).toEqual(['group.user_removed', 'group.user_removed', 'group.user_removed', 'user.deleted', 'user.deleted', 'user.deleted', 'group.deleted']);
    const deleted = removal.filter((e) => e.type === 'user.deleted');
    expect(deleted.map((e) => (e.data.account as { id: string }).id)).toEqual(accounts.map((a) => a.id));
    expect(deleted[0]!.data).toMatchObject({ mode: 'delete', account: { userName: `u0@${domain}`, externalId: '00u0' } });
    expect(await db.selectFrom('accounts').select('id').where('tenant_id', '=', t.tenantId).execute()).toEqual([]);
    expect(await db.selectFrom('locks').select('user_id').where('tenant_id', '=', t.tenantId).execute()).toEqual([]);
    const people = await db.selectFrom('users').select('id').where('id', 'in', accounts.map((a) => a.user_id)).execute();
    // u0's and u1's people also have an account in the other tenant and stay; suspended u2 was never
    // provisioned there, so its person, which only this integration's account linked, goes.
    expect(people.map((p) => p.id).sort()).toEqual(accounts.slice(0, 2).map((a) => a.user_id).sort());
    await new IntegrationService(db, config).delete(elsewhere.integrationId, { accounts: 'delete' });
    expect(await db.selectFrom('users').select('id').where('id', 'in', accounts.map((a) => a.user_id)).execute()).toEqual([]);
  });

  it("labels a membership removal that goes with a deprovision 'user deprovisioned'", async () => {
    for (const mode of ['remove-access', 'delete']) {
      const { okta, t } = await oktaOrg(mode);
      await runNow(deps(), t.integrationId);
      const cursor = (await feed().after({ tenantId: t.tenantId, limit: 1000 })).next;
      okta.updateUser('00u0', { status: 'DEPROVISIONED' });
      await runNow(deps(), t.integrationId);
      const { events } = await feed().after({ tenantId: t.tenantId, limit: 1000, after: cursor });
      const removed = events.filter((e) => e.type === 'group.user_removed');
      expect(removed, `${mode}: ${JSON.stringify(types(events))}`).toHaveLength(1);
      expect(removed[0]!.data.with, mode).toBe('user deprovisioned');
    }
  });
});

describe('the cursor', () => {
  /** A run row to hang raw change-log rows on. */
  async function bareRun(): Promise<{ t: TestIntegration; runId: string }> {
    const slug = uniqueSlug();
    const tenant = (await new TenantRepository(db).create(slug, slug))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'scim' });
    const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false);
    return { t: { tenantId: tenant.id, tenantSlug: slug, integrationId: integration.id }, runId: run.id };
  }
  const insert = (q: Db, r: { t: TestIntegration; runId: string }, subject: string) =>
    sql`insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
        values (${r.runId}::uuid, ${r.t.tenantId}::uuid, ${r.t.integrationId}::uuid, 'group.created', ${subject}, ${subject}, '{}'::jsonb, 'applied')`.execute(q);

  it('never skips an event whose transaction took an earlier position but committed after a later one was read', async () => {
    const r = await bareRun();
    const subjects = (events: DirsyncEvent[]) => events.map((e) => e.data).length;
    // T1 takes its position (txid and row id) first and stays open.
    let finish!: () => void;
    const open = new Promise<void>((resolve) => (finish = resolve));
    let began!: () => void;
    const started = new Promise<void>((resolve) => (began = resolve));
    const t1 = db.transaction().execute(async (trx) => {
      await insert(trx, r, 'early');
      began();
      await open;
    });
    await started;
    // T2 writes after it and commits first.
    await db.transaction().execute(async (trx) => insert(trx, r, 'late'));
    const first = await feed().after({ tenantId: r.t.tenantId, limit: 100 });
    // A reader ordering by id alone would hand out "late" and move past "early" for good.
    expect(subjects(first.events)).toBe(0);
    finish();
    await t1;
    const second = await feed().after({ tenantId: r.t.tenantId, limit: 100, after: first.next });
    const rows = await db.selectFrom('run_changes').select(['id', 'subject']).where('run_id', '=', r.runId).orderBy('id').execute();
    expect(second.events.map((e) => e.id)).toEqual(rows.map((x) => String(x.id)));
    expect(rows.map((x) => x.subject)).toEqual(['early', 'late']);
  });

  it('a reader restarted from any cursor sees exactly the rest, in the same order', async () => {
    const r = await bareRun();
    for (let i = 0; i < 3; i++) await db.transaction().execute(async (trx) => {
      for (let j = 0; j < 3; j++) await insert(trx, r, `s${i}.${j}`);
    });
    const all = await allEvents(r.t.tenantId);
    expect(all).toHaveLength(9);
    for (let k = 0; k < all.length; k++) {
      const rest = await feed().after({ tenantId: r.t.tenantId, limit: 1000, after: { txid: all[k]!.cursor.split('.')[0]!, id: all[k]!.cursor.split('.')[1]! } });
      expect(rest.events.map((e) => e.id)).toEqual(all.slice(k + 1).map((e) => e.id));
    }
    expect((await allEvents(r.t.tenantId, 2)).map((e) => e.id)).toEqual(all.map((e) => e.id));
  });

  it("moves a tenant's reader past other tenants' events, so it does not walk them again", async () => {
    const mine = await bareRun();
    const other = await bareRun();
    await insert(db, mine, 'm1');
    const start = (await feed().after({ tenantId: mine.t.tenantId, limit: 10 })).next;
    for (let i = 0; i < 5; i++) await insert(db, other, `o${i}`);
    const quiet = await feed().after({ tenantId: mine.t.tenantId, limit: 10, after: start });
    expect(quiet.events).toEqual([]);
    // At the end of the whole feed, not where it was.
    expect(quiet.next).toEqual(await feed().end());
    expect(quiet.next).not.toEqual(start);
    await insert(db, mine, 'm2');
    const later = await feed().after({ tenantId: mine.t.tenantId, limit: 10, after: quiet.next });
    expect(later.events.map((e) => e.data.account ?? e.id)).toHaveLength(1);
    // A full page stops at its last event: what lies beyond has not been looked at.
    await insert(db, mine, 'm3');
    await insert(db, other, 'o5');
    const full = await feed().after({ tenantId: mine.t.tenantId, limit: 1, after: quiet.next });
    expect(full.next).toEqual(parseCursor(full.events[0]!.cursor));
  });

  it('knows the feed end by transaction order, not text order (a txid of more digits is later)', async () => {
    const r = await bareRun();
    // Explicit txids, far below any running transaction: 9 and 10 sort the other way as text.
    for (const txid of ['9', '10']) {
      await sql`insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state, txid)
        values (${r.runId}::uuid, ${r.t.tenantId}::uuid, ${r.t.integrationId}::uuid, 'user.created', ${`x${txid}`}, ${`x${txid}`}, '{}'::jsonb, 'applied', ${txid}::xid8)`.execute(db);
    }
    const end = await feed().end();
    expect(BigInt(end.txid)).toBeGreaterThanOrEqual(10n);
    const ep = await new EndpointService(db, config).create({ url: 'https://receiver.test/hook' });
    expect(ep.cursor).toBe(formatCursor(end));
  });

  it('prunes events written before the retention whose run is gone (a deleted integration\'s), walking them in batches', async () => {
    const r = await bareRun();
    for (let i = 0; i < 5; i++) await insert(db, r, `old${i}`);
    await sql`update run_changes set created_at = now() - interval '31 days' where run_id = ${r.runId}::uuid`.execute(db);
    // As deleting the integration does: its runs go, their events stay in the feed.
    await sql`delete from runs where id = ${r.runId}::uuid`.execute(db);
    const kept = await bareRun();
    await insert(db, kept, 'of a run still kept');
    await sql`update run_changes set created_at = now() - interval '31 days' where run_id = ${kept.runId}::uuid`.execute(db);
    const fresh = await bareRun();
    await insert(db, fresh, 'fresh');
    await sql`delete from runs where id = ${fresh.runId}::uuid`.execute(db);
    expect(await feed().prune(30 * 86_400_000, 2)).toBe(5);
    expect(await allEvents(r.t.tenantId)).toEqual([]);
    expect(await allEvents(kept.t.tenantId)).toHaveLength(1);
    expect(await allEvents(fresh.t.tenantId)).toHaveLength(1);
  });
});
