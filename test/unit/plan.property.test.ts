import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type LocalState, type Snapshot, emptyLocalState } from '../../src/core/model.js';
import { isEmptyPlan, plan } from '../../src/core/plan.js';
import type { Policy } from '../../src/core/policy.js';
import { group, snapshot, user } from '../support/builders.js';
import { applyInMemory } from '../support/local-model.js';

const USER_IDS = Array.from({ length: 12 }, (_, i) => `u${i}`);
const GROUP_IDS = ['g0', 'g1', 'g2', 'g3'];

/** A random IdP scope over a small id pool, so successive directories overlap and change. */
const directory: fc.Arbitrary<Snapshot> = fc
  .record({
    users: fc.subarray(USER_IDS),
    inactive: fc.subarray(USER_IDS),
    emails: fc.array(fc.constantFrom('a', 'b'), { minLength: USER_IDS.length, maxLength: USER_IDS.length }),
    groups: fc.subarray(GROUP_IDS),
    names: fc.array(fc.constantFrom('x', 'y'), { minLength: GROUP_IDS.length, maxLength: GROUP_IDS.length }),
    members: fc.array(fc.tuple(fc.constantFrom(...GROUP_IDS), fc.constantFrom(...USER_IDS)), { maxLength: 30 }),
  })
  .map((d) => {
    const users = d.users.map((id, i) =>
      user(id, { active: !d.inactive.includes(id), email: `${id}.${d.emails[i]}@example.com` }),
    );
    const groups = d.groups.map((id, i) => group(id, { name: `${id}-${d.names[i]}` }));
    const members: Record<string, string[]> = {};
    for (const [g, u] of d.members) (members[g] ??= []).push(u);
    return snapshot(users, groups, members);
  });

const policies = fc.constantFrom<Policy>({ deprovisionMode: 'suspend' }, { deprovisionMode: 'remove-access' }, { deprovisionMode: 'delete' });

function converge(history: Snapshot[], policy: Policy): LocalState {
  let state = emptyLocalState();
  for (const snap of history) state = applyInMemory(state, plan(state, snap, policy), policy);
  return state;
}

describe('plan (properties)', () => {
  it('applying the plan reaches the snapshot, and planning again finds nothing to do', () => {
    fc.assert(
      fc.property(fc.array(directory, { minLength: 1, maxLength: 5 }), policies, (history, policy) => {
        const before = converge(history.slice(0, -1), policy);
        const target = history.at(-1)!;
        const after = applyInMemory(before, plan(before, target, policy), policy);

        expect(isEmptyPlan(plan(after, target, policy))).toBe(true);
        // Groups mirror the IdP exactly.
        expect([...after.groups.keys()].sort()).toEqual([...target.groups.keys()].sort());
        for (const [id, g] of target.groups) expect(after.groups.get(id)?.fingerprint).toBe(g.fingerprint);
        // Every active user in scope has active access with the IdP's attributes.
        for (const u of target.users.values()) {
          if (u.active) expect(after.users.get(u.externalId)).toMatchObject({ active: true, fingerprint: u.fingerprint });
          else expect(after.users.get(u.externalId)?.active ?? false).toBe(false);
        }
        // Nobody outside the scope keeps active access.
        for (const u of after.users.values()) {
          if (u.active) expect(target.users.get(u.externalId)?.active).toBe(true);
        }
        // In-scope memberships of users holding access are exactly the IdP's.
        for (const [g, members] of target.memberships) {
          const have = after.memberships.get(g)!;
          for (const m of members) expect(have.has(m)).toBe(after.users.has(m));
          for (const m of have) expect(members.has(m) || !target.users.has(m)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never deprovisions a user the IdP has active and in scope', () => {
    fc.assert(
      fc.property(fc.array(directory, { minLength: 1, maxLength: 5 }), policies, (history, policy) => {
        const before = converge(history.slice(0, -1), policy);
        const target = history.at(-1)!;
        for (const d of plan(before, target, policy).usersDeprovisioned) {
          expect(target.users.get(d.externalId)?.active ?? false).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });
});
