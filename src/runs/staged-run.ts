import { type ApplyOptions, type ApplyResult, applyPlan, recordPlan } from '../apply/apply-plan.js';
import type { DestructiveSet } from '../core/approvals.js';
import type { SkippedRecord } from '../core/model.js';
import { type Plan, type PlanCounts, type PlanKind, addCounts, emptyPlan, planCounts, zeroCounts } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import { type GatedPlan, type TenantCounts, gate, tooManySkipped, vanishedFrom } from '../core/safety.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository, type WriteScope } from '../db/directory.repository.js';
import { RunRepository } from '../db/run.repository.js';
import { StagingRepository } from '../db/staging.repository.js';
import { planStaged } from './staged-plan.js';
import type { StagedRead } from './staged-read.js';

/*
 * The decide and apply steps of a run whose read was staged (src/runs/staged-read.ts), in
 * memory that does not grow with the directory: the plan is made chunk by chunk
 * (src/runs/staged-plan.ts) twice.
 *
 * 1. `decideStaged`: every chunk is planned and counted; only the destructive operations
 *    (deprovisions, group deletions, membership removals) are kept, and the safety gate weighs
 *    them against the totals, as `decide` does for a whole plan. A dry run records each chunk's
 *    operations as planned on the way.
 * 2. `applyStaged`: every chunk is planned again and what never waits (creates, updates,
 *    reprovisions, added memberships; the groups with the first chunk) is applied; then the
 *    destructive operations the gate let through. So nothing destructive applies before the
 *    gate saw all of them, and creates and updates stream.
 *
 * Between the two the tenant's state may change (another run applies): the second pass plans
 * against what is there then, which is what a later run would do; the read stamps drop what
 * another run read later (src/runs/read-stamps.ts), as for any run.
 */

export interface StagedDecideInput {
  readonly read: StagedRead;
  readonly scope: { readonly integrationId: string; readonly tenantId: string; readonly runId: string };
  readonly policy: Policy;
  readonly thresholdPercent: number | null;
  readonly current: TenantCounts;
  readonly pending: DestructiveSet;
  readonly approved: DestructiveSet;
  /** A dry run: each chunk's operations are recorded as `planned` (an earlier attempt's first cleared). */
  readonly dryRun?: boolean;
  readonly chunkSize?: number;
  /** Called before each chunk: the run's interruption check (it throws). */
  readonly checkpoint?: () => void;
}

/** The staged read is gone (Postgres restarted and emptied its unlogged tables): the run must read again, never take the emptiness for the IdP's. */
export class StagedReadLostError extends Error {
  override name = 'StagedReadLostError';
  constructor() {
    super('the staged read vanished (PostgreSQL restarted?): the run reads the IdP again');
  }
}

/** Throws StagedReadLostError unless the read is still whole. */
async function assertIntact(db: Db, read: StagedRead): Promise<void> {
  if (!(await new StagingRepository(db).intact(read.readId, read.users))) throw new StagedReadLostError();
}

export type StagedDecision =
  | { readonly kind: 'fail'; readonly reason: string }
  | {
      readonly kind: 'plan';
      /** Every operation of the plan, counted. */
      readonly counts: PlanCounts;
      /** `apply` holds only what the gate decided (destructive operations, a held deprovision's update); creates and updates come from the second pass. */
      readonly gated: GatedPlan;
      /** Records the plan leaves as they are: the read's skipped records, clashes, conflicts. */
      readonly skipped: readonly SkippedRecord[];
    };

/** The destructive operations of a plan (and nothing else): what the gate weighs. */
function destructiveOf(p: Plan): Plan {
  return { ...emptyPlan(), usersDeprovisioned: p.usersDeprovisioned, groupsDeleted: p.groupsDeleted, membershipsRemoved: p.membershipsRemoved };
}

/** Pass 1: plans every chunk, counts it, and gates the destructive operations on the totals (see the module's comment). */
export async function decideStaged(db: Db, input: StagedDecideInput): Promise<StagedDecision> {
  const { read, policy } = input;
  const sizes = { users: { size: read.users }, groups: { size: read.groups.size }, skipped: read.skipped, suspicious: read.suspicious };
  const suspicious = tooManySkipped(sizes);
  if (suspicious) return { kind: 'fail', reason: suspicious };
  let counts = zeroCounts();
  const skipped: SkippedRecord[] = [];
  const destructive: Plan[] = [];
  if (input.dryRun) await new RunRepository(db).clearPlanned(input.scope.runId);
  for await (const { plan } of planStaged(db, read, input.scope, policy, input.chunkSize, input.checkpoint)) {
    counts = addCounts(counts, planCounts(plan));
    skipped.push(...plan.skipped);
    destructive.push(destructiveOf(plan));
    if (input.dryRun) await recordPlan(db, input.scope.runId, plan, policy, 'planned');
  }
  // Had the staging tables been emptied meanwhile, every user would look gone.
  await assertIntact(db, read);
  // What vanishedFrom weighs an empty listing against.
  const local = await new DirectoryRepository(db).countIntegration(input.scope.integrationId);
  const whole = destructiveOf({
    ...emptyPlan(),
    usersDeprovisioned: destructive.flatMap((p) => p.usersDeprovisioned),
    groupsDeleted: destructive.flatMap((p) => p.groupsDeleted),
    membershipsRemoved: destructive.flatMap((p) => p.membershipsRemoved),
  });
  const gated = gate(whole, {
    thresholdPercent: input.thresholdPercent,
    current: input.current,
    suspicious: vanishedFrom(local, sizes),
    pending: input.pending,
    approved: input.approved,
    unidentified: read.skipped.filter((r) => r.kind === 'user' && r.externalId === null).length,
  });
  return { kind: 'plan', counts, gated, skipped };
}

/** What never waits for approval: creates, updates, reprovisions, added memberships, and the groups' creates and updates. */
function streamedOf(p: Plan): Plan {
  return { ...p, usersDeprovisioned: [], groupsDeleted: [], membershipsRemoved: [], skipped: [] };
}

/**
 * Pass 2: applies every chunk's creates and updates as it is planned again, then `gated`
 * (decideStaged's `gated.apply`: the destructive operations the gate let through). Progress
 * (`afterBatch`) counts per kind across all of it.
 */
export async function applyStaged(
  db: Db,
  scope: WriteScope & { readonly tenantId: string },
  read: StagedRead,
  gated: Plan,
  policy: Policy,
  options: ApplyOptions & {
    readonly chunkSize?: number;
    /** Called before each chunk and before the destructive operations: the run's interruption check (it throws). */
    readonly checkpoint?: () => void;
    /** What pass 1 skipped: a record pass 2 skips and pass 1 did not (another integration took its login meanwhile) is returned as skipped. */
    readonly skipped?: readonly SkippedRecord[];
    /** How many operations pass 1 counted that stream (streamedCount): 0 skips the second pass. */
    readonly streamed?: number;
  } = {},
): Promise<ApplyResult> {
  let counts = zeroCounts();
  const skipped: SkippedRecord[] = [];
  let stale = 0;
  const userIds = new Set<string>();
  const groupIds = new Set<string>();
  const apply = async (p: Plan) => {
    const before = counts;
    const result = await applyPlan(db, scope, p, policy, {
      ...options,
      afterBatch: async (kind: PlanKind, applied: number) => options.afterBatch?.(kind, before[kind] + applied),
    });
    counts = addCounts(counts, result.counts);
    skipped.push(...result.skipped);
    stale += result.stale;
    for (const id of result.staleSubjects.userIds) userIds.add(id);
    for (const id of result.staleSubjects.groupIds) groupIds.add(id);
  };
  const known = new Set((options.skipped ?? []).map(skipKey));
  // Pass 1 found nothing to stream (a no-op resync, removals alone): no second pass.
  if (options.streamed !== 0) {
    for await (const { plan } of planStaged(db, read, scope, policy, options.chunkSize, options.checkpoint)) {
      skipped.push(...plan.skipped.filter((r) => !known.has(skipKey(r))));
      await apply(streamedOf(plan));
    }
  }
  options.checkpoint?.();
  await assertIntact(db, read);
  await apply(gated);
  return { counts, skipped, stale, staleSubjects: { userIds: [...userIds], groupIds: [...groupIds] } };
}

/**
 * The membership versions a staged run may record (settledMemberVersions, for a staged read):
 * each group read whole whose listing names no record the run skipped.
 */
export async function settledStagedVersions(db: Db, read: StagedRead, skipped: readonly SkippedRecord[]): Promise<{ externalId: string; version: string }[]> {
  const skippedUsers = [...new Set(skipped.flatMap((r) => (r.kind === 'user' && r.externalId !== null ? [r.externalId] : [])))];
  const listing = new Set(await new StagingRepository(db).groupsListing(read.readId, skippedUsers));
  const settled: { externalId: string; version: string }[] = [];
  for (const group of read.groups.values()) {
    if (!group.membersVersion || read.unreadMembers?.has(group.externalId) || listing.has(group.externalId)) continue;
    settled.push({ externalId: group.externalId, version: group.membersVersion });
  }
  return settled;
}

/** Operations of these counts that never wait for approval (what pass 2 applies chunk by chunk). */
export function streamedCount(counts: PlanCounts): number {
  return counts.usersCreated + counts.usersUpdated + counts.usersReprovisioned + counts.groupsCreated + counts.groupsUpdated + counts.membershipsAdded;
}

function skipKey(r: SkippedRecord): string {
  return `${r.kind}\u0000${r.externalId ?? ''}\u0000${r.reason}`;
}
