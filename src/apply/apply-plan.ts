import type { JsonObject } from '../core/model.js';
import { CHANGE_KINDS, type Plan, type PlanCounts, type UserDeprovision, zeroCounts } from '../core/plan.js';
import type { DeprovisionMode, Policy } from '../core/policy.js';
import { membershipId } from '../core/safety.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository, type WriteScope } from '../db/directory.repository.js';
import { type NewRunChange, RunRepository } from '../db/run.repository.js';

/** Operations per transaction: large enough that round trips do not dominate, small enough to keep transactions short. */
const DEFAULT_BATCH = 2_000;

export interface ApplyOptions {
  /** Operations per transaction. */
  readonly batchSize?: number;
  /** Called after each committed batch (progress, heartbeats, and crash tests). */
  readonly afterBatch?: (kind: keyof Plan, applied: number) => Promise<void> | void;
}

/** One kind of operation, cut into batches; the item type is closed over so steps can share a list. */
interface Step {
  readonly kind: keyof Plan;
  batches(size: number): Iterable<Batch>;
}

interface Batch {
  readonly size: number;
  readonly changes: NewRunChange[];
  write(repo: DirectoryRepository, scope: WriteScope): Promise<void>;
}

/**
 * Applies a plan in batches. Each batch is one transaction holding both the state change and
 * its change-log rows, so the log never claims more than happened. Every write is keyed by
 * (integration, external id) and converges when repeated: after a crash at any point, the
 * next run re-plans from what was committed and finishes the job with no duplicates.
 *
 * Order: groups and users first, so memberships can reference them; updates before creates,
 * so a login a renamed user gave up is free for the new user who takes it; removals last.
 * Returns the counts of what was applied (all of the plan unless it throws).
 */
export async function applyPlan(
  db: Db,
  scope: WriteScope,
  plan: Plan,
  policy: Policy,
  options: ApplyOptions = {},
): Promise<PlanCounts> {
  const applied: Record<keyof Plan, number> = { ...zeroCounts() };
  for (const step of steps(plan, policy)) {
    for (const batch of step.batches(options.batchSize ?? DEFAULT_BATCH)) {
      await db.transaction().execute(async (trx) => {
        await batch.write(new DirectoryRepository(trx), scope);
        await new RunRepository(trx).recordChanges(scope.runId, batch.changes, true);
      });
      applied[step.kind] += batch.size;
      await options.afterBatch?.(step.kind, applied[step.kind]);
    }
  }
  return applied;
}

/** Records planned operations as changes that were not applied (dry runs, held operations). */
export async function recordPlan(db: Db, runId: string, plan: Plan, policy: Policy, batchSize = 1000): Promise<void> {
  const runs = new RunRepository(db);
  for (const step of steps(plan, policy)) {
    for (const batch of step.batches(batchSize)) await runs.recordChanges(runId, batch.changes, false);
  }
}

function steps(plan: Plan, policy: Policy): Step[] {
  return [
    step('groupsCreated', plan.groupsCreated, (r, s, b) => r.upsertGroups(s, b), (g) =>
      change(CHANGE_KINDS.groupsCreated, g.externalId, g.name, { description: g.description }),
    ),
    step('groupsUpdated', plan.groupsUpdated, (r, s, b) => r.upsertGroups(s, b.map((u) => u.group)), (u) =>
      change(CHANGE_KINDS.groupsUpdated, u.group.externalId, u.group.name, { changed: [...u.changed] }),
    ),
    step('usersUpdated', plan.usersUpdated, (r, s, b) => r.updateUsers(s, b.map((u) => u.user)), (u) =>
      change(CHANGE_KINDS.usersUpdated, u.user.externalId, u.user.userName, { changed: [...u.changed] }),
    ),
    step('usersCreated', plan.usersCreated, (r, s, b) => r.grantAccess(s, b), (u) =>
      change(CHANGE_KINDS.usersCreated, u.externalId, u.userName, { email: u.email, status: u.status }),
    ),
    step('usersReprovisioned', plan.usersReprovisioned, (r, s, b) => r.grantAccess(s, b), (u) =>
      change(CHANGE_KINDS.usersReprovisioned, u.externalId, u.userName, { status: u.status }),
    ),
    step('membershipsAdded', plan.membershipsAdded, (r, s, b) => r.addMemberships(s, b), (m) =>
      change(CHANGE_KINDS.membershipsAdded, membershipId(m), `${m.userName} in ${m.groupName}`, null),
    ),
    step('membershipsRemoved', plan.membershipsRemoved, (r, s, b) => r.removeMemberships(s, b), (m) =>
      change(CHANGE_KINDS.membershipsRemoved, membershipId(m), `${m.userName} in ${m.groupName}`, null),
    ),
    step('usersDeprovisioned', plan.usersDeprovisioned, (r, s, b) => deprovision(r, s, b, policy.deprovisionMode), (d) =>
      change(CHANGE_KINDS.usersDeprovisioned, d.externalId, d.userName, { reason: d.reason, status: d.user?.status ?? null, mode: policy.deprovisionMode }),
    ),
    step('groupsDeleted', plan.groupsDeleted, (r, s, b) => r.deleteGroups(s, b.map((g) => g.externalId)), (g) =>
      change(CHANGE_KINDS.groupsDeleted, g.externalId, g.name, null),
    ),
  ];
}

function step<T>(
  kind: keyof Plan,
  items: readonly T[],
  write: (repo: DirectoryRepository, scope: WriteScope, batch: readonly T[]) => Promise<void>,
  describe: (item: T) => NewRunChange,
): Step {
  return {
    kind,
    *batches(size) {
      for (const batch of chunks(items, size)) {
        yield { size: batch.length, changes: batch.map(describe), write: (repo, scope) => write(repo, scope, batch) };
      }
    },
  };
}

function deprovision(
  repo: DirectoryRepository,
  scope: WriteScope,
  batch: readonly UserDeprovision[],
  mode: DeprovisionMode,
): Promise<void> {
  switch (mode) {
    case 'suspend':
      return repo.suspendUsers(scope, batch);
    case 'remove-access':
      return repo.removeAccess(scope, batch, false);
    case 'delete':
      return repo.removeAccess(scope, batch, true);
  }
}

function change(kind: string, externalId: string, subject: string, detail: JsonObject | null): NewRunChange {
  return { kind, externalId, subject, detail };
}

function* chunks<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
