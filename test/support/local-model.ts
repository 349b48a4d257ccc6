import type { LocalState, LocalUser } from '../../src/core/model.js';
import type { Plan } from '../../src/core/plan.js';
import type { Policy } from '../../src/core/policy.js';
import { localGroup, localUser } from './builders.js';

/**
 * An in-memory model of what apply does to the tenant's state, written independently of the
 * Postgres apply, so property tests can check the planner's convergence without IO.
 */
export function applyInMemory(state: LocalState, plan: Plan, policy: Policy): LocalState {
  const users = new Map<string, LocalUser>(state.users);
  const groups = new Map(state.groups);
  const memberships = new Map([...state.memberships].map(([g, m]) => [g, new Set(m)]));
  const lockedOut = new Set(state.lockedOut);
  for (const g of plan.groupsCreated) groups.set(g.externalId, localGroup(g)), memberships.set(g.externalId, new Set());
  for (const u of plan.groupsUpdated) groups.set(u.group.externalId, localGroup(u.group));
  for (const u of plan.usersCreated) users.set(u.externalId, localUser(u, true));
  for (const u of plan.usersReprovisioned) users.set(u.externalId, localUser(u, true)), lockedOut.delete(u.externalId);
  for (const u of plan.usersUpdated) users.set(u.user.externalId, localUser(u.user, users.get(u.user.externalId)!.active));
  for (const m of plan.membershipsAdded) memberships.get(m.groupExternalId)!.add(m.userExternalId);
  for (const m of plan.membershipsRemoved) memberships.get(m.groupExternalId)!.delete(m.userExternalId);
  for (const d of plan.usersDeprovisioned) {
    const before = users.get(d.externalId)!;
    if (policy.deprovisionMode === 'suspend') {
      users.set(d.externalId, d.user ? localUser(d.user, false) : { ...before, active: false });
    } else {
      users.delete(d.externalId);
      lockedOut.add(d.externalId);
      for (const m of memberships.values()) m.delete(d.externalId);
    }
  }
  for (const g of plan.groupsDeleted) groups.delete(g.externalId), memberships.delete(g.externalId);
  return { users, groups, memberships, lockedOut, others: state.others };
}
