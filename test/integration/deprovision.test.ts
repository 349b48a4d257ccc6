import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, approveNow, createOktaIntegration, reconcileNow, runNow } from '../support/fixtures.js';

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

/** A fake Okta with an app assigned `n` users, named within a domain of this test's own. */
async function org(n: number, appId = '0oaApp') {
  const okta = await new FakeOkta().start();
  fakes.push(okta);
  const domain = `${uniqueSlug('org')}.test`;
  const app = okta.addApp(appId);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = okta.addUser(`user${String(i).padStart(3, '0')}@${domain}`, { id: `00u${String(i).padStart(4, '0')}` });
    app.users.add(u.id);
    ids.push(u.id);
  }
  return { okta, app, ids, domain };
}

async function tables(t: TestIntegration) {
  const access = await db
    .selectFrom('accounts')
    .select(['external_id', 'active', 'user_id'])
    .where('tenant_id', '=', t.tenantId)
    .orderBy('external_id')
    .execute();
  const locks = await db.selectFrom('locks').select(['external_id', 'user_id', 'reason']).where('tenant_id', '=', t.tenantId).execute();
  const memberships = await db
    .selectFrom('group_memberships as gm')
    .innerJoin('groups as g', 'g.id', 'gm.group_id')
    .innerJoin('accounts as a', 'a.id', 'gm.account_id')
    .select(['g.external_id as group', 'a.user_id'])
    .where('g.tenant_id', '=', t.tenantId)
    .execute();
  return { access, locks, memberships };
}

describe('deprovision modes', () => {
  async function withGroup(mode: string) {
    const o = await org(3);
    const g = o.okta.addGroup('Staff', { id: '00gStaff' });
    for (const id of o.ids) o.okta.addMember(g.id, id);
    o.app.groups.add(g.id);
    const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp', deprovision: mode });
    await runNow(deps(), t.integrationId);
    return { ...o, t };
  }

  it('suspend keeps access (inactive) and memberships, and locks the user', async () => {
    const { okta, t } = await withGroup('suspend');
    const before = await tables(t);
    okta.updateUser('00u0000', { status: 'SUSPENDED' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 0 });
    const after = await tables(t);
    expect(after.access.find((a) => a.external_id === '00u0000')).toMatchObject({ active: false });
    expect(after.memberships).toHaveLength(3);
    expect(after.locks).toEqual([{ external_id: '00u0000', user_id: before.access[0]!.user_id, reason: 'idp-status' }]);

    okta.updateUser('00u0000', { status: 'ACTIVE' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersReprovisioned: 1 });
    expect(await tables(t)).toEqual(before);
  });

  it('remove-access removes access and the tenant memberships, keeps the global user, and locks', async () => {
    const { okta, app, t } = await withGroup('remove-access');
    const before = await tables(t);
    const userId = before.access[0]!.user_id;
    okta.removeMember('00gStaff', '00u0000');
    app.users.delete('00u0000');
    const run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1, membershipsRemoved: 1 });
    const after = await tables(t);
    expect(after.access.map((a) => a.external_id)).toEqual(['00u0001', '00u0002']);
    expect(after.memberships.some((m) => m.user_id === userId)).toBe(false);
    expect(after.locks).toEqual([{ external_id: '00u0000', user_id: userId, reason: 'out-of-scope' }]);
    expect(await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()).toEqual({ id: userId });

    // Provisioned again: access restored as a reprovision, the lock lifted.
    app.users.add('00u0000');
    okta.addMember('00gStaff', '00u0000');
    expect((await runNow(deps(), t.integrationId)).counts).toEqual({ ...zeroCounts(), usersReprovisioned: 1, membershipsAdded: 1 });
    const restored = await tables(t);
    expect(restored.locks).toEqual([]);
    expect(restored.access.map((a) => [a.external_id, a.active, a.user_id])).toEqual(before.access.map((a) => [a.external_id, a.active, a.user_id]));
  });

  it('delete removes the global user once no tenant has access, and keeps the lock', async () => {
    const { okta, app, t, domain } = await withGroup('delete');
    const userId = (await tables(t)).access[0]!.user_id;
    okta.updateUser('00u0000', { status: 'DEPROVISIONED' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 1 });
    expect(await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()).toBeUndefined();
    expect((await tables(t)).locks).toEqual([{ external_id: '00u0000', user_id: userId, reason: 'idp-status' }]);

    okta.updateUser('00u0000', { status: 'ACTIVE' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersReprovisioned: 1 });
    expect((await tables(t)).locks).toEqual([]);
    const users = await new DirectoryRepository(db).listTenantUsers(t.tenantId);
    expect(users.find((u) => u.userName === `user000@${domain}`)).toMatchObject({ active: true, locked: false, groups: ['Staff'] });
    void app;
  });

  it('delete keeps a global user another tenant still grants access', async () => {
    const a = await org(2);
    const b = await org(0);
    // The same person is in both IdPs.
    const shared = b.okta.addUser(`user000@${a.domain}`, { id: '00uShared' });
    b.app.users.add(shared.id);
    const ta = await createOktaIntegration(db, config, a.okta, { appId: '0oaApp', deprovision: 'delete' });
    const tb = await createOktaIntegration(db, config, b.okta, { appId: '0oaApp' });
    await runNow(deps(), ta.integrationId);
    await runNow(deps(), tb.integrationId);
    const userId = (await tables(ta)).access[0]!.user_id;
    expect((await tables(tb)).access[0]!.user_id).toBe(userId);

    a.app.users.delete('00u0000');
    await runNow(deps(), ta.integrationId);
    expect(await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()).toEqual({ id: userId });
    expect((await tables(tb)).access[0]).toMatchObject({ user_id: userId, active: true });
  });

  it('a change of mode applies to later deprovisions only', async () => {
    const { okta, t } = await withGroup('suspend');
    okta.updateUser('00u0000', { status: 'SUSPENDED' });
    await runNow(deps(), t.integrationId);
    await new IntegrationService(db, config).update(t.integrationId, { deprovision: 'remove-access' });
    okta.updateUser('00u0001', { status: 'SUSPENDED' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 1 });
    const after = await tables(t);
    expect(after.access.map((a) => [a.external_id, a.active])).toEqual([
      ['00u0000', false],
      ['00u0002', true],
    ]);
    expect(after.locks.map((l) => l.external_id).sort()).toEqual(['00u0000', '00u0001']);
  });
});

describe('global users across tenants', () => {
  it('suspending a shared user in one IdP locks them in that tenant only', async () => {
    const a = await org(2);
    const b = await org(0);
    const shared = b.okta.addUser(`USER001@${a.domain}`, { id: '00uOther' }); // same person, other case
    b.app.users.add(shared.id);
    const ta = await createOktaIntegration(db, config, a.okta, { appId: '0oaApp' });
    const tb = await createOktaIntegration(db, config, b.okta, { appId: '0oaApp' });
    await runNow(deps(), ta.integrationId);
    await runNow(deps(), tb.integrationId);
    const globalRows = await db.selectFrom('users').select('id').where('user_name_key', '=', `user001@${a.domain}`).execute();
    expect(globalRows).toHaveLength(1);

    a.okta.updateUser('00u0001', { status: 'SUSPENDED' });
    await runNow(deps(), ta.integrationId);
    await runNow(deps(), tb.integrationId);
    const usersA = await new DirectoryRepository(db).listTenantUsers(ta.tenantId);
    const usersB = await new DirectoryRepository(db).listTenantUsers(tb.tenantId);
    expect(usersA.find((u) => u.userName === `user001@${a.domain}`)).toMatchObject({ active: false, locked: true });
    expect(usersB).toEqual([expect.objectContaining({ userName: `USER001@${a.domain}`, active: true, locked: false })]);
  });
});

/** A synced org of 20 whose app then lost 10 users: a run held for approval. */
async function heldUnassignment() {
  const o = await org(20);
  const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp' });
  await runNow(deps(), t.integrationId);
  for (const id of o.ids.slice(0, 10)) o.app.users.delete(id);
  const held = await runNow(deps(), t.integrationId);
  expect(held.status).toBe('held');
  return { o, t, held };
}

describe('safety threshold', () => {
  it('holds a mass unassignment while new hires get in, and applies it on approval', async () => {
    const { okta, app, ids, t } = await (async () => {
      const o = await org(100);
      return { ...o, t: await createOktaIntegration(db, config, o.okta, { appId: '0oaApp' }) };
    })();
    await runNow(deps(), t.integrationId);
    for (const id of ids.slice(0, 30)) app.users.delete(id);
    for (let i = 0; i < 3; i++) app.users.add(okta.addUser(`hire${i}@${uniqueSlug()}.test`).id);

    const held = await runNow(deps(), t.integrationId);
    expect(held.status).toBe('held');
    expect(held.counts).toEqual({ ...zeroCounts(), usersCreated: 3 });
    expect(held.heldReason).toMatch(/^30 removals wait for approval .*deprovisions 30 of the tenant's 100 active users, more than the 20% threshold\.$/);
    const users = () => new DirectoryRepository(db).listTenantUsers(t.tenantId);
    expect((await users()).filter((u) => u.active)).toHaveLength(103);

    // A later run, before anyone approves, must not apply the removals behind the admin's back.
    const later = await runNow(deps(), t.integrationId);
    expect(later.status).toBe('held');
    expect((await users()).filter((u) => u.active)).toHaveLength(103);

    const approval = await approveNow(deps(), held.id);
    expect(approval).toMatchObject({ status: 'succeeded', approvesRunId: held.id });
    expect(approval.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 30 });
    const all = await users();
    expect(all.filter((u) => !u.active).map((u) => u.userName).sort()).toEqual(all.filter((u) => u.locked).map((u) => u.userName).sort());
    expect(all.filter((u) => !u.active)).toHaveLength(30);
    const approvedRun = await new RunRepository(db).find(held.id);
    expect(approvedRun).toMatchObject({ status: 'succeeded', approvedByRunId: approval.id });
    expect(await new RunRepository(db).find(later.id)).toMatchObject({ status: 'succeeded', approvedByRunId: approval.id });
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('does not apply approved removals the IdP has since undone, and says so', async () => {
    const { o, t, held } = await heldUnassignment();

    for (const id of o.ids.slice(0, 4)) o.app.users.add(id); // the IdP admin fixed part of it
    const approval = await approveNow(deps(), held.id);
    expect(approval.counts).toMatchObject({ usersDeprovisioned: 6 });
    expect(approval.stats).toMatchObject({ approvedStale: 4 });
    const changes = await new RunRepository(db).listChanges(approval.id);
    const skipped = changes.filter((c) => c.state === 'skipped');
    expect(skipped.map((c) => c.externalId)).toEqual(o.ids.slice(0, 4));
    expect(skipped[0]!.detail).toEqual({ skipped: `approved in run ${held.id}, but the IdP no longer warrants it` });
    // Named as the held run named them, by login.
    expect(skipped.map((c) => c.subject)).toEqual(o.ids.slice(0, 4).map((id) => o.okta.users.get(id)!.profile.login));
    const active = (await new DirectoryRepository(db).listTenantUsers(t.tenantId)).filter((u) => u.active);
    expect(active).toHaveLength(14);

    // The approval's worker died after recording the stale removals, before settling the held
    // run: the next worker takes the approval over and records each of them once.
    await db.updateTable('runs').set({ status: 'held', approved_at: null, approved_by_run_id: null }).where('id', '=', held.id).execute();
    await db.updateTable('runs').set({ status: 'running', finished_at: null, heartbeat_at: sql<Date>`now() - interval '1 hour'` }).where('id', '=', approval.id).execute();
    const retried = await reconcileNow(deps(), approval.id);
    expect(retried).toMatchObject({ status: 'succeeded', approvesRunId: held.id, stats: expect.objectContaining({ approvedStale: 4 }) });
    const again = (await new RunRepository(db).listChanges(approval.id)).filter((c) => c.state === 'skipped');
    expect(again.map((c) => c.externalId)).toEqual(o.ids.slice(0, 4));
    expect(await new RunRepository(db).find(held.id)).toMatchObject({ status: 'succeeded', approvedByRunId: approval.id });
  });

  it("records each held removal once when an attempt is retried after its worker died having recorded them", async () => {
    const { o, t, held } = await heldUnassignment();
    const heldChanges = async () => (await new RunRepository(db).listChanges(held.id)).filter((c) => c.state === 'held').map((c) => c.externalId).sort();
    expect(await heldChanges()).toEqual(o.ids.slice(0, 10).sort());
    // The worker died after recording them, before the run ended: the next worker takes the run over.
    await db.updateTable('runs').set({ status: 'running', finished_at: null, held_reason: null, heartbeat_at: sql<Date>`now() - interval '1 hour'` }).where('id', '=', held.id).execute();
    const retried = await reconcileNow(deps(), held.id);
    expect(retried.status).toBe('held');
    expect(await db.selectFrom('runs').select('attempts').where('id', '=', held.id).executeTakeFirstOrThrow()).toEqual({ attempts: 2 });
    expect(await heldChanges()).toEqual(o.ids.slice(0, 10).sort());
    expect(retried.heldReason).toMatch(/^10 removals wait for approval/);
  });

  it('honours a per-integration threshold', async () => {
    const o = await org(20);
    const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp', threshold: '50' });
    await runNow(deps(), t.integrationId);
    for (const id of o.ids.slice(0, 8)) o.app.users.delete(id);
    expect(await runNow(deps(), t.integrationId)).toMatchObject({ status: 'succeeded', counts: expect.objectContaining({ usersDeprovisioned: 8 }) });
  });

  it('holds an empty directory even in a small tenant', async () => {
    const o = await org(3);
    const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp' });
    await runNow(deps(), t.integrationId);
    o.app.users.clear();
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('held');
    expect(run.heldReason).toMatch(/the IdP listed no users at all, while the tenant has 3 active users from it: held whatever the threshold/);
    expect((await new DirectoryRepository(db).listTenantUsers(t.tenantId)).every((u) => u.active)).toBe(true);
  });

  it('fails, changing nothing, when the scope vanished (app deleted) or the token lost its rights', async () => {
    const o = await org(3);
    const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp' });
    await runNow(deps(), t.integrationId);
    o.okta.apps.delete('0oaApp');
    const gone = await runNow(deps(), t.integrationId);
    expect(gone.status).toBe('failed');
    expect(gone.error).toMatch(/HTTP 404 E0000007.*Okta has no app with id 0oaApp: check --okta-app-id/);
    o.okta.fault = () => ({ status: 403, body: { errorCode: 'E0000006', errorSummary: 'You do not have permission to perform the requested action' } });
    const forbidden = await runNow(deps(), t.integrationId);
    expect(forbidden.error).toMatch(/HTTP 403 E0000006.*the API token's admin may not read this/);
    expect((await new DirectoryRepository(db).listTenantUsers(t.tenantId)).every((u) => u.active && !u.locked)).toBe(true);
  });

  it('a dry run of a mass removal records the plan and holds nothing', async () => {
    const o = await org(10);
    const t = await createOktaIntegration(db, config, o.okta, { appId: '0oaApp' });
    await runNow(deps(), t.integrationId);
    o.app.users.clear();
    const dry = await runNow(deps(), t.integrationId, { dryRun: true });
    expect(dry).toMatchObject({ status: 'succeeded', dryRun: true, counts: expect.objectContaining({ usersDeprovisioned: 10 }) });
    // A dry run is not a held plan: later runs are not blocked by it.
    expect(await new RunRepository(db).heldOpsByRun(t.integrationId)).toEqual(new Map());
  });
});
