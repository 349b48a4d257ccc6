import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { withoutIds } from '../support/builders.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { type AkBinding, type AkGroup, FakeAuthentik } from '../support/fake-authentik.js';
import { type TestIntegration, createAuthentikIntegration, runNow } from '../support/fixtures.js';

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
let ak: FakeAuthentik;
let t: TestIntegration;
let domain: string;
let eng: AkGroup;
let ops: AkGroup;
let opsBinding: AkBinding;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => {
  await ak?.stop();
  await dropDb();
});

beforeEach(async () => {
  await ak?.stop();
  ak = await new FakeAuthentik().start();
  ak.maxPageSize = 2; // several pages even for a small directory
  domain = `${uniqueSlug('ak')}.test`;
  const ann = ak.addUser(`ann.lee@${domain}`, { pk: 11 });
  const bob = ak.addUser(`bob.king@${domain}`, { pk: 12 });
  const cat = ak.addUser(`cat.ray@${domain}`, { pk: 13 });
  ak.addUser(`zed.out@${domain}`, { pk: 14 }); // not bound: out of scope
  ak.addUser(`svc-${domain}`, { pk: 15, type: 'service_account' });
  eng = ak.addGroup('Engineering');
  ops = ak.addGroup('Ops');
  ak.addMember(eng.pk, ann.pk);
  ak.addMember(eng.pk, bob.pk);
  ak.addMember(ops.pk, cat.pk);
  ak.addMember(ops.pk, 15);
  ak.addApp('crm');
  ak.bind('crm', { user: ann.pk });
  ak.bind('crm', { group: eng.pk });
  opsBinding = ak.bind('crm', { group: ops.pk });
  ak.bind('crm', { user: 14, enabled: false });
  t = await createAuthentikIntegration(db, config, ak, { app: 'crm' });
});

const deps = () => ({ db, config });
const users = () => new DirectoryRepository(db).listTenantUsers(t.tenantId).then(withoutIds);
const groups = () => new DirectoryRepository(db).listTenantGroups(t.tenantId).then(withoutIds);

describe('reconcile against a fake authentik and real Postgres', () => {
  it('syncs the bound users and groups, then plans nothing on a second run', async () => {
    const run = await runNow(deps(), t.integrationId);
    expect(run).toMatchObject({ status: 'succeeded', error: null });
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });
    expect(await users()).toEqual([
      { userName: `ann.lee@${domain}`, email: `ann.lee@${domain}`, givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee', active: true, locked: false, groups: ['Engineering'] },
      { userName: `bob.king@${domain}`, email: `bob.king@${domain}`, givenName: 'Bob', familyName: 'King', displayName: 'Bob King', active: true, locked: false, groups: ['Engineering'] },
      { userName: `cat.ray@${domain}`, email: `cat.ray@${domain}`, givenName: 'Cat', familyName: 'Ray', displayName: 'Cat Ray', active: true, locked: false, groups: ['Ops'] },
    ]);
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('follows deactivation, unbinding a group, removing a member and renaming a group', async () => {
    await runNow(deps(), t.integrationId);

    ak.updateUser(12, { is_active: false });
    let run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1 });
    expect((await users())[1]).toMatchObject({ active: false, locked: true });

    ak.updateUser(12, { is_active: true });
    expect((await runNow(deps(), t.integrationId)).counts).toEqual({ ...zeroCounts(), usersReprovisioned: 1 });

    ak.unbind(opsBinding);
    run = await runNow(deps(), t.integrationId);
    // The unbound group's one membership goes with it, counted and logged.
    expect(run.counts).toEqual({ ...zeroCounts(), groupsDeleted: 1, usersDeprovisioned: 1, membershipsRemoved: 1 });
    expect((await groups()).map((g) => g.name)).toEqual(['Engineering']);

    ak.removeMember(eng.pk, 11); // ann stays in scope through her user binding
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), membershipsRemoved: 1 });
    expect(await groups()).toEqual([{ name: 'Engineering', members: [`bob.king@${domain}`] }]);

    ak.groups.get(eng.pk)!.name = 'Platform';
    run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), groupsUpdated: 1 });
    expect((await groups()).map((g) => g.name)).toEqual(['Platform']);

    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('brings the members of a nested group with its bound parent', async () => {
    const backend = ak.addGroup('Backend', { parents: [eng.pk] });
    const dan = ak.addUser(`dan.wu@${domain}`, { pk: 16 });
    ak.addMember(backend.pk, dan.pk);
    const run = await runNow(deps(), t.integrationId);
    expect(run.counts).toMatchObject({ usersCreated: 4 });
    expect((await groups()).find((g) => g.name === 'Engineering')?.members).toContain(`dan.wu@${domain}`);
  });

  it('fails, deprovisioning nobody, when a user is deleted while the users are paged', async () => {
    expect((await runNow(deps(), t.integrationId)).status).toBe('succeeded');
    // Pages of 2: deleting the first user as page 2 is asked for shifts a user off page 2 unread.
    ak.maxPageSize = 2;
    const first = [...ak.users.values()].sort((a, b) => a.pk - b.pk)[0]!;
    let deleted = false;
    ak.fault = ({ path, query }) => {
      if (!deleted && path === '/api/v3/core/users/' && query.get('page') === '2') {
        ak.users.delete(first.pk);
        deleted = true;
      }
      return undefined;
    };
    const run = await runNow(deps(), t.integrationId);
    ak.fault = undefined;
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/changed while it was being read/);
    expect(run.counts?.usersDeprovisioned ?? 0).toBe(0);
    ak.maxPageSize = undefined;
    expect((await runNow(deps(), t.integrationId)).counts?.usersDeprovisioned).toBe(1);
  });

  it('fails a run whose reads fail and deprovisions nobody', async () => {
    await runNow(deps(), t.integrationId);
    ak.unbind(opsBinding);
    ak.fault = ({ path, query }) => (path === '/api/v3/core/users/' && query.get('page') === '2' ? { status: 503, body: { detail: 'down' } } : undefined);
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('failed');
    expect(run.error).toBe(
      'authentik GET /api/v3/core/users/?page=2 failed after 2 attempts: HTTP 503; authentik answered with a server error (503): try again later. Nothing was changed.',
    );
    expect((await users()).every((u) => u.active)).toBe(true);
  });

  it('without an application, syncs every user and group but service accounts', async () => {
    const all = await createAuthentikIntegration(db, config, ak);
    const run = await runNow(deps(), all.integrationId);
    expect(run.counts).toMatchObject({ usersCreated: 4, groupsCreated: 2 });
    const names = (await new DirectoryRepository(db).listTenantUsers(all.tenantId)).map((u) => u.userName);
    expect(names).not.toContain(`svc-${domain}`);
  });
});
