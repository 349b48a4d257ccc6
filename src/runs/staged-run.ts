import PQueue from 'p-queue';
import { type ApplyOptions, type ApplyResult, applyPlan, recordPlan } from '../apply/apply-plan.js';
import { type DestructiveOp, DestructiveSet } from '../core/approvals.js';
import type { SkippedRecord } from '../core/model.js';
import { type GroupDelete, type Plan, type PlanCounts, type PlanKind, addCounts, emptyPlan, planCounts, totalChanges, zeroCounts } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import { EMPTY_TALLY, type GateVerdict, type GatedPlan, type SafetyContext, type TenantCounts, addTallies, gate, split, staleApprovals, tallyDestructive, tooManySkipped, vanishedFrom, weigh } from '../core/safety.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository, type WriteScope } from '../db/directory.repository.js';
import { RunRepository } from '../db/run.repository.js';
import { StagingRepository } from '../db/staging.repository.js';
import { joinPlans, planStaged } from './staged-plan.js';
import type { StagedRead } from './staged-read.js';

/*
 * The decide and apply steps of a run whose read was staged (src/runs/staged-read.ts), in
 * memory that does not grow with the directory: the plan is made chunk by chunk
 * (src/runs/staged-plan.ts), once.
 *
 * 1. `decideStaged` plans and counts every chunk. What never waits for approval (creates,
 *    updates, reprovisions, added memberships; the groups with the first chunk) is applied as
 *    soon as its chunk is planned (SPEC "Safety": creates and updates apply at once), up to
 *    `concurrency` chunks at a time, each on its own connection, while the next is planned.
 *    Only the destructive operations (deprovisions, group deletions, membership removals) are
 *    kept; the safety gate weighs them against the totals, as `decide` does for a whole plan.
 *    A dry run records each chunk's operations as planned instead.
 * 2. `applyStaged` applies the destructive operations the gate let through. So nothing
 *    destructive applies before the gate saw all of them.
 *
 * Chunks hold disjoint users, so two chunks applied at once never write the same account,
 * person or membership (a login is one user's: clashes were skipped when the read finished);
 * the groups they reference are written with the first chunk, before any other is applied.
 */

export interface StagedDecideInput {
  readonly read: StagedRead;
  readonly scope: { readonly integrationId: string; readonly tenantId: string; readonly runId: string };
  readonly policy: Policy;
  readonly thresholdPercent: number | null;
  readonly current: TenantCounts;
  readonly pending: DestructiveSet;
  readonly approved: DestructiveSet;
  /** A dry run: each chunk's operations are recorded as `planned` (reconcile cleared an earlier attempt's), and nothing applies. */
  readonly dryRun?: boolean;
  /** Not a dry run: how each chunk's creates and updates apply as it is planned. */
  readonly apply?: StagedApply;
  readonly chunkSize?: number;
  /** Called before each chunk: the run's interruption check (it throws). */
  readonly checkpoint?: () => void;
  /** DESTRUCTIVE_KEPT unless given (tests take a few, so that both ways of gating run). */
  readonly destructiveKept?: number;
}

/** How decideStaged applies what never waits. */
export interface StagedApply {
  readonly scope: WriteScope;
  /** As for applyPlan; `afterBatch` counts per kind across all chunks. */
  readonly options: ApplyOptions;
  /** Chunks applied at once, each in its own transactions: DEFAULT_CONCURRENCY unless given. */
  readonly concurrency?: number;
  /** The rows the tenant held when the run started (active accounts, groups, memberships): when statistics need refreshing (statisticsDue). 0 unless given. */
  readonly baseRows?: number;
}

/**
 * Chunks applied at once. Postgres runs one statement on one core: two chunks side by side use
 * a second core while the first waits on its own statement (about 1.8x the rows per second on
 * the 2-core bench machine; more would only queue on the pool and the tenant's grant lock).
 */
export const DEFAULT_CONCURRENCY = 2;

/**
 * When a staged run refreshes Postgres's statistics between chunks (statisticsDue): once it has
 * applied at least `min` changes, and again each time the tenant's rows have grown `growth`-fold
 * since. An initial sync starts from empty tables, and until autovacuum gets to them Postgres
 * plans each chunk's reads for those: the last chunk of a W1M initial sync joined all 5M
 * memberships to the groups, which the statistics put at 37 rows (11.7 s, against
 * milliseconds). Plans go wrong when estimates are off by large factors, and each refresh
 * samples a fixed number of rows, so a geometric schedule suffices: about 4 refreshes at 1M
 * users, none in a run that changes little of a large tenant.
 */
export const STATISTICS_REFRESH = { min: 10_000, growth: 4 } as const;

/**
 * Whether a run that has applied `applied` changes, and last refreshed statistics at
 * `refreshedAt` of them (0: never), refreshes them now; `base`: the rows the tenant held
 * when the run started (its active accounts, groups and memberships).
 */
export function statisticsDue(applied: number, refreshedAt: number, base = 0): boolean {
  return applied >= STATISTICS_REFRESH.min && base + applied >= (base + refreshedAt) * STATISTICS_REFRESH.growth;
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
      /** `apply` holds only what the gate decided (destructive operations, a held deprovision's update): the rest applied already (`streamed`). */
      readonly gated: GatedPlan;
      /** Records the plan leaves as they are: the read's skipped records, clashes, conflicts. */
      readonly skipped: readonly SkippedRecord[];
      /** What applying the creates and updates did (nothing for a dry run). */
      readonly streamed: ApplyResult;
      /**
       * More destructive operations than DESTRUCTIVE_KEPT: `gated` holds none of them, only the
       * verdict's reasons; applyStaged plans them again and applies or holds them by `verdict`.
       */
      readonly deferred?: DeferredGate;
    };

/** A gate decided on a plan's tally, to split its destructive operations by as they are planned again. */
export interface DeferredGate {
  readonly verdict: GateVerdict;
  readonly ctx: SafetyContext;
}

/** The destructive operations of a plan (and nothing else): what the gate weighs. */
function destructiveOf(p: Plan): Plan {
  return { ...emptyPlan(), usersDeprovisioned: p.usersDeprovisioned, groupsDeleted: p.groupsDeleted, membershipsRemoved: p.membershipsRemoved };
}

/** What never waits for approval: creates, updates, reprovisions, added memberships, and the groups' creates and updates. */
function streamedOf(p: Plan): Plan {
  return { ...p, usersDeprovisioned: [], groupsDeleted: [], membershipsRemoved: [], skipped: [] };
}

/**
 * Destructive operations a staged run keeps in memory for the gate. A plan with more (a mass
 * deactivation, a listing that vanished) is gated on its tally instead (safety.weigh), and its
 * destructive operations are planned again, chunk by chunk, to apply or hold them (applyStaged).
 */
export const DESTRUCTIVE_KEPT = 20_000;

/** Plans every chunk, applies what never waits, counts it, and gates the destructive operations on the totals (see the module's comment). */
export async function decideStaged(db: Db, input: StagedDecideInput): Promise<StagedDecision> {
  const { read, policy } = input;
  const sizes = { users: { size: read.users }, groups: { size: read.groups.size }, skipped: read.skipped, suspicious: read.suspicious };
  const suspicious = tooManySkipped(sizes);
  if (suspicious) return { kind: 'fail', reason: suspicious };
  let counts = zeroCounts();
  const skipped: SkippedRecord[] = [];
  // The destructive operations while they are few (DESTRUCTIVE_KEPT), and their tally always.
  let kept: Plan[] | undefined = [];
  let keptCount = 0;
  const keptLimit = input.destructiveKept ?? DESTRUCTIVE_KEPT;
  let tally = EMPTY_TALLY;
  const groupsDeleted: GroupDelete[] = [];
  const applier = input.apply && !input.dryRun ? new ChunkApplier(db, input.apply, policy, input.checkpoint) : undefined;
  try {
    let first = true;
    for await (const { plan } of planStaged(db, read, input.scope, policy, input.chunkSize, input.checkpoint)) {
      counts = addCounts(counts, planCounts(plan, policy));
      skipped.push(...plan.skipped);
      if (input.dryRun) await recordPlan(db, input.scope, plan, policy, 'planned');
      else {
        tally = addTallies(tally, tallyDestructive(plan, input));
        groupsDeleted.push(...plan.groupsDeleted);
        keptCount += plan.usersDeprovisioned.length + plan.groupsDeleted.length + plan.membershipsRemoved.length;
        if (keptCount > keptLimit) kept = undefined;
        kept?.push(destructiveOf(plan));
      }
      // The first chunk holds the groups every other chunk's memberships reference: it applies alone.
      if (applier) await applier.add(streamedOf(plan), first);
      first = false;
    }
  } catch (error) {
    // Nothing more applies once the run stopped (interrupted, superseded, Postgres gone).
    await applier?.stop(error);
    throw error;
  }
  await applier?.settle();
  const streamed = applier?.result() ?? emptyResult();
  // Had the staging tables been emptied meanwhile, every user would look gone.
  await assertIntact(db, read);
  // What vanishedFrom weighs an empty listing against.
  const local = await new DirectoryRepository(db).countIntegration(input.scope.integrationId);
  const ctx: SafetyContext = {
    thresholdPercent: input.thresholdPercent,
    current: input.current,
    suspicious: vanishedFrom(local, sizes),
    pending: input.pending,
    approved: input.approved,
    unidentified: read.skipped.filter((r) => r.kind === 'user' && r.externalId === null).length,
  };
  if (!kept) {
    // Too many to hold: the verdict now, the operations when applyStaged plans them again.
    const verdict = weigh(tally, groupsDeleted, ctx);
    return { kind: 'plan', counts, gated: { apply: emptyPlan(), held: emptyPlan(), reasons: verdict.reasons, stale: [] }, skipped, streamed, deferred: { verdict, ctx } };
  }
  return { kind: 'plan', counts, gated: gate(joinPlans(kept), ctx), skipped, streamed };
}

/**
 * Applies chunks' plans, up to `concurrency` at once, and sums what they did. `add` returns
 * once a slot is free for the next chunk (or, `alone`, once the chunk is applied), so the
 * caller plans the next chunk while the others apply, and no more than `concurrency` chunks
 * are in memory. The first chunk to fail stops the others: those waiting never start, those applying
 * stop at their next batch, and `add` or `settle` throws its error once none is applying (and
 * any statistics refresh under way has ended). So a run that is interrupted, superseded or has
 * lost Postgres commits nothing more than the batches already under way.
 */
class ChunkApplier {
  private readonly queue: PQueue;
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  /** What the finished chunks did. */
  private total = emptyResult();
  /** Applied so far, per kind, as batches commit. */
  private readonly progress: Record<PlanKind, number> = { ...zeroCounts() };
  /** Changes applied when statistics were last refreshed (statisticsDue), and the refresh under way. */
  private refreshedAt = 0;
  private refreshing = false;

  constructor(
    private readonly db: Db,
    private readonly apply: StagedApply,
    private readonly policy: Policy,
    /** The run's interruption check (it throws), before a chunk starts. */
    private readonly checkpoint?: () => void,
  ) {
    this.queue = new PQueue({ concurrency: apply.concurrency ?? DEFAULT_CONCURRENCY });
  }

  async add(plan: Plan, alone: boolean): Promise<void> {
    await this.throwIfFailed();
    if (alone) await this.queue.onIdle();
    const task = this.queue.add(() => this.applyChunk(plan)).catch((error: unknown) => this.fail(error));
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
    if (alone) await task;
    // Returns once a slot is free for the next chunk: at most `concurrency` chunks are held,
    // applying or being planned (memory), while the slots stay busy.
    while (this.queue.size + this.queue.pending >= this.queue.concurrency) await Promise.race(this.running);
    await this.throwIfFailed();
  }

  /** Waits for every chunk; throws the first chunk's error. */
  async settle(): Promise<void> {
    await this.queue.onIdle();
    await Promise.all([...this.running]);
    await this.throwIfFailed();
  }

  /** Stops for `error` (the run stopped while planning): no chunk starts, those applying stop at their next batch. */
  async stop(error: unknown): Promise<void> {
    this.fail(error);
    await Promise.all([...this.running]);
  }

  result(): ApplyResult {
    return this.total;
  }

  private fail(error: unknown): void {
    // Chunks still waiting start and return at once (applyChunk): a cleared p-queue task's promise never settles.
    this.failure ??= { error };
  }

  private async throwIfFailed(): Promise<void> {
    if (!this.failure) return;
    await Promise.all([...this.running]);
    throw this.failure.error;
  }

  private async applyChunk(plan: Plan): Promise<void> {
    if (this.failure) return;
    this.checkpoint?.();
    // What this chunk applied so far, per kind: afterBatch reports the totals over all chunks.
    const mine: Record<PlanKind, number> = { ...zeroCounts() };
    const result = await applyPlan(this.db, this.apply.scope, plan, this.policy, {
      ...this.apply.options,
      afterBatch: async (kind: PlanKind, applied: number) => {
        this.progress[kind] += applied - mine[kind];
        mine[kind] = applied;
        await this.apply.options.afterBatch?.(kind, this.progress[kind]);
        // Another chunk failed: this one stops at its batch boundary too.
        if (this.failure) throw this.failure.error;
      },
    }).catch((error: unknown) => {
      // Before the queue starts the next chunk, which must find the failure.
      this.fail(error);
      throw error;
    });
    this.total = joinResults(this.total, result);
    await this.refreshStatistics();
  }

  /**
   * Refreshes the planner's statistics when the chunks applied so far call for it
   * (statisticsDue); one refresh at a time. The chunk keeps its slot meanwhile. The refresh
   * skips a table another session vacuums or analyzes, and its failure is not the run's: the
   * statistics only speed the run up, and a Postgres that is gone fails the next chunk.
   */
  private async refreshStatistics(): Promise<void> {
    const applied = totalChanges(this.total.counts);
    if (this.refreshing || this.failure || !statisticsDue(applied, this.refreshedAt, this.apply.baseRows)) return;
    this.checkpoint?.();
    this.refreshedAt = applied;
    this.refreshing = true;
    await new DirectoryRepository(this.db).refreshStatistics().catch(() => undefined);
    this.refreshing = false;
  }
}

function emptyResult(): ApplyResult {
  return { counts: zeroCounts(), skipped: [], stale: 0, staleSubjects: { userIds: [], groupIds: [] } };
}

/** What applyStaged did: applyPlan's result, with what a deferred gate held and found stale. */
export interface StagedApplyResult extends ApplyResult {
  /** Destructive operations a deferred gate held, recorded as `held` on the way (0 otherwise: reconcile records `gated.held`). */
  readonly heldRecorded: number;
  /** Approved operations the plan no longer holds, when the gate was deferred (otherwise `gated.stale`). */
  readonly staleApprovals?: readonly DestructiveOp[];
}

/**
 * Applies `gated` (decideStaged's `gated.apply`: the destructive operations the gate let
 * through) after what decideStaged applied (`streamed`), and returns both as one result.
 * With a `deferred` gate (too many destructive operations to hold), plans every chunk again and
 * applies or holds (records as `held`) its destructive operations by the verdict. Progress
 * (`afterBatch`) counts per kind across all of it.
 */
export async function applyStaged(
  db: Db,
  scope: WriteScope & { readonly tenantId: string },
  read: StagedRead,
  gated: Plan,
  policy: Policy,
  streamed: ApplyResult,
  options: ApplyOptions & {
    /** Called before the destructive operations (and each chunk of them): the run's interruption check (it throws). */
    readonly checkpoint?: () => void;
    readonly deferred?: DeferredGate;
    readonly chunkSize?: number;
  } = {},
): Promise<StagedApplyResult> {
  options.checkpoint?.();
  await assertIntact(db, read);
  let total: ApplyResult = streamed;
  const apply = async (plan: Plan) => {
    const before = total.counts;
    const result = await applyPlan(db, scope, plan, policy, {
      ...options,
      afterBatch: async (kind: PlanKind, applied: number) => options.afterBatch?.(kind, before[kind] + applied),
    });
    total = joinResults(total, result);
  };
  if (!options.deferred) {
    await apply(gated);
    return { ...total, heldRecorded: 0 };
  }
  const { verdict, ctx } = options.deferred;
  const seen = new DestructiveSet();
  let heldRecorded = 0;
  for await (const { plan } of planStaged(db, read, scope, policy, options.chunkSize, options.checkpoint)) {
    const { apply: now, held, approvedSeen } = split(destructiveOf(plan), verdict, ctx);
    for (const op of approvedSeen) seen.add(op);
    await apply(now);
    heldRecorded += await recordPlan(db, scope, held, policy, 'held');
  }
  return { ...total, heldRecorded, staleApprovals: staleApprovals(ctx, seen) };
}

function joinResults(a: ApplyResult, b: ApplyResult): ApplyResult {
  return {
    counts: addCounts(a.counts, b.counts),
    skipped: [...a.skipped, ...b.skipped],
    stale: a.stale + b.stale,
    staleSubjects: {
      userIds: [...new Set([...a.staleSubjects.userIds, ...b.staleSubjects.userIds])],
      groupIds: [...new Set([...a.staleSubjects.groupIds, ...b.staleSubjects.groupIds])],
    },
  };
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
