import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { applyPlan } from '../../src/apply/apply-plan.js';
import { emptyLocalState } from '../../src/core/model.js';
import { plan } from '../../src/core/plan.js';
import { type Db, createDb } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { EventRepository } from '../../src/db/event.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { TenantRepository } from '../../src/db/tenant.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { group, snapshot, user } from '../support/builders.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { waitFor } from '../support/wait.js';

/*
 * group_memberships has no foreign keys (migration 2026-12-02T0000-membership-references): the
 * statement that adds memberships locks the group and account it joins, and deleting a group or
 * an account deletes its memberships (a trigger). These pin that
 * nothing a foreign key guaranteed was lost: no membership outlives its group or account, by
 * whichever path either goes, and concurrent deletes meet the adding transaction as they would
 * a foreign key's lock.
 */

let db: Db;
/** A second pool: a concurrent transaction of its own. */
let other: Db;
let dropDb: () => Promise<void>;
let config: ReturnType<typeof testConfig>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  other = createDb(created.url);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => {
  await other.destroy();
  await dropDb();
});

const policy = { deprovisionMode: 'suspend' as const };

/** A tenant with one integration holding users 00u1..00u3 and groups 00gA, 00gB, every user in both. */
async function seeded() {
  const slug = uniqueSlug('refs');
  const tenant = (await new TenantRepository(db).create(slug, slug))!;
  const { integration } = await new IntegrationService(db, config).create({ tenant: slug, provider: 'okta', baseUrl: 'http://127.0.0.1:9', token: 'unused', verify: false });
  const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false);
  const scope = { tenantId: tenant.id, integrationId: integration.id, runId: run.id };
  const users = ['00u1', '00u2', '00u3'].map((id) => user(id, { userName: `${id}@example.com` }));
  const all = users.map((u) => u.externalId);
  await applyPlan(db, scope, plan(emptyLocalState(), snapshot(users, [group('00gA'), group('00gB')], { '00gA': all, '00gB': all }), policy), policy);
  return { tenant, integration, scope };
}

async function memberships(integrationId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('group_memberships as gm')
    .innerJoin('groups as g', 'g.id', 'gm.group_id')
    .innerJoin('accounts as a', 'a.id', 'gm.account_id')
    .select(['g.external_id as group', 'a.external_id as user'])
    .where('g.integration_id', '=', integrationId)
    .execute();
  return rows.map((r) => `${r.group}/${r.user}`).sort();
}

/** Memberships whose group or account is gone: never any. */
async function dangling(): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from group_memberships gm
    where not exists (select 1 from groups g where g.id = gm.group_id) or not exists (select 1 from accounts a where a.id = gm.account_id)`.execute(db);
  return Number(rows[0]!.n);
}

const idOf = async (table: 'groups' | 'accounts', integrationId: string, externalId: string) =>
  (await db.selectFrom(table).select('id').where('integration_id', '=', integrationId).where('external_id', '=', externalId).executeTakeFirstOrThrow()).id;

describe('deleting what a membership names deletes the membership', () => {
  it('a group, through the plan that deletes it', async () => {
    const { integration, scope } = await seeded();
    await new DirectoryRepository(db).deleteGroups(scope, ['00gA']);
    expect(await memberships(integration.id)).toEqual(['00gB/00u1', '00gB/00u2', '00gB/00u3']);
    expect(await dangling()).toBe(0);
  });

  it('an account, several in one statement', async () => {
    const { integration } = await seeded();
    await db.deleteFrom('accounts').where('integration_id', '=', integration.id).where('external_id', 'in', ['00u1', '00u3']).execute();
    expect(await memberships(integration.id)).toEqual(['00gA/00u2', '00gB/00u2']);
    expect(await dangling()).toBe(0);
  });

  it("a person, whose accounts go with it (a cascade's delete fires the accounts' trigger)", async () => {
    const { integration } = await seeded();
    const person = (await db.selectFrom('accounts').select('user_id').where('integration_id', '=', integration.id).where('external_id', '=', '00u2').executeTakeFirstOrThrow()).user_id;
    await db.deleteFrom('users').where('id', '=', person).execute();
    expect(await memberships(integration.id)).toEqual(['00gA/00u1', '00gA/00u3', '00gB/00u1', '00gB/00u3']);
    expect(await dangling()).toBe(0);
  });

  it('an integration, whose groups go with it while its accounts stay, unowned', async () => {
    const { integration } = await seeded();
    const before = await db.selectFrom('group_memberships').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    await db.deleteFrom('integrations').where('id', '=', integration.id).execute();
    const after = await db.selectFrom('group_memberships').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(Number(before.n) - Number(after.n)).toBe(6);
    expect(await dangling()).toBe(0);
  });

  it('an account removed in delete mode', async () => {
    const { integration, scope } = await seeded();
    await new DirectoryRepository(db).removeAccess(scope, [{ externalId: '00u1', reason: 'gone from the IdP' }], true);
    expect(await memberships(integration.id)).toEqual(['00gA/00u2', '00gA/00u3', '00gB/00u2', '00gB/00u3']);
    expect(await dangling()).toBe(0);
  });
});

describe('a delete concurrent with adding memberships', () => {
  /** Whether some backend waits on a row lock (the other transaction's). */
  const someoneWaits = async () => {
    const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`.execute(db);
    return Number(rows[0]!.n) > 0;
  };
  const adding = [{ groupExternalId: '00gC', userExternalId: '00u1', userName: '00u1@example.com', groupName: '00gC' }];
  /** A transaction that does `work` and stays open until released: `done` once the work is done. */
  const heldOpen = <T>(pool: Db, work: (trx: Db) => Promise<T>) => {
    let release!: () => void;
    let done!: (value: T) => void;
    const worked = new Promise<T>((resolve) => (done = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    const committed = pool.transaction().execute(async (trx) => {
      done(await work(trx));
      await released;
    });
    return { worked, release, committed };
  };

  it('waits for the adding transaction and then deletes what it added', async () => {
    const { integration, scope } = await seeded();
    await applyPlan(db, scope, plan(emptyLocalState(), snapshot([], [group('00gC')]), policy), policy);
    const add = heldOpen(db, (trx) => new DirectoryRepository(trx).addMemberships(scope, adding));
    expect(await add.worked).toBe(1);
    const deleting = new DirectoryRepository(other).deleteGroups(scope, ['00gC']);
    await waitFor('the delete to wait for the lock', someoneWaits);
    add.release();
    await add.committed;
    await deleting;
    expect((await memberships(integration.id)).filter((m) => m.startsWith('00gC/'))).toEqual([]);
    expect(await db.selectFrom('groups').select('id').where('integration_id', '=', integration.id).where('external_id', '=', '00gC').execute()).toEqual([]);
    expect(await dangling()).toBe(0);
  });

  it('committed first, leaves the deleted group out: nothing added, nothing recorded', async () => {
    const { scope } = await seeded();
    await applyPlan(db, scope, plan(emptyLocalState(), snapshot([], [group('00gC')]), policy), policy);
    const deleting = heldOpen(other, (trx) => new DirectoryRepository(trx).deleteGroups(scope, ['00gC']));
    await deleting.worked;
    // The delete holds the group's row: the add waits for it, then finds the group gone.
    const add = db.transaction().execute((trx) => new DirectoryRepository(trx).addMemberships(scope, adding));
    await waitFor('the add to wait for the lock', someoneWaits);
    deleting.release();
    await deleting.committed;
    expect(await add).toBe(0);
    expect(await db.selectFrom('run_changes').select('id').where('run_id', '=', scope.runId).where('kind', '=', 'membership.added').where('external_id', '=', '00gC/00u1').execute()).toEqual([]);
    expect(await dangling()).toBe(0);
  });

  it('of an account: waits for the adding transaction and then deletes what it added', async () => {
    const { integration, scope } = await seeded();
    await applyPlan(db, scope, plan(emptyLocalState(), snapshot([], [group('00gC')]), policy), policy);
    const add = heldOpen(db, (trx) => new DirectoryRepository(trx).addMemberships(scope, adding));
    expect(await add.worked).toBe(1);
    const account = await idOf('accounts', integration.id, '00u1');
    const deleting = other.deleteFrom('accounts').where('id', '=', account).execute();
    await waitFor('the delete to wait for the lock', someoneWaits);
    add.release();
    await add.committed;
    await deleting;
    expect((await memberships(integration.id)).filter((m) => m.endsWith('/00u1'))).toEqual([]);
    expect(await dangling()).toBe(0);
  });
});

describe("an integration's deletion concurrent with a run adding memberships", () => {
  /** Whether `n` backends wait on a lock (a row's or an advisory one). */
  const waiting = (n: number) => async () => {
    const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`.execute(db);
    return Number(rows[0]!.n) >= n;
  };

  it('waits for the applying transaction, then records group.user_removed for the membership it added', async () => {
    const { tenant, integration, scope } = await seeded();
    await applyPlan(db, scope, plan(emptyLocalState(), snapshot([], [group('00gC')]), policy), policy);
    // Holding the group's row stops the run's membership batch inside its transaction, after
    // it took whatever it takes first: the deletion then starts while that batch is in flight.
    let release!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const blocker = other.transaction().execute(async (trx) => {
      await trx.selectFrom('groups').select('id').where('integration_id', '=', integration.id).where('external_id', '=', '00gC').forUpdate().execute();
      held();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await holding;
    const local = await new DirectoryRepository(db).loadLocalState(integration.id, tenant.id);
    const members = snapshot([user('00u1', { userName: '00u1@example.com' })], [group('00gC')], { '00gC': ['00u1'] });
    const adding = applyPlan(db, scope, { ...plan(local, members, policy), usersDeprovisioned: [], groupsDeleted: [], membershipsRemoved: [] }, policy);
    await waitFor('the membership batch to wait for the group', waiting(1));
    const deleting = new IntegrationService(db, config).delete(integration.id);
    await waitFor('the deletion to wait too', waiting(2));
    release();
    await blocker;
    expect((await adding).counts.membershipsAdded).toBe(1);
    await deleting;

    const events = (await new EventRepository(db).after({ tenantId: tenant.id, limit: 1000 })).events;
    const removed = events
      .filter((e) => e.type === 'group.user_removed' && e.runId === null)
      .map((e) => `${(e.data.group as { externalId: string }).externalId}/${(e.data.account as { externalId: string }).externalId}`);
    // The six seeded memberships, and the one the run added while the deletion waited.
    expect(removed.sort()).toEqual(['00gA/00u1', '00gA/00u2', '00gA/00u3', '00gB/00u1', '00gB/00u2', '00gB/00u3', '00gC/00u1']);
    expect(await dangling()).toBe(0);
  });
});

describe('the migration', () => {
  it('down gives the foreign keys back, and up replaces them again, with the memberships kept', async () => {
    const { integration, scope } = await seeded();
    const keys = async () => {
      const { rows } = await sql<{ conname: string }>`select conname from pg_constraint where conrelid = 'group_memberships'::regclass and contype = 'f' order by conname`.execute(db);
      return rows.map((r) => r.conname);
    };
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateDown()).error).toBeUndefined();
    expect(await keys()).toEqual(['group_memberships_account_id_fkey', 'group_memberships_group_id_fkey']);
    expect(await memberships(integration.id)).toHaveLength(6);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(await keys()).toEqual([]);
    expect(await memberships(integration.id)).toHaveLength(6);
    await new DirectoryRepository(db).deleteGroups(scope, ['00gA']);
    expect(await memberships(integration.id)).toHaveLength(3);
  });
});
