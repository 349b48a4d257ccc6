import { describe, expect, it } from 'vitest';
import { emptyLocalState } from '../../src/core/model.js';
import { isEmptyPlan, plan, planCounts } from '../../src/core/plan.js';
import { DEFAULT_POLICY } from '../../src/core/policy.js';
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
    ['email', { email: 'new@example.com' }, ['email']],
    ['name', { givenName: 'Ann', displayName: 'Ann Test' }, ['givenName', 'displayName']],
    ['raw attribute only', { attributes: { login: 'u1@example.com', costCenter: 'X' } }, ['attributes']],
  ] as const)('updates a user whose %s changed', (_label, change, changed) => {
    const before = user('u1');
    const after = user('u1', change);
    const p = plan(local([localUser(before)], []), snapshot([after], []), suspend);
    expect(p.usersUpdated).toEqual([{ user: after, changed }]);
    expect(planCounts(p).usersUpdated).toBe(1);
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

  it('deprovisions a user who left the scope, keeping memberships in suspend mode', () => {
    const ann = user('u1');
    const p = plan(local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), suspend);
    expect(p.usersDeprovisioned).toEqual([{ externalId: 'u1', userName: 'u1@example.com', reason: 'out-of-scope', user: null }]);
    expect(p.membershipsRemoved).toEqual([]);
  });

  it('removes the memberships of a deprovisioned user in remove-access mode', () => {
    const ann = user('u1');
    const p = plan(local([localUser(ann)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), {
      deprovisionMode: 'remove-access',
    });
    expect(p.usersDeprovisioned).toHaveLength(1);
    expect(p.membershipsRemoved.map((m) => m.userExternalId)).toEqual(['u1']);
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
    expect(p.usersReprovisioned).toEqual([after]);
    expect(p.usersUpdated).toEqual([]);
  });

  it('updates, deletes and re-members groups', () => {
    const ann = user('u1');
    const bob = user('u2');
    const p = plan(
      local([localUser(ann), localUser(bob)], [localGroup(group('g1')), localGroup(group('g2'))], { g1: ['u1'], g2: ['u1'] }),
      snapshot([ann, bob], [group('g1', { name: 'Renamed' })], { g1: ['u2'] }),
      suspend,
    );
    expect(p.groupsUpdated).toEqual([{ group: expect.objectContaining({ name: 'Renamed' }), changed: ['name'] }]);
    expect(p.groupsDeleted).toEqual([{ externalId: 'g2', name: 'group-g2' }]);
    expect(p.membershipsAdded.map((m) => [m.groupExternalId, m.userExternalId])).toEqual([['g1', 'u2']]);
    expect(p.membershipsRemoved.map((m) => [m.groupExternalId, m.userExternalId])).toEqual([['g1', 'u1']]);
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
    expect(p.usersReprovisioned).toEqual([ann]);
    expect(p.usersCreated).toEqual([]);
  });

  it('does not apply a new mode to users an earlier run suspended', () => {
    const ann = user('u1', { active: false });
    const p = plan(local([localUser(ann, false)], [localGroup(group('g1'))], { g1: ['u1'] }), snapshot([], [group('g1')]), {
      deprovisionMode: 'delete',
    });
    expect(p.usersDeprovisioned).toEqual([]);
    expect(p.membershipsRemoved).toEqual([]);
  });
});
