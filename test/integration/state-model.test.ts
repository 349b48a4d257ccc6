import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository } from '../../src/db/run.repository.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { FakeAuthentik, akPage } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { approveNow, createAuthentikIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';

/**
 * The cases issue 13 was filed with, one test each (each failed before the state model of
 * SPEC "Identity: accounts and people", "Group", "Deprovision" and "Safety").
 */

let db: Db;
let config: Config;
let drop: () => Promise<void>;
const fakes: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.stop()));
});
afterAll(async () => drop());

const deps = () => ({ db, config });
const directory = () => new DirectoryRepository(db);

async function okta(): Promise<FakeOkta> {
  const fake = await new FakeOkta().start();
  fakes.push(fake);
  return fake;
}

async function authentik(): Promise<FakeAuthentik> {
  const fake = await new FakeAuthentik().start();
  fakes.push(fake);
  return fake;
}

describe('identity by IdP id', () => {
  it('two users in different app groups swap logins through a temporary login: each group keeps its member under the new login', async () => {
    const o = await okta();
    const d = `${uniqueSlug('swap')}.test`;
    const app = o.addApp('0oaSwap');
    const a = o.addUser(`a@${d}`, { id: '00uA' });
    const b = o.addUser(`b@${d}`, { id: '00uB' });
    o.addGroup('Alpha', { id: '00gAlpha' });
    o.addGroup('Beta', { id: '00gBeta' });
    o.addMember('00gAlpha', a.id);
    o.addMember('00gBeta', b.id);
    app.groups.add('00gAlpha');
    app.groups.add('00gBeta');
    const t = await createOktaIntegration(db, config, o, { appId: '0oaSwap' });
    await runNow(deps(), t.integrationId);

    o.updateUser(a.id, { profile: { login: `tmp@${d}` } });
    await runNow(deps(), t.integrationId);
    o.updateUser(b.id, { profile: { login: `a@${d}` } });
    await runNow(deps(), t.integrationId);
    o.updateUser(a.id, { profile: { login: `b@${d}` } });
    const last = await runNow(deps(), t.integrationId);
    expect(last.status).toBe('succeeded');

    const groups = await directory().listTenantGroups(t.tenantId);
    expect(groups.map((g) => [g.name, g.members])).toEqual([
      ['Alpha', [`b@${d}`]],
      ['Beta', [`a@${d}`]],
    ]);
    const users = await directory().listTenantUsers(t.tenantId);
    expect(users.map((u) => [u.userName, u.groups])).toEqual([
      [`a@${d}`, ['Beta']],
      [`b@${d}`, ['Alpha']],
    ]);
    expect((await runNow(deps(), t.integrationId)).counts).toEqual(zeroCounts());
  });

  it('a new Okta account given an offboarded employee\'s login inherits none of her groups (no privilege escalation)', async () => {
    const o = await okta();
    const d = `${uniqueSlug('jane')}.test`;
    const app = o.addApp('0oaJane');
    const jane = o.addUser(`jane@${d}`, { id: '00uJane' });
    const root = o.addUser(`root@${d}`, { id: '00uRoot' });
    o.addGroup('Admins', { id: '00gAdmins' });
    o.addGroup('Staff', { id: '00gStaff' });
    o.addMember('00gAdmins', jane.id);
    o.addMember('00gAdmins', root.id);
    app.groups.add('00gAdmins');
    app.groups.add('00gStaff');
    app.users.add(jane.id);
    const t = await createOktaIntegration(db, config, o, { appId: '0oaJane' });
    await runNow(deps(), t.integrationId);

    // Offboarding: out of Admins, deactivated, synced, then deleted in Okta.
    o.removeMember('00gAdmins', jane.id);
    o.updateUser(jane.id, { status: 'DEPROVISIONED' });
    expect((await runNow(deps(), t.integrationId)).counts).toMatchObject({ usersDeprovisioned: 1, membershipsRemoved: 1 });
    o.users.delete(jane.id);
    app.users.delete(jane.id);

    // A new hire gets the login jane@, assigned directly and in Staff only.
    const hire = o.addUser(`jane@${d}`, { id: '00uHire' });
    app.users.add(hire.id);
    o.addMember('00gStaff', hire.id);
    for (let i = 0; i < 2; i++) {
      await runNow(deps(), t.integrationId);
      const janes = (await directory().listTenantUsers(t.tenantId)).filter((u) => u.userName === `jane@${d}`);
      expect(janes.map((u) => [u.active, u.locked, u.groups]).sort()).toEqual([
        [false, true, []], // the old account: deprovisioned and locked
        [true, false, ['Staff']], // the new hire: Staff only
      ]);
      const admins = (await directory().listTenantGroups(t.tenantId)).find((g) => g.name === 'Admins');
      expect(admins?.members).toEqual([`root@${d}`]);
    }
  });

  it('one tenant renaming a login changes nothing another tenant sees', async () => {
    const oa = await okta();
    const ob = await okta();
    const d = `${uniqueSlug('two')}.test`;
    for (const o of [oa, ob]) {
      const app = o.addApp('0oaTwo');
      app.users.add(o.addUser(`pat@${d}`, { id: '00uPat', profile: { firstName: o === oa ? 'Pat' : 'Patricia' } }).id);
      o.addGroup('Team', { id: '00gTeam' });
      o.addMember('00gTeam', '00uPat');
      app.groups.add('00gTeam');
    }
    const ta = await createOktaIntegration(db, config, oa, { appId: '0oaTwo' });
    const tb = await createOktaIntegration(db, config, ob, { appId: '0oaTwo' });
    await runNow(deps(), ta.integrationId);
    await runNow(deps(), tb.integrationId);
    const before = await directory().listTenantUsers(tb.tenantId);
    oa.updateUser('00uPat', { profile: { login: `PAT.NEW@${d}`, firstName: 'P.' } });
    await runNow(deps(), ta.integrationId);
    expect((await directory().listTenantUsers(ta.tenantId)).map((u) => [u.userName, u.givenName, u.groups])).toEqual([[`PAT.NEW@${d}`, 'P.', ['Team']]]);
    expect(await directory().listTenantUsers(tb.tenantId)).toEqual(before);
    expect((await directory().listTenantGroups(tb.tenantId)).map((g) => g.members)).toEqual([[`pat@${d}`]]);
  });
});

describe('per-record isolation', () => {
  it('a NUL character in one user\'s profile attribute skips that user with a warning, and a user suspended meanwhile is still deprovisioned', async () => {
    const o = await okta();
    const d = `${uniqueSlug('nul')}.test`;
    const app = o.addApp('0oaNul');
    for (const name of ['ann', 'bob', 'cat']) app.users.add(o.addUser(`${name}@${d}`, { id: `00u${name}` }).id);
    const t = await createOktaIntegration(db, config, o, { appId: '0oaNul' });
    await runNow(deps(), t.integrationId);

    o.updateUser('00uann', { profile: { nickName: 'A\u0000nn' } }); // self-editable in Okta
    o.updateUser('00ubob', { status: 'SUSPENDED' });
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('succeeded');
    expect(run.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1 });
    expect(run.warnings).toEqual([
      { externalId: '00uann', subject: `ann@${d}`, reason: 'IdP user 00uann has a NUL character in attributes.nickName, which Postgres cannot store: remove it in the IdP' },
    ]);
    const users = await directory().listTenantUsers(t.tenantId);
    expect(users.map((u) => [u.userName, u.active, u.locked])).toEqual([
      [`ann@${d}`, true, false], // skipped: kept as it was, never deprovisioned for being unreadable
      [`bob@${d}`, false, true],
      [`cat@${d}`, true, false],
    ]);

    // Bad data never keeps anyone in: the bad record's own readable status still deprovisions.
    o.updateUser('00uann', { status: 'SUSPENDED' });
    const second = await runNow(deps(), t.integrationId);
    expect(second.counts).toMatchObject({ usersDeprovisioned: 1 });
    expect(second.warnings).toHaveLength(1);
    expect((await directory().listTenantUsers(t.tenantId))[0]).toMatchObject({ userName: `ann@${d}`, active: false, locked: true });
  });

  it('more than max(10, 1% of the scope) bad records fail the run as suspicious, changing nothing', async () => {
    const o = await okta();
    const d = `${uniqueSlug('many')}.test`;
    const app = o.addApp('0oaMany');
    for (let i = 0; i < 20; i++) app.users.add(o.addUser(`u${i}@${d}`, { id: `00u${i}` }).id);
    const t = await createOktaIntegration(db, config, o, { appId: '0oaMany' });
    await runNow(deps(), t.integrationId);
    for (let i = 0; i < 11; i++) o.updateUser(`00u${i}`, { profile: { note: 'x\u0000' } });
    o.updateUser('00u19', { status: 'SUSPENDED' });
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/^11 of 20 IdP records cannot be taken as they are, more than the 10 a run tolerates.*Nothing was changed\.$/);
    expect((await directory().listTenantUsers(t.tenantId)).every((u) => u.active)).toBe(true);
  });

  it("a login another enabled integration of the tenant holds is a per-record conflict, not an outage; a disabled one's account is adopted", async () => {
    const oa = await okta();
    const ak = await authentik();
    const d = `${uniqueSlug('mig')}.test`;
    const app = oa.addApp('0oaMig');
    app.users.add(oa.addUser(`kim@${d}`, { id: '00uKim' }).id);
    app.users.add(oa.addUser(`lee@${d}`, { id: '00uLee' }).id);
    const slug = uniqueSlug('mig');
    const okt = await createOktaIntegration(db, config, oa, { appId: '0oaMig', tenantSlug: slug });
    await runNow(deps(), okt.integrationId);
    const kimBefore = (await directory().listTenantUsers(okt.tenantId)).find((u) => u.userName === `kim@${d}`)!;

    ak.addUser(`KIM@${d}`, { pk: 31 });
    ak.addUser(`new@${d}`, { pk: 32 });
    const akt = await createAuthentikIntegration(db, config, ak, { tenantSlug: slug });
    const conflicted = await runNow(deps(), akt.integrationId);
    expect(conflicted.status).toBe('succeeded');
    expect(conflicted.counts).toMatchObject({ usersCreated: 1 });
    expect(conflicted.warnings).toEqual([expect.objectContaining({ externalId: '31', reason: expect.stringMatching(/belongs to an account of integration .*another enabled integration/) })]);

    // The IdP migration: the Okta integration is disabled, and authentik adopts Kim's account.
    await new IntegrationService(db, config).setEnabled(okt.integrationId, false);
    const adopted = await runNow(deps(), akt.integrationId);
    expect(adopted.status).toBe('succeeded');
    expect(adopted.warnings).toEqual([]);
    const users = await directory().listTenantUsers(okt.tenantId);
    const kims = users.filter((u) => u.userName.toLowerCase() === `kim@${d}`);
    expect(kims).toEqual([expect.objectContaining({ id: kimBefore.id, userName: `KIM@${d}`, active: true })]);
    const log = await new RunRepository(db).listChanges(adopted.id);
    expect(log.find((c) => c.externalId === '31')).toMatchObject({ kind: 'user.created', detail: expect.objectContaining({ adopted: kimBefore.id }) });
  });
});

describe('per-record isolation while applying', () => {
  it('a record Postgres refuses is retried alone and skipped with a warning; the rest of its batch applies; a refused attribute refresh still deprovisions', async () => {
    const o = await okta();
    const d = `${uniqueSlug('refuse')}.test`;
    const app = o.addApp('0oaRefuse');
    for (const name of ['amy', 'bea', 'cal', 'dot']) app.users.add(o.addUser(`${name}@${d}`, { id: `00u${name}` }).id);
    const t = await createOktaIntegration(db, config, o, { appId: '0oaRefuse' });
    await runNow(deps(), t.integrationId);

    // A constraint only some records break (as a host app's own check might): Postgres refuses
    // those rows with check_violation, a per-record error, never an outage.
    await sql`
      create or replace function refuse_marked() returns trigger language plpgsql as $$
      begin
        if new.attributes ? 'refuse' then raise exception 'refused by a check' using errcode = '23514'; end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger refuse_marked before insert or update on accounts for each row execute function refuse_marked()`.execute(db);
    try {
      app.users.add(o.addUser(`eve@${d}`, { id: '00ueve', profile: { refuse: true } }).id);
      app.users.add(o.addUser(`fay@${d}`, { id: '00ufay' }).id);
      o.updateUser('00uamy', { profile: { title: 'Lead' } });
      o.updateUser('00ubea', { profile: { title: 'Ops', refuse: true } });
      o.updateUser('00ucal', { status: 'SUSPENDED', profile: { refuse: true } });
      const run = await runNow({ ...deps(), batchSize: 10 }, t.integrationId);
      expect(run.status).toBe('succeeded');
      expect(run.counts).toMatchObject({ usersCreated: 1, usersUpdated: 1, usersDeprovisioned: 1 });
      expect(run.warnings.map((w) => [w.externalId, w.reason.replace(/\(.*\)$/, '')])).toEqual([
        ['00ubea', 'user.updated of bea@' + d + ': Postgres refused it '],
        ['00ueve', 'user.created of eve@' + d + ': Postgres refused it '],
      ]);
      const users = await directory().listTenantUsers(t.tenantId);
      expect(users.map((u) => [u.userName, u.active])).toEqual([
        [`amy@${d}`, true],
        [`bea@${d}`, true],
        [`cal@${d}`, false], // deprovisioned although its attribute refresh was refused
        [`dot@${d}`, true],
        [`fay@${d}`, true],
      ]);
      const log = await new RunRepository(db).listChanges(run.id);
      expect(log.map((c) => [c.kind, c.externalId]).sort()).toEqual([
        ['user.created', '00ufay'],
        ['user.deprovisioned', '00ucal'],
        ['user.updated', '00uamy'],
      ]);
    } finally {
      await sql`drop trigger refuse_marked on accounts`.execute(db);
    }
  });
});

describe('every destructive kind is guarded', () => {
  it("authentik's groups listing answering an empty list while the bindings name 3 groups is held; the groups are not recreated when it recovers", async () => {
    const ak = await authentik();
    const d = `${uniqueSlug('akempty')}.test`;
    const groups = ['G1', 'G2', 'G3'].map((name) => ak.addGroup(name));
    ak.addApp('wiki');
    for (const [i, g] of groups.entries()) {
      ak.addUser(`u${i}@${d}`, { pk: 40 + i, groups: [g.pk] });
      ak.bind('wiki', { group: g.pk });
    }
    const t = await createAuthentikIntegration(db, config, ak, { app: 'wiki' });
    await runNow(deps(), t.integrationId);
    const before = await directory().listTenantGroups(t.tenantId);
    expect(before).toHaveLength(3);

    // A token without view rights on groups: 200 with an empty list.
    ak.fault = ({ path }) => (path === '/api/v3/core/groups/' ? { status: 200, body: akPage([], 1, 100) } : undefined);
    const held = await runNow(deps(), t.integrationId);
    expect(held.status).toBe('held');
    expect(held.counts).toMatchObject({ groupsDeleted: 0, membershipsRemoved: 0 });
    expect(held.heldReason).toMatch(/policy bindings name 3 group\(s\) that the groups listing lacks/);
    expect(await directory().listTenantGroups(t.tenantId)).toEqual(before);

    ak.fault = undefined;
    const recovered = await runNow(deps(), t.integrationId);
    expect(recovered.counts).toEqual(zeroCounts());
    expect(await directory().listTenantGroups(t.tenantId)).toEqual(before); // same ids: not recreated
  });

  it('unassigning both groups of an Okta app (20 memberships) while the users stay assigned directly is held, each membership in the plan', async () => {
    const o = await okta();
    const d = `${uniqueSlug('grp')}.test`;
    const app = o.addApp('0oaGrp');
    o.addGroup('Red', { id: '00gRed' });
    o.addGroup('Blue', { id: '00gBlue' });
    for (let i = 0; i < 20; i++) {
      const u = o.addUser(`u${String(i).padStart(2, '0')}@${d}`, { id: `00u${String(i).padStart(2, '0')}` });
      app.users.add(u.id);
      o.addMember(i < 10 ? '00gRed' : '00gBlue', u.id);
    }
    app.groups.add('00gRed');
    app.groups.add('00gBlue');
    const t = await createOktaIntegration(db, config, o, { appId: '0oaGrp' });
    await runNow(deps(), t.integrationId);

    app.groups.clear();
    const held = await runNow(deps(), t.integrationId);
    expect(held.status).toBe('held');
    expect(held.counts).toEqual(zeroCounts());
    const planned = await new RunRepository(db).listChanges(held.id);
    expect(planned.filter((c) => c.kind === 'group.deleted' && c.state === 'held')).toHaveLength(2);
    expect(planned.filter((c) => c.kind === 'membership.removed' && c.state === 'held')).toHaveLength(20);
    expect((await directory().listTenantGroups(t.tenantId)).map((g) => g.members.length)).toEqual([10, 10]);

    const approval = await approveNow(deps(), held.id);
    expect(approval.status).toBe('succeeded');
    expect(approval.counts).toEqual({ ...zeroCounts(), groupsDeleted: 2, membershipsRemoved: 20 });
    const applied = await new RunRepository(db).listChanges(approval.id);
    expect(applied.filter((c) => c.kind === 'membership.removed' && c.state === 'applied')).toHaveLength(20);
    expect(await directory().listTenantGroups(t.tenantId)).toEqual([]);
    expect((await directory().listTenantUsers(t.tenantId)).every((u) => u.active)).toBe(true);
  });

  it('in suspend mode, an authentik user removed from the bound group is deprovisioned and the membership removed', async () => {
    const ak = await authentik();
    const d = `${uniqueSlug('aksus')}.test`;
    const team = ak.addGroup('Team');
    const other = ak.addGroup('Other');
    ak.addUser(`amy@${d}`, { pk: 51, groups: [team.pk, other.pk] });
    ak.addUser(`ben@${d}`, { pk: 52, groups: [team.pk] });
    ak.addApp('crm');
    ak.bind('crm', { group: team.pk });
    const t = await createAuthentikIntegration(db, config, ak, { app: 'crm', deprovision: 'suspend' });
    await runNow(deps(), t.integrationId);
    ak.removeMember(team.pk, 51);
    const run = await runNow(deps(), t.integrationId);
    expect(run.counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1, membershipsRemoved: 1 });
    const groups = await directory().listTenantGroups(t.tenantId);
    expect(groups.map((g) => [g.name, g.members])).toEqual([['Team', [`ben@${d}`]]]);
    expect((await directory().listTenantUsers(t.tenantId)).map((u) => [u.userName, u.active, u.locked, u.groups])).toEqual([
      [`amy@${d}`, false, true, []],
      [`ben@${d}`, true, false, ['Team']],
    ]);
  });

  it('an empty users listing is held whatever the threshold, even in a tiny tenant', async () => {
    const o = await okta();
    const app = o.addApp('0oaTiny');
    app.users.add(o.addUser(`solo@${uniqueSlug('tiny')}.test`).id);
    const t = await createOktaIntegration(db, config, o, { appId: '0oaTiny', threshold: '100' });
    await runNow(deps(), t.integrationId);
    app.users.clear();
    const run = await runNow(deps(), t.integrationId);
    expect(run.status).toBe('held');
    expect(run.heldReason).toMatch(/listed no users at all/);
    expect((await directory().listTenantUsers(t.tenantId))[0]).toMatchObject({ active: true });
  });
});
