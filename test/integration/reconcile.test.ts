import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RunRecorder } from '../../src/runs/run-recorder.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { withoutIds } from '../support/builders.js';
import { egressRefusalMessage } from '../../src/egress.js';

const APP = '0oaApp1';
let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let okta: FakeOkta;
let t: TestIntegration;
// Users are global across tenants: each test gets its own domain so tests do not adopt each other's users.
let domain: string;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => {
  await dropDb();
});

beforeEach(async () => {
  await okta?.stop();
  okta = await new FakeOkta().start();
  domain = `${uniqueSlug('acme')}.test`;
  const app = okta.addApp(APP);
  const ann = okta.addUser(`ann.lee@${domain}`, { id: '00uAnn' });
  const bob = okta.addUser(`bob.king@${domain}`, { id: '00uBob' });
  const cat = okta.addUser(`cat.ray@${domain}`, { id: '00uCat' });
  okta.addUser(`zed.out@${domain}`, { id: '00uZed' }); // not assigned: out of scope
  const eng = okta.addGroup('Engineering', { id: '00gEng' });
  const ops = okta.addGroup('Ops', { id: '00gOps' });
  okta.addGroup('Unassigned', { id: '00gNo' });
  okta.addMember(eng.id, ann.id);
  okta.addMember(eng.id, bob.id);
  okta.addMember(ops.id, cat.id);
  app.users.add(ann.id); // scope USER
  app.groups.add(eng.id); // bob arrives with scope GROUP
  app.groups.add(ops.id);
  t = await createOktaIntegration(db, config, okta, { appId: APP });
});

afterAll(async () => okta?.stop());

const deps = () => ({ db, config });
const users = () => new DirectoryRepository(db).listTenantUsers(t.tenantId).then(withoutIds);
const groups = () => new DirectoryRepository(db).listTenantGroups(t.tenantId).then(withoutIds);

describe('reconcile against a fake Okta and real Postgres', () => {
  it('creates the assigned users, the app groups and their memberships', async () => {
    const run = await runNow(deps(), t.integrationId);
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'manual', dryRun: false, error: null });
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });
    expect(await users()).toEqual([
      { userName: `ann.lee@${domain}`, email: `ann.lee@${domain}`, givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee', active: true, locked: false, groups: ['Engineering'] },
      { userName: `bob.king@${domain}`, email: `bob.king@${domain}`, givenName: 'Bob', familyName: 'King', displayName: 'Bob King', active: true, locked: false, groups: ['Engineering'] },
      { userName: `cat.ray@${domain}`, email: `cat.ray@${domain}`, givenName: 'Cat', familyName: 'Ray', displayName: 'Cat Ray', active: true, locked: false, groups: ['Ops'] },
    ]);
    expect(await groups()).toEqual([
      { name: 'Engineering', members: [`ann.lee@${domain}`, `bob.king@${domain}`] },
      { name: 'Ops', members: [`cat.ray@${domain}`] },
    ]);
    const changes = await new RunRepository(db).listChanges(run.id);
    expect(changes).toHaveLength(8);
    expect(changes.every((c) => c.state === 'applied')).toBe(true);
    expect(run.stats).toMatchObject({ idpUsers: 3, idpGroups: 2 });
  });

  it('does not read an http:// IdP in a process without DIRSYNC_ALLOW_HTTP, though the URL was stored by one with it', async () => {
    const strict = { db, config: { ...config, allowHttp: false } };
    const run = await runNow(strict, t.integrationId);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/plain http:\/\/.*DIRSYNC_ALLOW_HTTP=true/);
    const requests = okta.requests.length;
    await expect(new IntegrationService(db, strict.config).test(t.integrationId)).rejects.toThrow(/plain http:\/\//);
    expect(okta.requests.length).toBe(requests);
  });

  it('does not read an IdP on 127.0.0.1 in a process without DIRSYNC_ALLOW_PRIVATE_NETWORK: the run fails saying why, changing nothing', async () => {
    const strict = { db, config: { ...config, allowPrivateNetwork: false } };
    const requests = okta.requests.length;
    const run = await runNow(strict, t.integrationId);
    expect(run.status).toBe('failed');
    expect(run.error).toBe(`Okta GET /api/v1/apps/${APP}/users was not sent: ${egressRefusalMessage('127.0.0.1')}. Nothing was changed.`);
    const report = await new IntegrationService(db, strict.config).test(t.integrationId);
    expect(report.checks[0]).toMatchObject({ ok: false, problem: 'private-address', message: egressRefusalMessage('127.0.0.1') });
    expect(okta.requests.length).toBe(requests);
    expect(await users()).toEqual([]);
    // Allowed (the tests' configuration): the same integration syncs.
    expect((await runNow(deps(), t.integrationId)).status).toBe('succeeded');
  });

  it("counts an attempt's own changes once: what earlier attempts committed is read before it writes", async () => {
    const runs = new RunRepository(db);
    const { run } = await runs.trigger(t.integrationId, 'manual', false);
    const scope = { runId: run.id, tenantId: t.tenantId, integrationId: t.integrationId };
    await runs.recordApplied(scope, [{ kind: 'group.created', externalId: '00gEarlier', subject: 'Earlier', detail: null }], { ids: false });
    const recorder = await RunRecorder.start(runs, run.id, 1, 60_000, silentLog);
    try {
      // This attempt's first batch commits (on a busy pool, possibly before a lazy read would run).
      await runs.recordApplied(scope, [{ kind: 'group.created', externalId: '00gMine', subject: 'Mine', detail: null }], { ids: false });
      expect((await recorder.withEarlierAttempts({ ...zeroCounts(), groupsCreated: 1 })).groupsCreated).toBe(2);
    } finally {
      recorder.stop();
    }
  });

  it('plans nothing and writes no rows on a second run with nothing changed', async () => {
    await runNow(deps(), t.integrationId);
    const before = await stamp();
    const run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual(zeroCounts());
    expect(await new RunRepository(db).countChanges(run.id)).toBe(0);
    expect(await stamp()).toEqual(before);
  });

  it('follows the IdP through updates, suspension, reactivation, unassignment and group removal', async () => {
    await runNow(deps(), t.integrationId);

    okta.updateUser('00uAnn', { profile: { email: 'ann@new.example.test' } });
    let run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersUpdated: 1 });
    expect((await users())[0]).toMatchObject({ userName: `ann.lee@${domain}`, email: 'ann@new.example.test' });

    okta.updateUser('00uBob', { status: 'SUSPENDED' });
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1 });
    const bob = () => users().then((u) => u.find((x) => x.userName === `bob.king@${domain}`));
    expect(await bob()).toMatchObject({ active: false, locked: true, groups: ['Engineering'] });
    const lock = await db.selectFrom('locks').selectAll().where('tenant_id', '=', t.tenantId).executeTakeFirstOrThrow();
    expect(lock).toMatchObject({ integration_id: t.integrationId, reason: 'idp-status', run_id: run.id });

    okta.updateUser('00uBob', { status: 'ACTIVE' });
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersReprovisioned: 1 });
    expect(await bob()).toMatchObject({ active: true, locked: false });

    okta.apps.get(APP)!.users.delete('00uAnn');
    okta.removeMember('00gEng', '00uAnn');
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toMatchObject({ usersDeprovisioned: 1 });
    expect((await users())[0]).toMatchObject({ userName: `ann.lee@${domain}`, active: false, locked: true });

    okta.apps.get(APP)!.groups.delete('00gOps');
    run = await runNow(deps(), t.integrationId);
    // Cat came only through Ops: losing the group takes her out of scope too, and her
    // membership goes with the group (counted, and in the change log).
    expect(run.counts).toEqual({ ...zeroCounts(), groupsDeleted: 1, usersDeprovisioned: 1, membershipsRemoved: 1 });
    expect((await groups()).map((g) => g.name)).toEqual(['Engineering']);

    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual(zeroCounts());
  });

  it('re-reads only the groups whose membership changed, and asks for the groups of users entering the scope', async () => {
    // Zed is in Ops but suspended: in scope, yet not provisioned, so the tenant holds no membership for him.
    okta.addMember('00gOps', '00uZed');
    okta.updateUser('00uZed', { status: 'SUSPENDED' });
    await runNow(deps(), t.integrationId);
    const memberReads = () => okta.requests.filter((r) => /\/api\/v1\/groups\/[^/]+\/users/.test(r));

    okta.requests.length = 0;
    let run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual(zeroCounts());
    expect(memberReads()).toEqual([]);
    expect(run.stats).toMatchObject({ membersSkipped: 2, requests: 2 });

    // Bob leaves Engineering but stays assigned directly: only Engineering is read again.
    okta.apps.get(APP)!.users.add('00uBob');
    okta.removeMember('00gEng', '00uBob');
    okta.requests.length = 0;
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), membershipsRemoved: 1 });
    expect(memberReads()).toEqual([expect.stringContaining('/api/v1/groups/00gEng/users')]);

    // Zed is unsuspended: Ops's membership version has not moved, but a user entering the
    // tenant may belong to groups not re-read, so the run asks Okta for Zed's groups.
    okta.updateUser('00uZed', { status: 'ACTIVE' });
    okta.requests.length = 0;
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 1, membershipsAdded: 1 });
    expect(memberReads()).toEqual([]);
    expect(okta.requests.filter((r) => r.includes('/api/v1/users/00uZed/groups'))).toHaveLength(1);
    expect((await users()).find((u) => u.userName === `zed.out@${domain}`)).toMatchObject({ active: true, groups: ['Ops'] });
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('gives a record skipped as unreadable every membership and attribute the IdP gave it meanwhile, once it is readable', async () => {
    await runNow(deps(), t.integrationId);
    const bob = () => users().then((u) => u.find((x) => x.userName === `bob.king@${domain}`));
    expect(await bob()).toMatchObject({ groups: ['Engineering'] });

    // Bob's login becomes unreadable: he is skipped (kept as he is), and everything else applies.
    okta.updateUser('00uBob', { profile: { login: undefined as unknown as string } });
    let run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('succeeded');
    expect(run.warnings.map((w) => w.externalId)).toEqual(['00uBob']);

    // While he is skipped: a new group with him in it is assigned to the app, he joins Ops, his
    // email changes. He gains nothing yet (a record not taken gains nothing); Cat joins Sales.
    okta.addGroup('Sales', { id: '00gSales' });
    okta.addMember('00gSales', '00uBob');
    okta.addMember('00gSales', '00uCat');
    okta.apps.get(APP)!.groups.add('00gSales');
    okta.addMember('00gOps', '00uBob');
    okta.updateUser('00uBob', { profile: { email: 'bob@new.example.test' } });
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), groupsCreated: 1, membershipsAdded: 1 });
    expect(await bob()).toMatchObject({ email: `bob.king@${domain}`, groups: ['Engineering'] });

    // Readable again: neither group's membership version moves, yet Bob gains both, and his email.
    okta.updateUser('00uBob', { profile: { login: `bob.king@${domain}` } });
    run = await runNow(deps(), t.integrationId);
    expect(run.warnings).toEqual([]);
    expect(run.counts).toEqual({ ...zeroCounts(), usersUpdated: 1, membershipsAdded: 2 });
    expect(await bob()).toMatchObject({ email: 'bob@new.example.test', groups: ['Engineering', 'Ops', 'Sales'] });
    expect((await groups()).find((g) => g.name === 'Sales')).toMatchObject({ members: [`bob.king@${domain}`, `cat.ray@${domain}`] });

    // Converged: the versions are recorded now, and the next run reads no group's members.
    const memberReads = () => okta.requests.filter((r) => /\/api\/v1\/groups\/[^/]+\/users/.test(r));
    okta.requests.length = 0;
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
    expect(memberReads()).toEqual([]);
  });

  it('does not count groups whose members were not read as read: their periodic full read is not postponed', async () => {
    await runNow(deps(), t.integrationId);
    const readAt = () =>
      db.selectFrom('groups').select(['external_id', 'members_read_at']).where('integration_id', '=', t.integrationId).orderBy('external_id').execute();
    const before = await readAt();
    expect(before.every((g) => g.members_read_at !== null)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const run = await runNow(deps(), t.integrationId);
    expect(run.stats).toMatchObject({ membersSkipped: 2 });
    expect(await readAt()).toEqual(before);
  });

  it('gives a login to a new person once its owner was renamed, in the same run', async () => {
    await runNow(deps(), t.integrationId);
    okta.updateUser('00uAnn', { profile: { login: `ann.old@${domain}`, email: `ann.old@${domain}` } });
    const newAnn = okta.addUser(`ann.lee@${domain}`, { id: '00uAnn2' });
    okta.apps.get(APP)!.users.add(newAnn.id);
    const run = await runNow(deps(), t.integrationId);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 1, usersUpdated: 1 });
    const names = (await users()).map((u) => [u.userName, u.active]);
    expect(names).toEqual(expect.arrayContaining([[`ann.old@${domain}`, true], [`ann.lee@${domain}`, true]]));
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('gives a reused login a new account that inherits nothing, in a later run or the same one', async () => {
    await runNow(deps(), t.integrationId);
    // Ann leaves, suspended: her access row and her lock stay.
    okta.updateUser('00uAnn', { status: 'SUSPENDED' });
    expect((await runNow(deps(), t.integrationId)).counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1 });
    // Okta logins are unique: the old account is deleted, and a new Ann joins with its login (another case).
    const remove = (id: string) => {
      okta.users.delete(id);
      okta.apps.get(APP)!.users.delete(id);
      for (const members of okta.members.values()) members.delete(id);
    };
    remove('00uAnn');
    okta.apps.get(APP)!.users.add(okta.addUser(`ANN.LEE@${domain}`, { id: '00uAnn2' }).id);
    let run = await runNow(deps(), t.integrationId);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    const ann = async () => (await users()).filter((u) => u.userName.toLowerCase() === `ann.lee@${domain}`).map((u) => [u.userName, u.active, u.locked]).sort((a, b) => String(a).localeCompare(String(b)));
    // The old account stays deprovisioned and locked; the new identity has an account of its own.
    expect(await ann()).toEqual([[`ann.lee@${domain}`, false, true], [`ANN.LEE@${domain}`, true, false]].sort((a, b) => String(a).localeCompare(String(b))));
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());

    // And again, with the leaving and the joining in one run.
    remove('00uAnn2');
    okta.apps.get(APP)!.users.add(okta.addUser(`ann.lee@${domain}`, { id: '00uAnn3' }).id);
    run = await runNow(deps(), t.integrationId);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 1, usersDeprovisioned: 1 });
    expect(await ann()).toEqual([[`ann.lee@${domain}`, false, true], [`ANN.LEE@${domain}`, false, true], [`ann.lee@${domain}`, true, false]].sort((a, b) => String(a).localeCompare(String(b))));
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('adopts a user who already exists locally, whatever the case of their userName', async () => {
    const existing = await db.insertInto('users').values({ user_name: `ANN.LEE@${domain}`, updated_at: new Date() }).returning('id').executeTakeFirstOrThrow();
    await runNow(deps(), t.integrationId);
    const rows = await db.selectFrom('users').select(['id']).where(sql<string>`lower(user_name)`, '=', `ann.lee@${domain}`).execute();
    expect(rows).toEqual([existing]);
    const access = await db.selectFrom('accounts').select('user_id').where('external_id', '=', '00uAnn').where('tenant_id', '=', t.tenantId).executeTakeFirstOrThrow();
    expect(access.user_id).toBe(existing.id);
  });

  it('records a dry run as a plan and changes nothing', async () => {
    const run = await runNow(deps(), t.integrationId, { dryRun: true });
    expect(run).toMatchObject({ status: 'succeeded', dryRun: true });
    expect(run.counts).toMatchObject({ usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });
    const changes = await new RunRepository(db).listChanges(run.id);
    expect(changes).toHaveLength(8);
    expect(changes.every((c) => c.state === 'planned')).toBe(true);
    expect(await users()).toEqual([]);
  });

  it('fails a run whose IdP reads fail and deprovisions nobody', async () => {
    await runNow(deps(), t.integrationId);
    okta.fault = ({ path }) => (path.endsWith('/groups') ? { status: 503, body: { errorCode: 'E0000009', errorSummary: 'Service Unavailable' } } : undefined);
    // Also unassign a user: a partial read must not act on it.
    okta.apps.get(APP)!.users.delete('00uAnn');
    okta.removeMember('00gEng', '00uAnn');
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/Okta GET \/api\/v1\/apps\/0oaApp1\/groups failed after 2 attempts: HTTP 503.*Nothing was changed\./);
    expect(run.counts).toEqual(zeroCounts());
    expect((await users()).every((u) => u.active && !u.locked)).toBe(true);
  });

  it('converges after a crash between apply batches, with no duplicates', async () => {
    for (let i = 0; i < 7; i++) {
      const u = okta.addUser(`extra${i}@${domain}`);
      okta.apps.get(APP)!.users.add(u.id);
    }
    let batches = 0;
    const crashing = {
      ...deps(),
      batchSize: 2,
      afterBatch: () => {
        if (++batches === 3) throw new Error('worker killed');
      },
    };
    await expect(runNow(crashing, t.integrationId)).rejects.toThrow('worker killed');
    const partial = await users();
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(10);

    // The crashed run is left running; its heartbeat goes stale, and the next run converges.
    await db.updateTable('runs').set({ heartbeat_at: new Date(Date.now() - 3_600_000) }).where('status', '=', 'running').execute();
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('succeeded');
    expect(run.counts?.usersCreated).toBe(10 - partial.length);
    expect(await users()).toHaveLength(10);
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
    const crashed = await db.selectFrom('runs').select(['status', 'error']).where('integration_id', '=', t.integrationId).orderBy('queued_at').executeTakeFirstOrThrow();
    expect(crashed.status).toBe('failed');
    expect(crashed.error).toMatch(/stopped without finishing/);
  });
});

/** Row counts and the latest write time of every table a run touches, for this test's tenant. */
async function stamp() {
  const id = t.tenantId;
  const { rows } = await sql<{ t: string; n: string; last: Date | null }>`
    select 'users' as t, count(*) as n, max(u.updated_at) as last from users u join accounts ta on ta.user_id = u.id and ta.tenant_id = ${id}
    union all select 'accounts', count(*), max(updated_at) from accounts where tenant_id = ${id}
    union all select 'groups', count(*), max(updated_at) from groups where tenant_id = ${id}
    union all select 'group_memberships', count(*), max(gm.created_at) from group_memberships gm join groups g on g.id = gm.group_id and g.tenant_id = ${id}
    union all select 'locks', count(*), max(created_at) from locks where tenant_id = ${id}
  `.execute(db);
  return rows;
}
