import { describe, expect, it } from 'vitest';
import { emptyLocalState } from '../../src/core/model.js';
import { type Plan, plan } from '../../src/core/plan.js';
import { DEFAULT_POLICY } from '../../src/core/policy.js';
import { type SafetyContext, gate, keyOf } from '../../src/core/safety.js';
import { group, local, localGroup, localUser, snapshot, user } from '../support/builders.js';

/** A tenant of `size` active users of whom the IdP still has `kept`, plus `hires` new ones. */
function scenario(size: number, kept: number, hires = 0): Plan {
  const users = Array.from({ length: size }, (_, i) => user(`u${String(i).padStart(3, '0')}`));
  const newHires = Array.from({ length: hires }, (_, i) => user(`new${i}`));
  return plan(
    local(users.map((u) => localUser(u)), [localGroup(group('g1'))], { g1: users.map((u) => u.externalId) }),
    snapshot([...users.slice(0, kept), ...newHires], [group('g1')], { g1: users.slice(0, kept).map((u) => u.externalId) }),
    DEFAULT_POLICY,
  );
}

const ctx = (over: Partial<SafetyContext> = {}): SafetyContext => ({
  thresholdPercent: null,
  activeUsers: 100,
  snapshotUsers: 100,
  pending: new Set(),
  approved: new Set(),
  ...over,
});

describe('gate', () => {
  it.each([
    // size, kept, threshold, held?
    [100, 80, null, false], // exactly 20%: not more than the threshold
    [100, 79, null, true], // 21%
    [100, 70, 50, false], // 30% under a 50% threshold
    [10, 5, null, false], // 50%, but only 5 users
    [10, 4, null, true], // 6 users and 60%
  ])('tenant of %i keeping %i with threshold %s: held=%s', (size, kept, threshold, held) => {
    const result = gate(scenario(size, kept), ctx({ activeUsers: size, snapshotUsers: kept, thresholdPercent: threshold }));
    expect(result.held.usersDeprovisioned.length > 0).toBe(held);
    expect(result.apply.usersDeprovisioned.length).toBe(held ? 0 : size - kept);
    expect(result.reasons.length > 0).toBe(held);
  });

  it('holds every destructive operation but lets creates through', () => {
    const p = scenario(100, 70, 3);
    const result = gate(p, ctx({ snapshotUsers: 73 }));
    expect(result.apply.usersCreated).toHaveLength(3);
    expect(result.apply.usersDeprovisioned).toEqual([]);
    expect(result.apply.membershipsRemoved).toEqual([]);
    expect(result.held.usersDeprovisioned).toHaveLength(30);
    expect(result.reasons).toEqual(["the plan deprovisions 30 of the tenant's 100 active users, more than the 20% threshold"]);
  });

  it('holds an empty snapshot even in a tiny tenant', () => {
    const result = gate(scenario(3, 0), ctx({ activeUsers: 3, snapshotUsers: 0 }));
    expect(result.held.usersDeprovisioned).toHaveLength(3);
    expect(result.reasons).toEqual(['the IdP returned no users at all, which would deprovision 3']);
  });

  it('keeps holding removals an earlier held run waits on, even under the threshold', () => {
    const p = scenario(100, 98);
    const pending = new Set([keyOf.deprovision(p.usersDeprovisioned[0]!)]);
    const result = gate(p, ctx({ pending }));
    expect(result.held.usersDeprovisioned.map((d) => d.externalId)).toEqual(['u098']);
    expect(result.apply.usersDeprovisioned.map((d) => d.externalId)).toEqual(['u099']);
  });

  it('applies approved removals past the threshold and reports approved ones that went stale', () => {
    const p = scenario(100, 70);
    const approved = new Set([...p.usersDeprovisioned.map(keyOf.deprovision), 'user.deprovisioned:gone']);
    const result = gate(p, ctx({ approved }));
    expect(result.apply.usersDeprovisioned).toHaveLength(30);
    expect(result.held.usersDeprovisioned).toEqual([]);
    expect(result.stale).toEqual(['user.deprovisioned:gone']);
  });

  it('passes a first run straight through', () => {
    const p = plan(emptyLocalState(), snapshot([user('u1')], []), DEFAULT_POLICY);
    expect(gate(p, ctx({ activeUsers: 0, snapshotUsers: 1 })).apply).toEqual(p);
  });
});
