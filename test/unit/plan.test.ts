import { describe, expect, it } from 'vitest';
import { emptyLocalState } from '../../src/core/model.js';
import { isEmptyPlan, plan, planCounts } from '../../src/core/plan.js';
import { DEFAULT_POLICY } from '../../src/core/policy.js';
import { settledMemberVersions } from '../../src/core/snapshot.js';
import { group, local, localGroup, localUser, snapshot, user } from '../support/builders.js';

const suspend = DEFAULT_POLICY;

describe('plan', () => {
  it('creates every active user, group and membership on a first run', () => {
    const ann = user('u1');
    const bob = user('u2');
    const eng = group('g1', { name: 'Engineering' });
    const p = plan(emptyLocalState(), snapshot([ann, bob], [eng], { g1: ['u1', 'u2'] }), suspend);
    expect(p.usersCreated.map((u) => u.externalId)).toEqual(['u1', 'u2']);
    expect(p.groupsCreated.map((g) => g.name)).toEqual(['Engineering']);
    expect(p.membershipsAdded).toEqual([
      { groupExternalId: 'g1', userExternalId: 'u1', groupName: 'Engineering', userName: 'u1@example.com' },
      { groupExternalId: 'g1', userExternalId: 'u2', groupName: 'Engineering', userName: 'u2@example.com' },
    ]);
  });

  it('plans nothing when local state already matches', () => {
    const ann = user('u1');
    const eng = group('g1');
    const p = plan(local([localUser(ann)], [localGroup(eng)], { g1: ['u1'] }), snapshot([ann], [eng], { g1: ['u1'] }), suspend);
    expect(isEmptyPlan(p)).toBe(true);
  });

  it('does not grant access to a user the IdP already reports inactive', () => {
    const p = plan(emptyLocalState(), snapshot([user('u1', { active: false })], [group('g1')], { g1: ['u1'] }), suspend);
    expect(p.usersCreated).toEqual([]);
    expect(p.membershipsAdded).toEqual([]);
  });

  it.each([
    // A field comes from the IdP's raw record, so that record (`attributes`) moved too.
    ['email', { email: 'new@example.com' }, ['email', 'attributes']],
    ['name', { givenName: 'Ann', displayName: 'Ann Test' }, ['givenName', 'displayName', 'attributes']],
    ['raw attribute only', { attributes: { login: 'u1@example.com', costCenter: 'X' } }, ['attributes']],
  ] as const)('updates a user whose %s changed', (_label, change, changed) => {
    const before = user('u1');
    const after = user('u1', change);
    const p = plan(local([localUser(before)], []), snapshot([after], []), suspend);
    // The account as it was rides along: events carry each field's previous value.
    expect(p.usersUpdated).toEqual([{ user: after, changed, previous: localUser(before) }]);
    expect(planCounts(p, suspend).usersUpdated).toBe(1);
  });

  it('deprovisions a user the IdP suspends, keeping memberships in suspend mode', () => {
    const ann = user('u1');
    const p = plan(
      local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }),
      snapshot([user('u1', { active: false, status: 'SUSPENDED' })], [group('g1')], { g1: ['u1'] }),
      suspend,
    );
    expect(p.usersDeprovisioned).toEqual([
      expect.objectContaining({ externalId: 'u1', reason: 'idp-status', user: expect.objectContaining({ status: 'SUSPENDED' }) }),
    ]);
    expect(p.membershipsRemoved).toEqual([]);
  });

  it('deprovisions a user who left the scope; in suspend mode too, memberships mirror the IdP', () => {
    const ann = user('u1');
    const p = plan(local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), suspend);
    expect(p.usersDeprovisioned).toEqual([{ externalId: 'u1', userName: 'u1@example.com', reason: 'out-of-scope', user: null }]);
    // The removal goes with the deprovision: held exactly when it is.
    expect(p.membershipsRemoved).toEqual([{ groupExternalId: 'g1', userExternalId: 'u1', groupName: 'group-g1', userName: 'u1@example.com', with: 'account' }]);
  });

  it('removes the memberships of a deprovisioned user in remove-access mode', () => {
    const ann = user('u1');
    const p = plan(local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), {
      deprovisionMode: 'remove-access',
    });
    expect(p.usersDeprovisioned).toHaveLength(1);
    expect(p.membershipsRemoved.map((m) => [m.userExternalId, m.with])).toEqual([['u1', 'account']]);
  });

  it('does not deprovision a user twice', () => {
    const ann = user('u1', { active: false });
    const p = plan(local([localUser(ann, false)], []), snapshot([], []), suspend);
    expect(p.usersDeprovisioned).toEqual([]);
  });

  it('reprovisions a user the IdP activates again, with their new attributes', () => {
    const before = user('u1', { active: false });
    const after = user('u1', { email: 'back@example.com' });
    const p = plan(local([localUser(before, false)], []), snapshot([after], []), suspend);
    // The attribute changes come with the reprovision (recorded as a user.updated beside it), not as an update of their own.
    expect(p.usersReprovisioned).toEqual([{ ...after, adopts: null, update: { user: after, changed: ['email', 'attributes'], previous: localUser(before, false) } }]);
    expect(p.usersUpdated).toEqual([]);
    // Counted as applying counts it: a reprovision and an update.
    expect(planCounts(p, suspend)).toMatchObject({ usersReprovisioned: 1, usersUpdated: 1 });
  });

  it.each([
    ['suspend', 1],
    ['remove-access', 0],
    ['delete', 0],
  ] as const)('counts the update that comes with a deprovision as applying it does (%s mode: %i)', (mode, updates) => {
    const before = user('u1');
    const after = user('u1', { email: 'new@example.com', active: false });
    const policy = { deprovisionMode: mode };
    const p = plan(local([localUser(before)], []), snapshot([after], []), policy);
    expect(p.usersDeprovisioned.map((d) => d.update?.changed.includes('email'))).toEqual([true]);
    // Suspend mode keeps the account and writes the record's attributes; the other modes remove it.
    expect(planCounts(p, policy)).toMatchObject({ usersDeprovisioned: 1, usersUpdated: updates });
  });

  it('updates, deletes and re-members groups', () => {
    const ann = user('u1');
    const bob = user('u2');
    const p = plan(
      local([localUser(ann), localUser(bob)], [localGroup(group('g1')), localGroup(group('g2'))], { g1: ['u1'], g2: ['u1'] }),
      snapshot([ann, bob], [group('g1', { name: 'Renamed' })], { g1: ['u2'] }),
      suspend,
    );
    expect(p.groupsUpdated).toEqual([{ group: expect.objectContaining({ name: 'Renamed' }), changed: ['name', 'attributes'], previous: localGroup(group('g1')) }]);
    expect(p.groupsDeleted).toEqual([{ externalId: 'g2', name: 'group-g2', members: 1 }]);
    expect(p.membershipsAdded.map((m) => [m.groupExternalId, m.userExternalId])).toEqual([['g1', 'u2']]);
    // The deleted group's membership is a removal of its own, in the counts and the change log.
    expect(p.membershipsRemoved.map((m) => [m.groupExternalId, m.userExternalId, m.with])).toEqual([
      ['g1', 'u1', undefined],
      ['g2', 'u1', 'group'],
    ]);
  });

  it('is deterministic whatever the insertion order', () => {
    const users = ['u3', 'u1', 'u2'].map((id) => user(id));
    const a = plan(emptyLocalState(), snapshot(users, []), suspend);
    const b = plan(emptyLocalState(), snapshot([...users].reverse(), []), suspend);
    expect(a).toEqual(b);
    expect(a.usersCreated.map((u) => u.externalId)).toEqual(['u1', 'u2', 'u3']);
  });
});

describe('plan, deprovision modes', () => {
  it('reprovisions a user whose access an earlier run removed, rather than creating them', () => {
    const ann = user('u1');
    const p = plan(local([], [], {}, ['u1']), snapshot([ann], []), { deprovisionMode: 'remove-access' });
    expect(p.usersReprovisioned).toEqual([{ ...ann, adopts: null }]);
    expect(p.usersCreated).toEqual([]);
  });

  it('does not apply a new mode to users an earlier run suspended (their memberships still mirror the IdP)', () => {
    const ann = user('u1', { active: false });
    const p = plan(local([localUser(ann, false)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), {
      deprovisionMode: 'delete',
    });
    expect(p.usersDeprovisioned).toEqual([]);
    expect(p.membershipsRemoved.map((m) => [m.userExternalId, m.with])).toEqual([['u1', undefined]]);
  });
});

describe('plan, identity by IdP id (SPEC "Identity: accounts and people")', () => {
  const others = (entries: Record<string, { accountId: string; ownedByEnabled: string | null }>) => new Map(Object.entries(entries));

  it('a renamed login is an update of the same account, memberships untouched', () => {
    const ann = user('u1', { userName: 'ann@x.test' });
    const p = plan(local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([user('u1', { userName: 'anne@x.test' })], [group('g1')], { g1: ['u1'] }), suspend);
    expect(p.usersUpdated.map((u) => [u.user.externalId, u.changed])).toEqual([['u1', ['userName', 'attributes']]]);
    expect(p.usersCreated).toEqual([]);
    expect(p.membershipsAdded).toEqual([]);
    expect(p.membershipsRemoved).toEqual([]);
  });

  it('two accounts swapping logins are two updates, each keeping its own memberships', () => {
    const a = user('u1', { userName: 'a@x.test' });
    const b = user('u2', { userName: 'b@x.test' });
    const p = plan(
      local([localUser(a), localUser(b)], [localGroup(group('gA')), localGroup(group('gB'))], { gA: ['u1'], gB: ['u2'] }),
      snapshot([user('u1', { userName: 'b@x.test' }), user('u2', { userName: 'a@x.test' })], [group('gA'), group('gB')], { gA: ['u1'], gB: ['u2'] }),
      suspend,
    );
    expect(p.usersUpdated.map((u) => [u.user.externalId, u.user.userName])).toEqual([['u1', 'b@x.test'], ['u2', 'a@x.test']]);
    expect(p.membershipsAdded).toEqual([]);
    expect(p.membershipsRemoved).toEqual([]);
  });

  it('a login reused by a new IdP identity is a new account that inherits nothing', () => {
    // jane@ (u1) was in Admins, left it, was deactivated and deleted; a new u9 gets jane@, in Staff only.
    const oldJane = user('u1', { userName: 'jane@x.test', active: false });
    const p = plan(
      local([localUser(oldJane, false)], [localGroup(group('admins')), localGroup(group('staff'))], { admins: [] }),
      snapshot([user('u9', { userName: 'jane@x.test' })], [group('admins'), group('staff')], { staff: ['u9'] }),
      suspend,
    );
    expect(p.usersCreated.map((u) => [u.externalId, u.adopts])).toEqual([['u9', null]]);
    expect(p.usersReprovisioned).toEqual([]);
    expect(p.membershipsAdded.map((m) => [m.groupExternalId, m.userExternalId])).toEqual([['staff', 'u9']]);
  });

  it('adopts an account with the same normalized login that no enabled integration owns', () => {
    const p = plan(
      { ...local([], []), others: others({ 'ann@x.test': { accountId: 'acc-1', ownedByEnabled: null } }) },
      snapshot([user('u1', { userName: 'ANN@x.test' })], []),
      suspend,
    );
    expect(p.usersCreated.map((u) => [u.externalId, u.adopts])).toEqual([['u1', 'acc-1']]);
  });

  it("skips a user whose login another enabled integration's account holds, as a conflict", () => {
    const p = plan(
      { ...local([], [group('g1')].map(localGroup)), others: others({ 'ann@x.test': { accountId: 'acc-1', ownedByEnabled: 'int-2' } }) },
      snapshot([user('u1', { userName: 'ann@x.test' }), user('u2')], [group('g1')], { g1: ['u1', 'u2'] }),
      suspend,
    );
    expect(p.usersCreated.map((u) => u.externalId)).toEqual(['u2']);
    expect(p.membershipsAdded.map((m) => m.userExternalId)).toEqual(['u2']);
    expect(p.skipped).toEqual([expect.objectContaining({ externalId: 'u1', reason: expect.stringMatching(/belongs to an account of integration int-2, another enabled integration/) })]);
  });

  it('keeps a renamed account as it was when its new login belongs to another enabled integration', () => {
    const ann = user('u1', { userName: 'ann@x.test' });
    const p = plan(
      { ...local([localUser(ann)], []), others: others({ 'bob@x.test': { accountId: 'acc-2', ownedByEnabled: 'int-2' } }) },
      snapshot([user('u1', { userName: 'bob@x.test' })], []),
      suspend,
    );
    expect(p.usersUpdated).toEqual([]);
    expect(p.usersDeprovisioned).toEqual([]);
    expect(p.skipped).toHaveLength(1);
  });
});

describe('plan, per-record isolation (SPEC "Safety")', () => {
  const bad = (externalId: string, active?: boolean) => ({ kind: 'user' as const, externalId, subject: externalId, reason: 'has a NUL character', ...(active === undefined ? {} : { active }) });

  it('never deprovisions a skipped user, and keeps its memberships as the IdP lists them', () => {
    const ann = user('u1');
    const p = plan(
      local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }),
      { ...snapshot([], [group('g1')]), memberships: new Map([['g1', new Set(['u1'])]]), skipped: [bad('u1', true)] },
      suspend,
    );
    expect(p.usersDeprovisioned).toEqual([]);
    expect(p.membershipsRemoved).toEqual([]);
    expect(p.skipped).toEqual([bad('u1', true)]);
  });

  it('still deprovisions a skipped user whose readable status deprovisions', () => {
    const ann = user('u1');
    const p = plan(local([localUser(ann)], []), { ...snapshot([], []), skipped: [bad('u1', false)] }, suspend);
    expect(p.usersDeprovisioned).toEqual([{ externalId: 'u1', userName: 'u1@example.com', reason: 'idp-status', user: null }]);
  });

  it('does not create a skipped user, nor delete a skipped group', () => {
    const p = plan(
      local([], [localGroup(group('g1'))]),
      { ...snapshot([], []), skipped: [bad('u1', true), { kind: 'group', externalId: 'g1', subject: 'g1', reason: 'NUL' }] },
      suspend,
    );
    expect(p.usersCreated).toEqual([]);
    expect(p.groupsDeleted).toEqual([]);
  });
});

describe('settledMemberVersions: a group listing a record not taken is read again next run', () => {
  const bad = (externalId: string) => ({ kind: 'user' as const, externalId, subject: externalId, reason: 'Okta user has no profile.login', active: true });
  const ann = user('u1', { userName: 'ann@x.test' });
  const bob = user('u2', { userName: 'bob@x.test' });
  const sales = { ...group('g1', { name: 'Sales' }), membersVersion: 'v1' };
  const ops = { ...group('g2', { name: 'Ops' }), membersVersion: 'v2' };
  const listing = (members: Record<string, string[]>) => new Map(Object.entries(members).map(([g, m]) => [g, new Set(m)]));

  it('records no version for a group whose listing names a skipped record, which gains no membership', () => {
    // Ann is skipped as unreadable while Sales, listing her, is created: she is not added.
    const read = { ...snapshot([bob], [sales, ops]), memberships: listing({ g1: ['u1', 'u2'], g2: ['u2'] }), skipped: [bad('u1')] };
    const p = plan(local([localUser(ann), localUser(bob)], []), read, suspend);
    expect(p.membershipsAdded.map((m) => `${m.userExternalId} in ${m.groupExternalId}`)).toEqual(['u2 in g1', 'u2 in g2']);
    expect(settledMemberVersions(read, undefined, p.skipped)).toEqual([{ externalId: 'g2', version: 'v2' }]);

    // Readable again, Sales unchanged: read again (not taken from the tenant), Ann gains it.
    const fixed = { ...snapshot([ann, bob], [sales, ops]), memberships: listing({ g1: ['u1', 'u2'], g2: ['u2'] }) };
    const after = local([localUser(ann), localUser(bob)], [localGroup(sales), localGroup(ops)], { g1: ['u2'], g2: ['u2'] });
    const next = plan(after, fixed, suspend);
    expect(next.membershipsAdded.map((m) => `${m.userExternalId} in ${m.groupExternalId}`)).toEqual(['u1 in g1']);
    expect(settledMemberVersions(fixed, undefined, next.skipped)).toEqual([
      { externalId: 'g1', version: 'v1' },
      { externalId: 'g2', version: 'v2' },
    ]);
  });

  it('counts the records the planner skips too: a login another enabled integration owns, two logins alike', () => {
    const owned = {
      ...local([localUser(ann), localUser(bob)], []),
      others: new Map([['carl@x.test', { accountId: 'acc-9', ownedByEnabled: 'int-2' }]]),
    };
    const renamed = { ...snapshot([user('u1', { userName: 'carl@x.test' }), bob], [sales, ops], { g1: ['u1'], g2: ['u2'] }) };
    const conflict = plan(owned, renamed, suspend);
    expect(conflict.skipped.map((r) => r.externalId)).toEqual(['u1']);
    expect(settledMemberVersions(renamed, undefined, conflict.skipped)).toEqual([{ externalId: 'g2', version: 'v2' }]);

    const alike = snapshot([user('u1', { userName: 'ann@x.test' }), user('u3', { userName: 'ANN@x.test' }), bob], [sales, ops], { g1: ['u3'], g2: ['u2'] });
    const clash = plan(local([localUser(ann), localUser(bob)], []), alike, suspend);
    expect(clash.skipped.map((r) => r.externalId)).toEqual(['u1', 'u3']);
    expect(settledMemberVersions(alike, undefined, clash.skipped)).toEqual([{ externalId: 'g2', version: 'v2' }]);
  });

  it('records no version for groups whose members were not read, nor for groups without one', () => {
    const read = snapshot([bob], [sales, ops, group('g3')], { g1: ['u2'], g2: ['u2'], g3: ['u2'] });
    expect(settledMemberVersions(read, new Set(['g1']), [])).toEqual([{ externalId: 'g2', version: 'v2' }]);
    // A record skipped without an id names no member.
    expect(settledMemberVersions(read, undefined, [{ kind: 'user', externalId: null, subject: '?', reason: 'no id' }])).toHaveLength(2);
  });
});
