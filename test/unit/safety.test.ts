import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DestructiveSet, destructive } from '../../src/core/approvals.js';
import { emptyLocalState } from '../../src/core/model.js';
import { type Plan, emptyPlan, plan } from '../../src/core/plan.js';
import { DEFAULT_POLICY, type Policy } from '../../src/core/policy.js';
import { EMPTY_TALLY, type SafetyContext, addTallies, gate, heldCount, split, staleApprovals, tallyDestructive, tooManySkipped, vanishedListings, weigh } from '../../src/core/safety.js';
import { referenceGate } from '../support/gate-reference.js';
import { USER_IDS, world } from '../support/plan-arbitraries.js';
import { group, local, localGroup, localUser, snapshot, user } from '../support/builders.js';

/** A tenant of `size` active users of whom the IdP still has `kept`, plus `hires` new ones; everyone in g1. */
function scenario(size: number, kept: number, hires = 0, policy: Policy = DEFAULT_POLICY): Plan {
  const users = Array.from({ length: size }, (_, i) => user(`u${String(i).padStart(3, '0')}`));
  const newHires = Array.from({ length: hires }, (_, i) => user(`new${i}`));
  return plan(
    local(users.map((u) => localUser(u)), [localGroup(group('g1'))], { g1: users.map((u) => u.externalId) }),
    snapshot([...users.slice(0, kept), ...newHires], [group('g1')], { g1: users.slice(0, kept).map((u) => u.externalId) }),
    policy,
  );
}

const ctx = (over: Partial<SafetyContext> = {}): SafetyContext => ({
  thresholdPercent: null,
  current: { activeUsers: 100, groups: 1, memberships: 100 },
  suspicious: [],
  pending: new DestructiveSet(),
  approved: new DestructiveSet(),
  ...over,
});

describe('gate', () => {
  it('applies at once the renames that come with held deactivations (updates are never held)', () => {
    const users = Array.from({ length: 10 }, (_, i) => user(`u${i}`));
    const after = users.map((u, i) => (i < 6 ? user(u.externalId, { active: false, status: 'SUSPENDED', userName: `renamed${i}@example.com` }) : u));
    const p = plan(local(users.map((u) => localUser(u)), []), snapshot(after, []), DEFAULT_POLICY);
    const result = gate(p, ctx({ current: { activeUsers: 10, groups: 0, memberships: 0 } }));
    expect(result.held.usersDeprovisioned).toHaveLength(6);
    expect(result.apply.usersUpdated.map((u) => [u.user.externalId, u.user.userName, u.user.active])).toEqual(
      after.slice(0, 6).map((u) => [u.externalId, u.userName, false]),
    );
    // Not held: the deprovision itself refreshes the record, nothing is applied twice.
    const quiet = gate(p, ctx({ current: { activeUsers: 10, groups: 0, memberships: 0 }, thresholdPercent: 90 }));
    expect(quiet.apply.usersDeprovisioned).toHaveLength(6);
    expect(quiet.apply.usersUpdated).toEqual([]);
  });

  it.each([
    // size, kept, threshold, held?
    [100, 80, null, false], // exactly 20%: not more than the threshold
    [100, 79, null, true], // 21%
    [100, 70, 50, false], // 30% under a 50% threshold
    [10, 5, null, false], // 50%, but only 5 users
    [10, 4, null, true], // 6 users and 60%
  ])('tenant of %i keeping %i with threshold %s: held=%s', (size, kept, threshold, held) => {
    const result = gate(scenario(size, kept), ctx({ current: { activeUsers: size, groups: 1, memberships: size }, thresholdPercent: threshold }));
    expect(result.held.usersDeprovisioned.length > 0).toBe(held);
    expect(result.apply.usersDeprovisioned.length).toBe(held ? 0 : size - kept);
    expect(result.reasons.length > 0).toBe(held);
  });

  it('holds deprovisions past the threshold, with the memberships that go with them, but lets creates through', () => {
    const result = gate(scenario(100, 70, 3), ctx());
    expect(result.apply.usersCreated).toHaveLength(3);
    expect(result.apply.usersDeprovisioned).toEqual([]);
    expect(result.apply.membershipsRemoved).toEqual([]);
    expect(result.held.usersDeprovisioned).toHaveLength(30);
    expect(result.held.membershipsRemoved).toHaveLength(30);
    expect(result.reasons).toEqual(["the plan deprovisions 30 of the tenant's 100 active users, more than the 20% threshold"]);
  });

  it('holds the deprovisions of users missing from a read that holds a record without a readable id', () => {
    const p = scenario(100, 99);
    const result = gate(p, ctx({ unidentified: 1 }));
    expect(result.held.usersDeprovisioned.map((d) => d.externalId)).toEqual(['u099']);
    expect(result.held.membershipsRemoved.map((m) => m.userExternalId)).toEqual(['u099']);
    expect(result.reasons).toEqual(['1 IdP record(s) without a readable id may be users missing from the read, so their deprovisions wait']);
  });

  it('guards membership removals on their own: a group emptied while its users stay', () => {
    const users = Array.from({ length: 10 }, (_, i) => user(`u${i}`));
    const p = plan(
      local(users.map((u) => localUser(u)), [localGroup(group('g1'))], { g1: users.map((u) => u.externalId) }),
      snapshot(users, [group('g1')], { g1: [] }),
      DEFAULT_POLICY,
    );
    const result = gate(p, ctx({ current: { activeUsers: 10, groups: 1, memberships: 10 } }));
    expect(result.held.membershipsRemoved).toHaveLength(10);
    expect(result.apply.membershipsRemoved).toEqual([]);
  });

  it('counts and holds the memberships a deleted group takes with it, with the group', () => {
    // Two app groups of 10 members each unassigned while their users stay: 2 deletions (under
    // the minimum) but 20 memberships, so the deletions wait with their memberships.
    const users = Array.from({ length: 20 }, (_, i) => user(`u${String(i).padStart(2, '0')}`));
    const ids = users.map((u) => u.externalId);
    const p = plan(
      local(users.map((u) => localUser(u)), [localGroup(group('gA')), localGroup(group('gB'))], { gA: ids.slice(0, 10), gB: ids.slice(10) }),
      snapshot(users, []),
      DEFAULT_POLICY,
    );
    expect(p.groupsDeleted.map((g) => [g.externalId, g.members])).toEqual([['gA', 10], ['gB', 10]]);
    expect(p.membershipsRemoved).toHaveLength(20);
    const result = gate(p, ctx({ current: { activeUsers: 20, groups: 2, memberships: 20 } }));
    expect(result.apply.groupsDeleted).toEqual([]);
    expect(result.apply.membershipsRemoved).toEqual([]);
    expect(result.held.groupsDeleted).toHaveLength(2);
    expect(result.held.membershipsRemoved).toHaveLength(20);
  });

  it('applies a small group deletion with its memberships together', () => {
    const users = [user('u1'), user('u2')];
    const p = plan(
      local(users.map((u) => localUser(u)), [localGroup(group('gA')), localGroup(group('gB'))], { gA: ['u1', 'u2'], gB: ['u1'] }),
      snapshot(users, [group('gB')], { gB: ['u1'] }),
      DEFAULT_POLICY,
    );
    const result = gate(p, ctx({ current: { activeUsers: 2, groups: 2, memberships: 3 } }));
    expect(result.apply.groupsDeleted.map((g) => g.externalId)).toEqual(['gA']);
    expect(result.apply.membershipsRemoved.map((m) => [m.groupExternalId, m.userExternalId, m.with])).toEqual([
      ['gA', 'u1', 'group'],
      ['gA', 'u2', 'group'],
    ]);
  });

  it('holds a vanished listing whatever the threshold', () => {
    const result = gate(scenario(3, 0), ctx({ current: { activeUsers: 3, groups: 1, memberships: 3 }, suspicious: ['the IdP listed no users at all'] }));
    expect(result.held.usersDeprovisioned).toHaveLength(3);
    expect(result.held.membershipsRemoved).toHaveLength(3);
    expect(result.reasons).toEqual(['the IdP listed no users at all: held whatever the threshold']);
  });

  it('keeps a removal that goes with an account with that account', () => {
    const p = scenario(100, 70, 0, { deprovisionMode: 'remove-access' });
    expect(p.membershipsRemoved.every((m) => m.with === 'account')).toBe(true);
    const held = gate(p, ctx());
    // Only the deprovisions count: the removals follow them.
    expect(held.reasons).toEqual(["the plan deprovisions 30 of the tenant's 100 active users, more than the 20% threshold"]);
    expect(held.held.membershipsRemoved).toHaveLength(30);
    const small = gate(scenario(100, 95, 0, { deprovisionMode: 'remove-access' }), ctx());
    expect(small.apply.membershipsRemoved).toHaveLength(5);
  });

  it('keeps holding removals an earlier held run waits on, even under the threshold', () => {
    const p = scenario(100, 98);
    const pending = new DestructiveSet([destructive.deprovision(p.usersDeprovisioned[0]!)]);
    const result = gate(p, ctx({ pending }));
    expect(result.held.usersDeprovisioned.map((d) => d.externalId)).toEqual(['u098']);
    expect(result.apply.usersDeprovisioned.map((d) => d.externalId)).toEqual(['u099']);
  });

  it('applies approved removals past the threshold and reports approved ones that went stale', () => {
    const p = scenario(100, 70);
    const gone = { kind: 'user.deprovisioned', externalId: 'gone' } as const;
    const approved = new DestructiveSet([...p.usersDeprovisioned.map(destructive.deprovision), ...p.membershipsRemoved.map(destructive.membershipRemove), gone]);
    const result = gate(p, ctx({ approved }));
    expect(result.apply.usersDeprovisioned).toHaveLength(30);
    expect(result.held.usersDeprovisioned).toEqual([]);
    expect(result.stale).toEqual([gone]);
  });

  it('passes a first run straight through', () => {
    const p = plan(emptyLocalState(), snapshot([user('u1')], []), DEFAULT_POLICY);
    expect(gate(p, ctx({ current: { activeUsers: 0, groups: 0, memberships: 0 } })).apply).toEqual(p);
  });
});

describe('vanished listings', () => {
  const u = user('u1');
  it('an empty users or groups listing while the tenant has some is suspicious', () => {
    const state = local([localUser(u)], [localGroup(group('g1'))]);
    expect(vanishedListings(state, snapshot([], []))).toEqual([
      'the IdP listed no users at all, while the tenant has 1 active users from it',
      'the IdP listed no groups at all, while the tenant has 1 groups from it',
    ]);
    expect(vanishedListings(state, snapshot([u], [group('g1')]))).toEqual([]);
    expect(vanishedListings(emptyLocalState(), snapshot([], []))).toEqual([]);
  });

  it("carries the connector's own suspicions", () => {
    expect(vanishedListings(emptyLocalState(), { ...snapshot([], []), suspicious: ['bindings name group X'] })).toEqual(['bindings name group X']);
  });
});

describe('too many skipped records', () => {
  const skipped = (n: number) => Array.from({ length: n }, (_, i) => ({ kind: 'user' as const, externalId: `bad${i}`, subject: `bad${i}`, reason: 'NUL' }));
  it('tolerates up to max(10, 1% of the scope)', () => {
    const users = Array.from({ length: 2000 }, (_, i) => user(`u${i}`));
    expect(tooManySkipped({ ...snapshot(users.slice(0, 50), []), skipped: skipped(10) })).toBeUndefined();
    expect(tooManySkipped({ ...snapshot(users.slice(0, 50), []), skipped: skipped(11) })).toMatch(/^11 of 61 IdP records cannot be taken/);
    expect(tooManySkipped({ ...snapshot(users, []), skipped: skipped(20) })).toBeUndefined();
    expect(tooManySkipped({ ...snapshot(users, []), skipped: skipped(21) })).toMatch(/more than the 20 a run tolerates/);
  });
});

describe('gate over a sliding window (scim pushes)', () => {
  const recent = (deprovisions: number) => ({ windowMs: 3_600_000, deprovisions, groupDeletions: 0, membershipRemovals: 0 });

  it('holds a deprovision that, with those applied in the window, passes the threshold', () => {
    // 100 users before the window; 20 already deprovisioned one by one; one more makes 21 of 100.
    const result = gate(scenario(80, 79), ctx({ current: { activeUsers: 80, groups: 1, memberships: 80 }, recent: recent(20) }));
    expect(result.held.usersDeprovisioned).toHaveLength(1);
    expect(result.reasons.join(' ')).toMatch(/with 20 applied in the last hour, 21 of the 100 there were/);
  });

  it('applies one that stays within the threshold with the window counted', () => {
    const result = gate(scenario(81, 80), ctx({ current: { activeUsers: 81, groups: 1, memberships: 81 }, recent: recent(19) }));
    expect(result.apply.usersDeprovisioned).toHaveLength(1);
    expect(result.held.usersDeprovisioned).toHaveLength(0);
  });

  it('holds nothing of a kind the plan does not remove, however many the window holds', () => {
    const result = gate(scenario(50, 50, 3), ctx({ current: { activeUsers: 50, groups: 1, memberships: 50 }, recent: recent(40) }));
    expect(result.reasons).toEqual([]);
    expect(result.apply.usersCreated).toHaveLength(3);
  });
});

describe('gate, chunk by chunk', () => {
  // A staged run too large to hold its destructive operations gates them on their tally
  // (weigh) and splits each chunk by that verdict as it is planned again (src/runs/staged-run.ts):
  // that must hold back and let through exactly what gating the whole plan does.
  it('weighing the tally and splitting each chunk gives what gating the whole plan gives, and what the gate gave before it was split', () => {
    const ops = (p: Plan) => [
      ...p.usersDeprovisioned.map(destructive.deprovision),
      ...p.groupsDeleted.map(destructive.groupDelete),
      ...p.membershipsRemoved.map(destructive.membershipRemove),
    ];
    const sorted = (items: readonly unknown[]) => items.map((i) => JSON.stringify(i)).sort();
    fc.assert(
      fc.property(
        world,
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: USER_IDS.length, maxLength: USER_IDS.length }),
        fc.array(fc.constantFrom('approved', 'pending', 'none'), { minLength: 40, maxLength: 40 }),
        fc.constantFrom(null, 0, 10, 50, 100),
        fc.boolean(),
        fc.integer({ min: 0, max: 2 }),
        fc.record({ activeUsers: fc.integer({ min: 0, max: 8 }), groups: fc.integer({ min: 0, max: 5 }), memberships: fc.integer({ min: 0, max: 20 }) }),
        ({ state, snapshots, policy }, chunkOf, marks, thresholdPercent, vanished, unidentified, current) => {
          const planned = plan(state, snapshots[0]!, policy);
          const approved = new DestructiveSet();
          const pending = new DestructiveSet();
          ops(planned).forEach((op, i) => (marks[i % marks.length] === 'approved' ? approved.add(op) : marks[i % marks.length] === 'pending' ? pending.add(op) : undefined));
          // An approval the plan no longer holds: stale either way.
          approved.add({ kind: 'user.deprovisioned', externalId: 'gone' });
          const ctx: SafetyContext = { thresholdPercent, current, suspicious: vanished ? ['the IdP listed no users at all'] : [], pending, approved, unidentified };
          const whole = gate(planned, ctx);
          // The gate before it was split into weigh and split decides the same.
          const reference = referenceGate(planned, ctx);
          for (const part of ['apply', 'held'] as const) {
            for (const kind of ['usersDeprovisioned', 'groupsDeleted', 'membershipsRemoved', 'usersUpdated'] as const) {
              expect(sorted(whole[part][kind] as readonly unknown[])).toEqual(sorted(reference[part][kind] as readonly unknown[]));
            }
          }
          expect(whole.reasons).toEqual(reference.reasons);
          expect(sorted(whole.stale)).toEqual(sorted(reference.stale));

          // Chunks cut by user, as planStaged cuts them; the group deletions come with the first.
          const chunk = (id: string) => chunkOf[USER_IDS.indexOf(id)] ?? 0;
          const chunks = [0, 1, 2].map((k) => ({
            ...emptyPlan(),
            usersDeprovisioned: planned.usersDeprovisioned.filter((d) => chunk(d.externalId) === k),
            groupsDeleted: k === 0 ? planned.groupsDeleted : [],
            membershipsRemoved: planned.membershipsRemoved.filter((m) => chunk(m.userExternalId) === k),
          }));
          const verdict = weigh(chunks.map((c) => tallyDestructive(c, ctx)).reduce(addTallies, EMPTY_TALLY), planned.groupsDeleted, ctx);
          const parts = chunks.map((c) => split(c, verdict, ctx));
          const seen = new DestructiveSet();
          for (const p of parts) for (const op of p.approvedSeen) seen.add(op);

          for (const kind of ['usersDeprovisioned', 'groupsDeleted', 'membershipsRemoved'] as const) {
            expect(sorted(parts.flatMap((p): readonly unknown[] => p.apply[kind]))).toEqual(sorted(whole.apply[kind]));
            expect(sorted(parts.flatMap((p): readonly unknown[] => p.held[kind]))).toEqual(sorted(whole.held[kind]));
          }
          // The updates that come with held deprovisions apply either way.
          expect(sorted(parts.flatMap((p) => p.apply.usersUpdated))).toEqual(sorted(whole.apply.usersUpdated.slice(planned.usersUpdated.length)));
          const held = parts.reduce((n, p) => n + heldCount(p.held), 0);
          expect(held > 0 ? verdict.reasons : []).toEqual(whole.reasons);
          expect(sorted(staleApprovals(ctx, seen))).toEqual(sorted(whole.stale));
        },
      ),
      { numRuns: 300 },
    );
  });
});
