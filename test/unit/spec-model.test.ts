import { describe, expect, it } from 'vitest';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import { SpecModel, authentikProjection, oktaProjection } from '../support/spec-model.js';

// Every expected value below is written by hand from SPEC.md and the README's mappings.
// The fakes are used only as in-memory directories (never started).

const u = (userName: string, over: Partial<Record<string, unknown>> = {}) => ({
  userName,
  email: userName,
  givenName: 'Given',
  familyName: 'Family',
  displayName: 'Given Family',
  active: true,
  locked: false,
  groups: [] as string[],
  ...over,
});

describe('oktaProjection', () => {
  it('takes the app scope: direct users, members of assigned groups, and the assigned groups only', () => {
    const okta = new FakeOkta();
    const app = okta.addApp('app');
    okta.addUser('ann.lee@x.test', { id: 'u1' });
    okta.addUser('bob.king@x.test', { id: 'u2', status: 'SUSPENDED' });
    okta.addUser('cat.ray@x.test', { id: 'u3' });
    okta.addUser('dee@x.test', { id: 'u4', status: 'LOCKED_OUT', profile: { displayName: 'Dee Dee' } });
    okta.addUser('eve.out@x.test', { id: 'u5', status: 'DEPROVISIONED' });
    okta.addGroup('Staff', { id: 'g1' });
    okta.addGroup('Hidden', { id: 'g2' });
    okta.addMember('g1', 'u1');
    okta.addMember('g1', 'u2');
    okta.addMember('g2', 'u3');
    app.users.add('u1');
    app.users.add('u4');
    app.users.add('u5');
    app.groups.add('g1');

    const p = oktaProjection(okta, 'app');
    expect([...p.users.keys()].sort()).toEqual(['u1', 'u2', 'u4', 'u5']);
    expect(p.users.get('u1')).toEqual({
      id: 'u1',
      userName: 'ann.lee@x.test',
      email: 'ann.lee@x.test',
      givenName: 'Ann',
      familyName: 'Lee',
      displayName: 'Ann Lee',
      active: true,
      status: 'ACTIVE',
    });
    expect(p.users.get('u2')).toMatchObject({ active: false, status: 'SUSPENDED' });
    expect(p.users.get('u4')).toMatchObject({ active: true, displayName: 'Dee Dee', givenName: 'Dee', familyName: 'Last' });
    expect(p.users.get('u5')).toMatchObject({ active: false, status: 'DEPROVISIONED' });
    expect([...p.groups.values()]).toEqual([{ id: 'g1', name: 'Staff' }]);
    expect(p.members).toEqual(new Map([['g1', new Set(['u1', 'u2'])]]));
    expect(p.bad).toEqual(new Set());
  });

  it('without an app id takes every user (DEPROVISIONED too) and every group', () => {
    const okta = new FakeOkta();
    okta.addUser('a@x.test', { id: 'u1' });
    okta.addUser('b@x.test', { id: 'u2', status: 'DEPROVISIONED' });
    okta.addGroup('G', { id: 'g1' });
    okta.addGroup('H', { id: 'g2' });
    okta.addMember('g2', 'u2');
    const p = oktaProjection(okta);
    expect([...p.users.keys()].sort()).toEqual(['u1', 'u2']);
    expect([...p.groups.keys()].sort()).toEqual(['g1', 'g2']);
    expect(p.members.get('g2')).toEqual(new Set(['u2']));
  });

  it('marks records with a NUL character or without a login as bad, keeping their id and status', () => {
    const okta = new FakeOkta();
    okta.addUser('a@x.test', { id: 'u1', profile: { title: 'boss\u0000' } });
    okta.addUser('b@x.test', { id: 'u2', status: 'SUSPENDED', profile: { login: undefined } });
    okta.addUser('c@x.test', { id: 'u3' });
    const p = oktaProjection(okta);
    expect(p.bad).toEqual(new Set(['u1', 'u2']));
    expect(p.users.get('u2')).toMatchObject({ userName: null, active: false });
  });
});

describe('authentikProjection', () => {
  function directory() {
    const ak = new FakeAuthentik();
    ak.addUser('ann.lee@x.test', { pk: 11 });
    ak.addUser('bob.king@x.test', { pk: 12, attributes: { given_name: 'Robert' } });
    ak.addUser('cat.ray@x.test', { pk: 13, is_active: false });
    ak.addUser('zed.out@x.test', { pk: 14 });
    ak.addUser('svc', { pk: 15, type: 'service_account' });
    const eng = ak.addGroup('Engineering', { pk: 'g-eng' });
    ak.addGroup('Backend', { pk: 'g-back', parents: [eng.pk] });
    ak.addGroup('Sales', { pk: 'g-sales' });
    ak.addMember('g-eng', 12);
    ak.addMember('g-back', 13);
    ak.addMember('g-eng', 15);
    ak.addMember('g-sales', 14);
    ak.addApp('crm');
    return ak;
  }

  it('admits bound users and the members of bound groups and their child groups, never service accounts', () => {
    const ak = directory();
    ak.bind('crm', { user: 11 });
    ak.bind('crm', { group: 'g-eng' });
    ak.bind('crm', { user: 14, enabled: false });
    ak.bind('crm', { policy: 'p1' });
    const p = authentikProjection(ak, 'crm');
    expect([...p.users.keys()].sort()).toEqual(['11', '12', '13']);
    expect(p.users.get('12')).toEqual({
      id: '12',
      userName: 'bob.king@x.test',
      email: 'bob.king@x.test',
      givenName: 'Robert',
      familyName: 'King',
      displayName: 'Bob King',
      active: true,
      status: 'active',
    });
    expect(p.users.get('13')).toMatchObject({ active: false, givenName: 'Cat', familyName: 'Ray' });
    expect([...p.groups.values()]).toEqual([{ id: 'g-eng', name: 'Engineering' }]);
    expect(p.members).toEqual(new Map([['g-eng', new Set(['12', '13'])]]));
  });

  it('is open to everyone without user or group bindings, and engine mode all needs every binding', () => {
    const ak = directory();
    let p = authentikProjection(ak, 'crm');
    expect([...p.users.keys()].sort()).toEqual(['11', '12', '13', '14']);
    expect([...p.groups.keys()].sort()).toEqual(['g-back', 'g-eng', 'g-sales']);
    expect(p.members.get('g-eng')).toEqual(new Set(['12', '13']));

    ak.apps.get('crm')!.policy_engine_mode = 'all';
    ak.bind('crm', { group: 'g-eng' });
    ak.bind('crm', { user: 13, negate: true });
    p = authentikProjection(ak, 'crm');
    expect([...p.users.keys()]).toEqual(['12']);
  });
});

describe('SpecModel', () => {
  function oktaTenant(mode: 'suspend' | 'remove-access' | 'delete' = 'suspend') {
    const okta = new FakeOkta();
    const app = okta.addApp('app');
    const model = new SpecModel();
    model.addIntegration('i1', 't1', mode);
    const run = () => model.cleanRun('i1', oktaProjection(okta, 'app'));
    return { okta, app, model, run };
  }

  it('keeps each account its memberships when two users swap logins through a temporary login', () => {
    const { okta, app, model, run } = oktaTenant();
    okta.addUser('ann.lee@x.test', { id: 'u1' });
    okta.addUser('bob.king@x.test', { id: 'u2' });
    okta.addGroup('Admins', { id: 'g1' });
    okta.addGroup('Staff', { id: 'g2' });
    okta.addMember('g1', 'u1');
    okta.addMember('g2', 'u2');
    app.groups.add('g1');
    app.groups.add('g2');
    run();
    okta.updateUser('u1', { profile: { login: 'tmp@x.test' } });
    okta.updateUser('u2', { profile: { login: 'ann.lee@x.test' } });
    okta.updateUser('u1', { profile: { login: 'bob.king@x.test' } });
    run();
    expect(model.groups('t1')).toEqual([
      { name: 'Admins', members: ['bob.king@x.test'] },
      { name: 'Staff', members: ['ann.lee@x.test'] },
    ]);
    expect(model.users('t1')).toEqual([
      u('ann.lee@x.test', { email: 'bob.king@x.test', givenName: 'Bob', familyName: 'King', displayName: 'Bob King', groups: ['Staff'] }),
      u('bob.king@x.test', { email: 'ann.lee@x.test', givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee', groups: ['Admins'] }),
    ]);
    // No run ever saw the temporary login, so no person was made for it.
    expect(model.hasPerson('tmp@x.test')).toBe(false);
  });

  it('relinks a recased login to the same account with its memberships', () => {
    const { okta, app, model, run } = oktaTenant();
    okta.addUser('jane@x.test', { id: 'u1' });
    okta.addGroup('Staff', { id: 'g1' });
    okta.addMember('g1', 'u1');
    app.groups.add('g1');
    run();
    okta.updateUser('u1', { profile: { login: 'JANE@x.test' } });
    run();
    expect(model.users('t1')).toEqual([
      u('JANE@x.test', { email: 'jane@x.test', givenName: 'Jane', familyName: 'Last', displayName: 'Jane Last', groups: ['Staff'] }),
    ]);
    expect(model.groups('t1')).toEqual([{ name: 'Staff', members: ['JANE@x.test'] }]);
  });

  for (const mode of ['suspend', 'remove-access', 'delete'] as const) {
    it(`gives a recycled login (jane@) nothing of the departed identity (${mode})`, () => {
      const { okta, app, model, run } = oktaTenant(mode);
      okta.addUser('jane@acme.test', { id: 'u1' });
      okta.addUser('root@acme.test', { id: 'u2' });
      okta.addGroup('Admins', { id: 'gA' });
      okta.addGroup('Staff', { id: 'gS' });
      okta.addMember('gA', 'u1');
      okta.addMember('gA', 'u2');
      app.users.add('u1');
      app.groups.add('gA');
      app.groups.add('gS');
      run();
      // Offboarded: removed from Admins, deactivated, synced, then deleted in Okta.
      okta.removeMember('gA', 'u1');
      okta.updateUser('u1', { status: 'DEPROVISIONED' });
      run();
      okta.users.delete('u1');
      app.users.delete('u1');
      // A new hire gets the login: assigned directly and in Staff only.
      okta.addUser('jane@acme.test', { id: 'u3', profile: { firstName: 'Janet', lastName: 'New' } });
      okta.addMember('gS', 'u3');
      app.users.add('u3');
      run();
      run();
      const newHire = u('jane@acme.test', { givenName: 'Janet', familyName: 'New', displayName: 'Janet New', groups: ['Staff'] });
      const departed = u('jane@acme.test', { givenName: 'Jane', familyName: 'Last', displayName: 'Jane Last', active: false, locked: true });
      const root = u('root@acme.test', { givenName: 'Root', familyName: 'Last', displayName: 'Root Last', groups: ['Admins'] });
      expect(model.users('t1')).toEqual(mode === 'suspend' ? [departed, newHire, root] : [newHire, root]);
      expect(model.groups('t1')).toEqual([
        { name: 'Admins', members: ['root@acme.test'] },
        { name: 'Staff', members: ['jane@acme.test'] },
      ]);
      // The old identity's lock stays in every mode.
      expect(model.locks('t1')).toEqual([{ tenant: 't1', integrationId: 'i1', idpId: 'u1', person: 'jane@acme.test', reason: 'idp-status' }]);
      expect(model.hasPerson('jane@acme.test')).toBe(true);
    });
  }

  it('adopts an account no integration owns (an SSO login), never duplicating it', () => {
    const { okta, app, model, run } = oktaTenant();
    model.addUnownedAccount('t1', { userName: 'Jane@Acme.test', email: 'old@acme.test' });
    okta.addUser('jane@acme.test', { id: 'u1' });
    app.users.add('u1');
    run();
    expect(model.users('t1')).toEqual([u('jane@acme.test', { givenName: 'Jane', familyName: 'Last', displayName: 'Jane Last' })]);
    expect(model.accounts('t1')[0]!.owner).toEqual({ integrationId: 'i1', idpId: 'u1' });
  });

  it('adopts the accounts a disabled integration left in an IdP migration, without its memberships', () => {
    const { okta, app, model, run } = oktaTenant();
    okta.addUser('ann.lee@x.test', { id: 'u1' });
    okta.addGroup('Staff', { id: 'g1' });
    okta.addMember('g1', 'u1');
    app.groups.add('g1');
    run();
    model.setEnabled('i1', false);
    const ak = new FakeAuthentik();
    ak.addUser('Ann.Lee@x.test', { pk: 11, name: 'Ann Marie Lee' });
    const staff = ak.addGroup('Staff', { pk: 'ak-staff' });
    ak.addGroup('Ops', { pk: 'ak-ops' });
    ak.addMember(staff.pk, 11);
    ak.addApp('crm');
    ak.bind('crm', { group: staff.pk });
    model.addIntegration('i2', 't1');
    model.cleanRun('i2', authentikProjection(ak, 'crm'));
    expect(model.users('t1')).toEqual([
      u('Ann.Lee@x.test', { email: 'Ann.Lee@x.test', givenName: 'Ann Marie', familyName: 'Lee', displayName: 'Ann Marie Lee', groups: ['Staff'] }),
    ]);
    expect(model.accounts('t1').map((a) => a.owner)).toEqual([{ integrationId: 'i2', idpId: '11' }]);
    // The disabled integration's group stays (nothing of it runs) but holds no adopted account.
    expect(model.groups('t1')).toEqual([
      { name: 'Staff', members: ['Ann.Lee@x.test'] },
      { name: 'Staff', members: [] },
    ]);
  });

  it('skips a record whose login an account of another enabled integration holds (conflict)', () => {
    const { okta, app, model, run } = oktaTenant();
    okta.addUser('ann.lee@x.test', { id: 'u1' });
    app.users.add('u1');
    run();
    const ak = new FakeAuthentik();
    ak.addUser('ANN.LEE@x.test', { pk: 11 });
    ak.addUser('bob.king@x.test', { pk: 12 });
    const g = ak.addGroup('Ops', { pk: 'ak-ops' });
    ak.addMember(g.pk, 11);
    ak.addMember(g.pk, 12);
    model.addIntegration('i2', 't1');
    const outcome = model.cleanRun('i2', authentikProjection(ak));
    expect(outcome.warnings).toEqual([{ externalId: '11', reason: 'conflict' }]);
    expect(model.users('t1')).toEqual([
      u('ann.lee@x.test', { givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee' }),
      u('bob.king@x.test', { email: 'bob.king@x.test', givenName: 'Bob', familyName: 'King', displayName: 'Bob King', groups: ['Ops'] }),
    ]);
    expect(model.groups('t1')).toEqual([{ name: 'Ops', members: ['bob.king@x.test'] }]);
  });

  it('skips both records of a clash (two logins equal but for case)', () => {
    const model = new SpecModel();
    model.addIntegration('i1', 't1');
    const ak = new FakeAuthentik();
    ak.addUser('sam@x.test', { pk: 11 });
    ak.addUser('SAM@x.test', { pk: 12 });
    ak.addUser('tim@x.test', { pk: 13 });
    const outcome = model.cleanRun('i1', authentikProjection(ak));
    expect(outcome.warnings.map((w) => [w.externalId, w.reason])).toEqual([
      ['11', 'clash'],
      ['12', 'clash'],
    ]);
    expect(model.users('t1').map((x) => x.userName)).toEqual(['tim@x.test']);
  });

  describe('deprovision modes', () => {
    function staffOf3(mode: 'suspend' | 'remove-access' | 'delete') {
      const t = oktaTenant(mode);
      for (const [id, login] of [['u1', 'ann@x.test'], ['u2', 'bob@x.test'], ['u3', 'cat@x.test']] as const) {
        t.okta.addUser(login, { id });
        t.app.users.add(id);
      }
      t.okta.addGroup('Staff', { id: 'g1' });
      for (const id of ['u1', 'u2', 'u3']) t.okta.addMember('g1', id);
      t.app.groups.add('g1');
      t.run();
      return t;
    }
    const person = (login: string, over = {}) => u(login, { givenName: login[0]!.toUpperCase() + login.slice(1, 3), familyName: 'Last', displayName: `${login[0]!.toUpperCase() + login.slice(1, 3)} Last`, groups: ['Staff'], ...over });

    it('suspend keeps the account inactive and locked, its memberships mirroring the IdP; reprovision lifts the lock', () => {
      const { okta, model, run } = staffOf3('suspend');
      okta.updateUser('u1', { status: 'SUSPENDED' });
      const outcome = run();
      expect(outcome.destructive).toEqual({ deprovisions: 1, groupDeletions: 0, membershipRemovals: 0 });
      expect(model.users('t1')).toEqual([person('ann@x.test', { active: false, locked: true }), person('bob@x.test'), person('cat@x.test')]);
      expect(model.groups('t1')).toEqual([{ name: 'Staff', members: ['ann@x.test', 'bob@x.test', 'cat@x.test'] }]);
      expect(model.locks('t1')).toEqual([{ tenant: 't1', integrationId: 'i1', idpId: 'u1', person: 'ann@x.test', reason: 'idp-status' }]);
      okta.updateUser('u1', { status: 'ACTIVE' });
      run();
      expect(model.users('t1')[0]).toEqual(person('ann@x.test'));
      expect(model.locks('t1')).toEqual([]);
    });

    it('suspend removes the membership the IdP removed when the user leaves the scope', () => {
      const { okta, app, model, run } = staffOf3('suspend');
      app.users.delete('u1');
      okta.removeMember('g1', 'u1');
      expect(run().destructive).toEqual({ deprovisions: 1, groupDeletions: 0, membershipRemovals: 1 });
      expect(model.users('t1')[0]).toEqual(person('ann@x.test', { active: false, locked: true, groups: [] }));
      expect(model.locks('t1')[0]).toMatchObject({ idpId: 'u1', reason: 'out-of-scope' });
    });

    it('remove-access removes the account and its memberships, keeps the person and the lock; reprovision restores', () => {
      const { okta, model, run } = staffOf3('remove-access');
      okta.updateUser('u1', { status: 'SUSPENDED' });
      expect(run().destructive).toEqual({ deprovisions: 1, groupDeletions: 0, membershipRemovals: 1 });
      expect(model.users('t1')).toEqual([person('bob@x.test'), person('cat@x.test')]);
      expect(model.groups('t1')).toEqual([{ name: 'Staff', members: ['bob@x.test', 'cat@x.test'] }]);
      expect(model.hasPerson('ann@x.test')).toBe(true);
      expect(model.locks('t1')).toHaveLength(1);
      okta.updateUser('u1', { status: 'ACTIVE' });
      run();
      expect(model.users('t1')).toEqual([person('ann@x.test'), person('bob@x.test'), person('cat@x.test')]);
      expect(model.locks('t1')).toEqual([]);
    });

    it('delete also deletes the person once no account is left, and keeps the lock', () => {
      const { okta, model, run } = staffOf3('delete');
      okta.updateUser('u1', { status: 'DEPROVISIONED' });
      run();
      expect(model.hasPerson('ann@x.test')).toBe(false);
      expect(model.locks('t1')).toEqual([{ tenant: 't1', integrationId: 'i1', idpId: 'u1', person: 'ann@x.test', reason: 'idp-status' }]);
      expect(model.users('t1').map((x) => x.userName)).toEqual(['bob@x.test', 'cat@x.test']);
    });

    it('delete keeps a person another tenant still has an account for, and that tenant sees nothing change', () => {
      const { okta, model, run } = staffOf3('delete');
      const other = new FakeOkta();
      other.addUser('ANN@x.test', { id: 'o1', profile: { firstName: 'Annie' } });
      model.addIntegration('i9', 't9');
      model.cleanRun('i9', oktaProjection(other));
      okta.updateUser('u1', { status: 'SUSPENDED' });
      run();
      expect(model.hasPerson('ann@x.test')).toBe(true);
      expect(model.users('t9')).toEqual([u('ANN@x.test', { email: 'ANN@x.test', givenName: 'Annie', familyName: 'Last', displayName: 'Annie Last' })]);
    });

    it('never creates a user the IdP reports inactive that the tenant never had', () => {
      const { okta, app, model, run } = staffOf3('suspend');
      okta.addUser('dan@x.test', { id: 'u4', status: 'SUSPENDED' });
      app.users.add('u4');
      run();
      expect(model.users('t1').map((x) => x.userName)).toEqual(['ann@x.test', 'bob@x.test', 'cat@x.test']);
    });

    it('group renames keep members; a group leaving the scope takes its memberships, each counted', () => {
      const { okta, app, model, run } = staffOf3('suspend');
      okta.groups.get('g1')!.profile.name = 'Team';
      run();
      expect(model.groups('t1')).toEqual([{ name: 'Team', members: ['ann@x.test', 'bob@x.test', 'cat@x.test'] }]);
      app.groups.delete('g1');
      expect(run().destructive).toEqual({ deprovisions: 0, groupDeletions: 1, membershipRemovals: 3 });
      expect(model.groups('t1')).toEqual([]);
      expect(model.users('t1').every((x) => x.active && x.groups.length === 0)).toBe(true);
    });
  });

  describe('bad records (per-record isolation)', () => {
    it('skips an unreadable record without deprovisioning it, yet applies a readable deprovisioning status', () => {
      const { okta, app, model, run } = oktaTenant('remove-access');
      okta.addUser('ann@x.test', { id: 'u1' });
      okta.addUser('bob@x.test', { id: 'u2' });
      okta.addGroup('Staff', { id: 'g1' });
      okta.addMember('g1', 'u1');
      app.users.add('u1');
      app.users.add('u2');
      app.groups.add('g1');
      run();
      okta.updateUser('u1', { profile: { firstName: 'An\u0000n', nickName: 'x' } });
      okta.updateUser('u2', { profile: { lastName: 'Changed' } });
      let outcome = run();
      expect(outcome.warnings).toEqual([{ externalId: 'u1', reason: 'bad-record' }]);
      expect(outcome.destructive).toEqual({ deprovisions: 0, groupDeletions: 0, membershipRemovals: 0 });
      expect(model.users('t1')).toEqual([
        u('ann@x.test', { givenName: 'Ann', familyName: 'Last', displayName: 'Ann Last', groups: ['Staff'] }),
        u('bob@x.test', { givenName: 'Bob', familyName: 'Changed', displayName: 'Bob Changed' }),
      ]);
      okta.updateUser('u1', { status: 'SUSPENDED' });
      outcome = run();
      expect(outcome.warnings).toEqual([{ externalId: 'u1', reason: 'bad-record' }]);
      expect(model.users('t1').map((x) => x.userName)).toEqual(['bob@x.test']);
      expect(model.groups('t1')).toEqual([{ name: 'Staff', members: [] }]);
    });

    it('does not create a new record without a login, and names it in the warnings', () => {
      const { okta, app, model, run } = oktaTenant();
      okta.addUser('ann@x.test', { id: 'u1', profile: { login: undefined } });
      app.users.add('u1');
      expect(run().warnings).toEqual([{ externalId: 'u1', reason: 'bad-record' }]);
      expect(model.users('t1')).toEqual([]);
    });
  });
});
