import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LocalState, Snapshot } from '../../src/core/model.js';
import { type Plan, isEmptyPlan, plan } from '../../src/core/plan.js';
import type { Policy } from '../../src/core/policy.js';
import { Ambiguous, type Expected, applyPlan, differences, loginKey, oracle } from '../support/local-model.js';
import { describeSnapshot, describeState, world } from '../support/plan-arbitraries.js';

/**
 * Properties of the pure planner against an oracle written from SPEC (test/support/local-model.ts):
 * starting from directly generated local states, never only from states the planner produced.
 * Replay a failure with PLANPROP_SEED=<seed> (and PLANPROP_RUNS); fast-check prints the path.
 */
const SEED = process.env.PLANPROP_SEED ? Number(process.env.PLANPROP_SEED) : 1_310_713;
const RUNS = process.env.PLANPROP_RUNS ? Number(process.env.PLANPROP_RUNS) : 500;
console.info(`plan properties: seed ${SEED}, ${RUNS} runs (replay with PLANPROP_SEED=${SEED})`);
const params = { seed: SEED, numRuns: RUNS };

interface Step {
  before: LocalState;
  snap: Snapshot;
  plan: Plan;
  after: LocalState;
  unlisted: readonly string[];
}

/** Plans and applies each snapshot in turn from the generated state. */
function run(state: LocalState, snapshots: Snapshot[], policy: Policy): Step[] {
  const steps: Step[] = [];
  let before = state;
  for (const snap of snapshots) {
    const p = plan(before, snap, policy);
    const { state: after, unlisted } = applyPlan(before, p, policy);
    steps.push({ before, snap, plan: p, after, unlisted });
    before = after;
  }
  return steps;
}

/** Every reading of SPEC the oracle allows (see `OracleOptions.clash`). */
function expectations(state: LocalState, snap: Snapshot, policy: Policy): Expected[] {
  const out: Expected[] = [oracle(state, snap, policy, { clash: 'skip' })];
  if (out[0]!.clashing.size > 0) {
    try {
      out.push(oracle(state, snap, policy, { clash: 'take' }));
    } catch (e) {
      if (!(e instanceof Ambiguous)) throw e;
    }
  }
  return out;
}

function context(step: Step, policy: Policy): string {
  return JSON.stringify({ mode: policy.deprovisionMode, before: describeState(step.before), snapshot: describeSnapshot(step.snap) }, null, 1);
}

/** Maps and sets with the same content inserted in another order. */
function reordered(state: LocalState, snap: Snapshot): [LocalState, Snapshot] {
  const rev = <K, V>(m: ReadonlyMap<K, V>) => new Map([...m].reverse());
  const revSet = <T,>(s: ReadonlySet<T>) => new Set([...s].reverse());
  return [
    {
      users: rev(state.users),
      groups: rev(state.groups),
      memberships: new Map([...state.memberships].reverse().map(([g, m]) => [g, revSet(m)])),
      lockedOut: revSet(state.lockedOut),
      others: rev(state.others),
    },
    { ...snap, users: rev(snap.users), groups: rev(snap.groups), memberships: new Map([...snap.memberships].reverse().map(([g, m]) => [g, revSet(m)])) },
  ];
}

describe('plan (properties against the SPEC oracle)', () => {
  it('(a) converges to the oracle from any local state, in every deprovision mode', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          const candidates = expectations(step.before, step.snap, policy);
          const diffs = candidates.map((e) => differences(step.after, e));
          if (diffs.some((d) => d.length === 0)) continue;
          expect.fail(`${context(step, policy)}\nplan: ${JSON.stringify(step.plan)}\ndifferences from SPEC:\n${diffs.map((d) => d.join('\n')).join('\n-- or (clash taken) --\n')}`);
        }
      }),
      params,
    );
  });

  it('(b) is idempotent: planning again after applying finds nothing to do', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          const again = plan(step.after, step.snap, policy);
          if (!isEmptyPlan(again)) expect.fail(`${context(step, policy)}\nsecond plan: ${JSON.stringify({ ...again, skipped: undefined })}`);
        }
      }),
      params,
    );
  });

  it('(c) never gives an account a membership its IdP identity is not listed in', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          for (const m of step.plan.membershipsAdded) {
            expect(step.snap.memberships.get(m.groupExternalId)?.has(m.userExternalId), `${context(step, policy)}\nadded ${m.groupExternalId}/${m.userExternalId}`).toBe(true);
          }
          for (const [g, members] of step.after.memberships) {
            if (!step.snap.groups.has(g)) continue; // a skipped group: its members could not be read
            for (const u of members) {
              expect(step.snap.memberships.get(g)?.has(u), `${context(step, policy)}\n${g}/${u} kept`).toBe(true);
            }
          }
        }
      }),
      params,
    );
  });

  it('(d) never deprovisions a skipped record unless its readable status is inactive', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          const skipped = new Map(step.snap.skipped.filter((r) => r.kind === 'user' && r.externalId !== null).map((r) => [r.externalId!, r]));
          for (const d of step.plan.usersDeprovisioned) {
            const r = skipped.get(d.externalId);
            if (r) expect(r.active, `${context(step, policy)}\ndeprovisioned skipped ${d.externalId}`).toBe(false);
          }
          for (const [id, r] of skipped) {
            const before = step.before.users.get(id);
            if (before?.active && r.active !== false) expect(step.after.users.get(id), `skipped ${id} lost its account`).toEqual(before);
            // A skipped record is not taken: not created, reprovisioned or updated.
            for (const g of [...step.plan.usersCreated, ...step.plan.usersReprovisioned]) expect(g.externalId).not.toBe(id);
            for (const u of step.plan.usersUpdated) expect(u.user.externalId).not.toBe(id);
          }
          // Each skipped record is a warning of the run.
          for (const r of step.snap.skipped) expect(step.plan.skipped).toContainEqual(r);
        }
      }),
      params,
    );
  });

  it('(e) a login another enabled integration owns never creates or renames an account', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          const taken = new Set([...step.before.others].filter(([, o]) => o.ownedByEnabled !== null).map(([k]) => k));
          const ctx = context(step, policy);
          for (const g of [...step.plan.usersCreated, ...step.plan.usersReprovisioned]) {
            const own = step.before.users.get(g.externalId); // an inactive account reactivated under its own login creates nothing
            if (own && loginKey(own.userName) === loginKey(g.userName)) continue;
            expect(taken.has(loginKey(g.userName)), `${ctx}\ngranted ${g.externalId} ${g.userName}`).toBe(false);
          }
          for (const u of step.plan.usersUpdated) {
            const own = step.before.users.get(u.user.externalId)!; // a recase keeps the person: not a rename into a conflict
            if (u.changed.includes('userName') && loginKey(own.userName) !== loginKey(u.user.userName)) expect(taken.has(loginKey(u.user.userName)), `${ctx}\nrenamed ${u.user.externalId}`).toBe(false);
          }
          for (const [id, a] of step.after.users) {
            if (!taken.has(loginKey(a.userName))) continue;
            const before = step.before.users.get(id);
            expect(before && loginKey(before.userName) === loginKey(a.userName), `${ctx}\n${id} now holds ${a.userName}`).toBe(true);
          }
          // Each conflict is a warning naming the record.
          for (const u of step.snap.users.values()) {
            const own = step.before.users.get(u.externalId);
            if (own && loginKey(own.userName) === loginKey(u.userName)) continue;
            if (taken.has(loginKey(u.userName))) expect(step.plan.skipped.map((r) => r.externalId), `${ctx}\nconflict ${u.externalId} not warned`).toContain(u.externalId);
          }
        }
      }),
      params,
    );
  });

  it('(f) is deterministic: the same inputs, in any insertion order, give the same plan', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        const snap = snapshots[0]!;
        const p = plan(state, snap, policy);
        expect(plan(state, snap, policy)).toEqual(p);
        const [state2, snap2] = reordered(state, snap);
        expect(JSON.stringify(plan(state2, snap2, policy))).toBe(JSON.stringify(p));
      }),
      params,
    );
  });

  it('(g) lists every membership a removed account or deleted group takes with it', () => {
    fc.assert(
      fc.property(world, ({ state, snapshots, policy }) => {
        for (const step of run(state, snapshots, policy)) {
          const ctx = context(step, policy);
          expect(step.unlisted, ctx).toEqual([]);
          for (const d of step.plan.groupsDeleted) {
            const had = step.before.memberships.get(d.externalId)?.size ?? 0;
            expect(d.members, `${ctx}\ngroup ${d.externalId} deleted`).toBe(had);
          }
        }
      }),
      params,
    );
  });
});
