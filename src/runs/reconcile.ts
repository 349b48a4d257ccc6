import pRetry from 'p-retry';
import { type ApplyOptions, type ApplyResult, applyPlan, planKeys, recordPlan } from '../apply/apply-plan.js';
import type { Config } from '../config.js';
import { IdpReadError, type ReadHints, type SnapshotSource, type SubjectNames, type SubjectRead, type TargetedSource } from '../connectors/connector.js';
import { type ConnectorSettings, createConnector } from '../connectors/index.js';
import { decide } from '../core/decide.js';
import type { LocalState, SkippedRecord, Snapshot } from '../core/model.js';
import { type Plan, type PlanCounts, addCounts, planCounts, totalChanges } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import type { GatedPlan, TenantCounts } from '../core/safety.js';
import { SnapshotError, type SnapshotSink, completeSnapshot, settledMemberVersions } from '../core/snapshot.js';
import { DecryptionError } from '../crypto.js';
import { type Db, isDataError } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import { ScimRepository, type UnappliedWrite } from '../db/scim.repository.js';
import type { RunLane, RunMode, RunTrigger } from '../db/schema.js';
import { ScimSnapshotSource } from '../connectors/scim/scim.source.js';
import type { Integration, PulledIntegration } from '../db/integration.repository.js';
import { RunRepository, type RunSummary } from '../db/run.repository.js';
import { IntegrationRepository } from '../db/integration.repository.js';
import { type ReadInterval, databaseNow, declareRead, pruneReads } from './read-stamps.js';
import { readNarrowed } from './targeted-read.js';
import { StagingRepository } from '../db/staging.repository.js';
import { StagedSnapshot, type StagedRead } from './staged-read.js';
import { type DeferredGate, applyStaged, decideStaged, settledStagedVersions } from './staged-run.js';
import { type Credentials, scrubCredentials } from '../integrations/credentials.js';
import { IntegrationService } from '../integrations/integration.service.js';
import type { Logger } from '../log.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { loadApprovals, settleApprovals } from './approvals.js';
import { type ReconcileOutcome, RunRecorder } from './run-recorder.js';
import { egressFor } from '../egress.js';
import { outboundRefusal } from '../outbound.js';
import { RunInterruptedError, throwIfInterrupted, untilInterrupted } from './interruption.js';

/** How often every group's members are read in full, whatever their versions say. */
const FULL_MEMBER_READ_EVERY_MS = 24 * 3_600_000;

/** How far back removals a scim integration applied count towards its thresholds (SPEC "Safety"). */
export const SCIM_REMOVAL_WINDOW_MS = 3_600_000;

/**
 * Writes a targeted scim run takes at most; with more waiting (a "Provision Users" burst) the
 * run reads the whole scope instead, which costs the same whatever was written.
 */
const TARGETED_WRITES = 5_000;

/**
 * How often a scim integration's runs read everything anyway (SPEC: runs heal drift): a push's
 * run is full when no full run succeeded for this long. A scim integration has no schedule.
 */
export const SCIM_FULL_EVERY_MS = 24 * 3_600_000;

/** Writes a full scim run settles at most (the rest are no-ops for the next targeted run). */
const FULL_RUN_SETTLES = 200_000;

/** How often a targeted or incremental run reads again the subjects whose writes were dropped for another run's read (see src/runs/read-stamps.ts). */
const MAX_REREADS = 2;

/** Changes after which a run refreshes Postgres's statistics (see DirectoryRepository.refreshStatistics). */
const LARGE_WRITE = 10_000;

export interface ReconcileDeps {
  readonly db: Db;
  readonly config: Config;
  readonly log: Logger;
  /** Tests swap in their own connector (fault injection); production builds one per provider. */
  readonly connectorFor?: (integration: PulledIntegration, credentials: Credentials) => SnapshotSource;
  readonly connectorSettings?: ConnectorSettings;
  readonly heartbeatMs?: number;
  readonly batchSize?: number;
  /** Users per chunk of a staged run (STAGED_CHUNK unless given): tests take a few, so that chunks apply side by side. */
  readonly stagedChunkSize?: number;
  /** Destructive operations a staged run keeps in memory for the gate (DESTRUCTIVE_KEPT unless given): tests take a few, so that both ways of gating run. */
  readonly stagedDestructiveKept?: number;
  /** Called after each applied batch; crash tests throw here. */
  readonly afterBatch?: () => Promise<void> | void;
  /** Where a follow-up run is put (the worker's queue); without it, the worker's sweep enqueues it. */
  readonly queue?: DirsyncQueue;
}

export type { ReconcileOutcome };

/**
 * One run, start to end, as a thin pipeline: claim it, **read** the whole scope, **decide**
 * (plan, gate and approvals, pure: src/core/decide.ts), **apply** (or record, for a dry run),
 * and record the outcome. Failures of the IdP, of its data as a whole or of the stored
 * credentials end the run as `failed` with a sentence saying why, and change nothing; records
 * that cannot be taken one by one are skipped with a warning; anything else (Postgres gone)
 * is thrown for the queue to retry.
 */
export async function reconcile(deps: ReconcileDeps, runId: string, stop?: AbortSignal): Promise<ReconcileOutcome> {
  const runs = new RunRepository(deps.db);
  const claim = await runs.claim(runId);
  if (claim.kind === 'busy') return { kind: 'busy' };
  if (claim.kind === 'missing') return { kind: 'skipped', reason: `run ${runId} does not exist` };
  if (claim.kind === 'finished') return { kind: 'skipped', reason: `run ${runId} already ${claim.run.status}` };
  const { run, attempt } = claim;
  const log = deps.log.child({ runId, integrationId: run.integrationId });
  const abandon = (why: string) => pRetry(() => runs.abandonAttempt(runId, attempt, why), { retries: 5, minTimeout: 200, maxTimeout: 2_000 }).catch(() => {});
  const recorder = await RunRecorder.start(runs, run.id, attempt, deps.heartbeatMs ?? 1_000, log).catch(async (error: unknown) => {
    // Postgres went away right after the claim: the retry takes the run over at once.
    await abandon((error as Error).message);
    throw error;
  });
  // The run stops (RunInterruptedError) when the worker shuts down (`stop`, BullMQ's job signal),
  // or when a heartbeat finds the run taken over by another attempt: checked while reading and
  // after every committed batch, so a run that is no longer this worker's applies nothing more.
  const signal = stop ? AbortSignal.any([stop, recorder.superseded]) : recorder.superseded;
  /** A staged read's rows, removed when the attempt ends however it ends (retention prunes what a killed one left). */
  let staged: StagedRead | undefined;
  try {
    // What an earlier attempt recorded as planned or held, this one plans again from its own
    // read and records whole (or, failing, holds nothing): without this, a worker that died
    // after recording them and before the run ended would leave each one listed twice.
    await runs.clearUnapplied(runId);
    const integrations = new IntegrationService(deps.db, deps.config);
    const integration = await integrations.get(run.integrationId);
    if (!integration.enabled) return await recorder.fail('the integration is disabled');

    // Read.
    log.info({ provider: integration.provider, dryRun: run.dryRun }, 'run started');
    const read = await untilInterrupted(readTenantAndIdp(deps, integrations, integration, recorder, run, signal), signal);
    if (read.kind === 'failed') return await recorder.fail(read.error);
    const { current, pushes } = read;
    if (read.kind === 'staged') staged = read.staged;

    // Decide.
    const policy: Policy = { deprovisionMode: integration.deprovisionMode };
    const approvals = await loadApprovals(runs, run);
    const scope = { tenantId: integration.tenantId, integrationId: integration.id, runId };
    const applyOptions: ApplyOptions = {
      batchSize: deps.batchSize,
      ...(read.readAt && { read: { runId, start: read.readAt, ...(read.assumedInScope && { assumedInScope: read.assumedInScope }) } satisfies ReadInterval }),
      afterBatch: async (kind, count) => {
        recorder.applied(kind, count);
        await deps.afterBatch?.();
        throwIfInterrupted(signal);
      },
    };
    let decision: {
      readonly kind: 'plan';
      readonly counts: PlanCounts;
      readonly gated: GatedPlan;
      readonly skipped: readonly SkippedRecord[];
      readonly plan?: Plan;
      /** What a staged run applied while deciding (creates and updates). */
      readonly streamed?: ApplyResult;
      /** A staged run's gate decided on its tally: its destructive operations are applied or held as they are planned again. */
      readonly deferred?: DeferredGate;
    };
    if (read.kind === 'staged') {
      // A dry run's plan is recorded chunk by chunk as it is made; otherwise creates and updates apply as it is made.
      if (!run.dryRun) recorder.applying();
      const staged = await decideStaged(deps.db, {
        read: read.staged,
        scope,
        policy,
        thresholdPercent: integration.thresholdPercent,
        current,
        ...approvals,
        dryRun: run.dryRun,
        apply: { scope, options: applyOptions, baseRows: current.activeUsers + current.groups + current.memberships },
        ...(deps.stagedChunkSize && { chunkSize: deps.stagedChunkSize }),
        ...(deps.stagedDestructiveKept !== undefined && { destructiveKept: deps.stagedDestructiveKept }),
        checkpoint: () => throwIfInterrupted(signal),
      });
      if (staged.kind === 'fail') return await recorder.fail(`${staged.reason}. Nothing was changed.`);
      decision = staged;
    } else {
      // Pushes arrive one at a time: a mass deactivation is many small runs, so removals are
      // weighed over a sliding window; and an empty push is what the IdP asked for, not a lost listing.
      // So are targeted and incremental reads: a subject found gone is what the IdP says, not a lost listing.
      const narrowed = integration.provider === 'scim' || read.narrowed;
      const pushed = narrowed ? { pushed: true, recent: await runs.recentRemovals(integration.id, SCIM_REMOVAL_WINDOW_MS) } : {};
      const whole = decide({ local: read.local, snapshot: read.snapshot, policy, thresholdPercent: integration.thresholdPercent, current, ...approvals, ...pushed });
      if (whole.kind === 'fail') return await recorder.fail(`${whole.reason}. Nothing was changed.`);
      decision = { ...whole, counts: planCounts(whole.plan, policy) };
    }
    recorder.planned(totalChanges(decision.counts));

    // Apply.
    throwIfInterrupted(signal);
    if (run.dryRun) {
      if (decision.plan) await recordPlan(deps.db, scope, decision.plan, policy, 'planned');
      return await recorder.finish('succeeded', decision.counts, [...read.notes, ...decision.skipped]);
    }
    const result =
      read.kind === 'staged' && decision.streamed
        ? await applyStaged(deps.db, scope, read.staged, decision.gated.apply, policy, decision.streamed, {
            ...applyOptions,
            checkpoint: () => throwIfInterrupted(signal),
            ...(decision.deferred && { deferred: decision.deferred }),
            ...(deps.stagedChunkSize && { chunkSize: deps.stagedChunkSize }),
          })
        : { ...(await applyPlan(deps.db, scope, decision.gated.apply, policy, applyOptions)), heldRecorded: 0 };
    // Approved operations the plan no longer holds: known once a deferred gate's chunks were planned.
    const staleApproved = ('staleApprovals' in result && result.staleApprovals) || decision.gated.stale;
    throwIfInterrupted(signal);
    // Writes dropped for another run whose read may be later (src/runs/read-stamps.ts). That run
    // may have dropped its own for this one's sake (reads that overlap): the run reads those
    // subjects once more, from now, and applies what is still to do.
    let stale = result.stale;
    let dropped = result.staleSubjects;
    let staleTotal = 0;
    let appliedCounts = result.counts;
    const rereadSkipped: SkippedRecord[] = [];
    let rereadHeld = 0;
    const heldReasons = [...decision.gated.reasons];
    // What a re-read holds again (a subject held and dropped both) is recorded once.
    const heldKeys = planKeys(decision.gated.held, policy);
    // A deferred gate recorded what it held already (asked only when there is something to re-read).
    if (result.heldRecorded > 0 && stale > 0) for (const key of await runs.heldKeys(runId)) heldKeys.add(key);
    for (let pass = 1; stale > 0 && pass <= MAX_REREADS; pass++) {
      recorder.stat('staleSkipped', (staleTotal += stale));
      const again = await untilInterrupted(rereadNamed(deps, integrations, integration, run, dropped, signal), signal);
      if (again.kind === 'failed') break;
      // A read of named subjects: one found gone is what the IdP says, not a lost listing (as for targeted runs).
      const recent = await runs.recentRemovals(integration.id, SCIM_REMOVAL_WINDOW_MS);
      const next = decide({ local: again.local, snapshot: again.snapshot, policy, thresholdPercent: integration.thresholdPercent, current: again.current, ...approvals, pushed: true, recent });
      if (next.kind === 'fail') break;
      const more = await applyPlan(deps.db, scope, next.gated.apply, policy, { batchSize: deps.batchSize, read: { runId, start: again.readAt } });
      throwIfInterrupted(signal);
      const newlyHeld = await recordPlan(deps.db, scope, next.gated.held, policy, 'held', 1000, heldKeys);
      for (const key of planKeys(next.gated.held, policy)) heldKeys.add(key);
      if (newlyHeld > 0) heldReasons.push(...next.gated.reasons.filter((r) => !heldReasons.includes(r)));
      rereadHeld += newlyHeld;
      appliedCounts = addCounts(appliedCounts, more.counts);
      rereadSkipped.push(...more.skipped);
      stale = more.stale;
      dropped = more.staleSubjects;
    }
    if (stale > 0) {
      recorder.stat('staleSkipped', (staleTotal += stale));
      // Still dropped after re-reading: a targeted run reads them again later.
      await followUp(deps, integration.id, run.trigger, dropped, log);
    }
    if (read.readAt) await pruneReads(deps.db, integration.id);
    const counts = await recorder.withEarlierAttempts(appliedCounts);
    if (totalChanges(counts) >= LARGE_WRITE) await new DirectoryRepository(deps.db).refreshStatistics();
    // A run taken over meanwhile records nothing more: its new attempt records what it holds.
    throwIfInterrupted(signal);
    await recordPlan(deps.db, scope, decision.gated.held, policy, 'held');
    const approvedStale = await settleApprovals(runs, run, approvals, staleApproved);
    const skipped = [...read.notes, ...decision.skipped, ...result.skipped, ...rereadSkipped];
    const held = totalChanges(planCounts(decision.gated.held, policy)) + result.heldRecorded + rereadHeld;
    if (read.feedCursor !== undefined) {
      // The feed is read on from here: what changed since is in the next incremental run (held
      // removals wait on their approval, which reads everything again).
      await new IntegrationRepository(deps.db).setFeedCursor(integration.id, read.feedCursor);
    }
    if (held > 0) {
      // Membership versions are not recorded: with removals held, the members are not as read.
      const why = heldReasons.length > 0 ? heldReasons.join('; ') : 'removals an earlier held run planned still wait for approval';
      const reason = `${held} removals wait for approval (\`dirsync run approve ${runId}\`): ${why}.`;
      return await recorder.finish('held', counts, skipped, { held, reason });
    }
    if (approvedStale > 0) recorder.stat('approvedStale', approvedStale);
    if (read.pushesRead) {
      // The IdP was read for what was pushed: the pushes are done with (the API is the truth).
      await new ScimRepository(deps.db).settle(read.pushesRead.map((w) => w.seq));
      recorder.stat('pushesRead', read.pushesRead.length);
    }
    if (pushes) {
      // What was pushed is applied: forgotten, but for records left as they were (tried again next run).
      const left = new Set(skipped.flatMap((r) => (r.externalId === null ? [] : [r.externalId])));
      const settled = pushes.filter((w) => !left.has(w.resourceId)).map((w) => w.seq);
      await new ScimRepository(deps.db).settle(settled);
      recorder.stat('pushesApplied', settled.length);
    }
    if (result.skipped.length === 0 && stale === 0 && result.stale === 0 && !read.narrowed) {
      // Everything planned was applied: next time, groups whose membership version is unchanged
      // need not be re-read; but for groups listing a skipped record, which lack its membership.
      const settled = read.kind === 'staged' ? await settledStagedVersions(deps.db, read.staged, decision.skipped) : settledMemberVersions(read.snapshot, read.unread, decision.skipped);
      await new DirectoryRepository(deps.db).recordMemberVersions(integration.id, settled);
    }
    return await recorder.finish('succeeded', counts, skipped);
  } catch (error) {
    if (error instanceof RunInterruptedError) {
      // Shutting down: the attempt is given up so that the next worker takes the run over at once
      // (RunRecorder.start there counts what this one committed). Superseded: not ours to touch.
      if (error.reason === 'shutdown') {
        await recorder.halt();
        await abandon(error.message);
      }
      log.warn({ reason: error.reason }, error.reason === 'shutdown' ? 'run interrupted by shutdown; the next worker takes it over' : 'run stopped: another attempt has it');
      throw error;
    }
    // Data Postgres refuses outside the per-record paths would be refused again on every
    // retry: the run fails for good, saying so, rather than being retried as an outage.
    if (isDataError(error)) {
      log.error({ err: (error as Error).message }, 'run failed: Postgres refused its data');
      return await recorder.fail(`Postgres refused data of this run (${(error as Error).message}). Changes committed before this were kept; the next run converges.`);
    }
    // Postgres went away (or anything unforeseen): the queue retries the job; let the retry
    // take the run over at once. Postgres gets a few seconds to come back; after that the run
    // is taken over once its heartbeat is stale.
    await recorder.halt();
    await abandon((error as Error).message);
    log.warn({ err: (error as Error).message }, 'run attempt stopped; the queue retries it');
    throw error;
  } finally {
    recorder.stop();
    if (staged) await new StagingRepository(deps.db).clear(staged.readId).catch(() => {});
  }
}

/** What every kind of read answers besides the IdP's data. */
interface ReadCommon {
  readonly current: TenantCounts;
  /** For a scim integration: the pushed writes this read covers, to settle once applied. */
  readonly pushes?: readonly UnappliedWrite[];
  /** For an okta or authentik integration taking pushes (`--scim`): the pushes this read of the IdP covers, forgotten once applied. */
  readonly pushesRead?: readonly UnappliedWrite[];
  /** A targeted or incremental read: named subjects only (see src/runs/targeted-read.ts). */
  readonly narrowed: boolean;
  /** When the IdP read began (src/runs/read-stamps.ts): applying drops what others may have read later. Absent for scim and dry runs. */
  readonly readAt?: Date;
  /** Users a targeted read took as in scope from the tenant's state (ReadInterval.assumedInScope). */
  readonly assumedInScope?: readonly string[];
  /** Where the change feed is read from once this run is applied. */
  readonly feedCursor?: string;
  /** What the run tells beyond skipped records: logins nobody has, why it read everything. */
  readonly notes: readonly SkippedRecord[];
}

type ReadResult =
  | (ReadCommon & {
      readonly kind: 'read';
      readonly local: LocalState;
      readonly snapshot: Snapshot;
      /** Groups whose members were taken from the tenant, not read (the connector's `unreadMembers`). */
      readonly unread?: ReadonlySet<string>;
    })
  /** A full read staged in Postgres (src/runs/staged-read.ts), planned and applied chunk by chunk (src/runs/staged-run.ts). */
  | (ReadCommon & { readonly kind: 'staged'; readonly staged: StagedRead })
  | { readonly kind: 'failed'; readonly error: string };

/**
 * The read step. A targeted or incremental run of a pulled integration reads the named
 * subjects (and, incremental, those the IdP's change feed names since the last run) alone; one
 * whose feed cannot be read reads the whole scope instead, saying why. Otherwise: the
 * integration's whole scope from the IdP, and the tenant's state. Members of groups whose
 * version did not change are taken from the tenant's state; users entering the scope get theirs
 * read from the IdP (or every group is read again if the connector cannot). An IdP that cannot
 * be read, or credentials that cannot be opened, fail the run.
 *
 * A run that applies declares its read (src/runs/read-stamps.ts) before it loads the tenant's
 * state, so that nothing it writes overwrites what another run read later.
 *
 * For a scim integration the writes not yet applied are read first, so that whatever they
 * name is in the read that follows; a targeted run reads those subjects alone.
 */
async function readTenantAndIdp(
  deps: ReconcileDeps,
  integrations: IntegrationService,
  integration: Integration,
  recorder: RunRecorder,
  run: RunSummary,
  /** Stops the connector's retries once the run is interrupted (the caller stops waiting at once). */
  signal: AbortSignal,
): Promise<ReadResult> {
  // Lane from the mode it was asked for (a scim run's lane has no rate limit to share).
  const source = await snapshotSourceFor(deps, integrations, integration, run.mode === 'full' ? 'full' : 'quick');
  if ('error' in source) return { kind: 'failed', error: source.error };
  const { connector, credentials } = source;
  const mode = run.mode;
  recorder.reading(connector.stats);
  const directory = new DirectoryRepository(deps.db);
  const runs = new RunRepository(deps.db);
  const readStart = Date.now();
  const notes: SkippedRecord[] = [];
  let feedAfterFallback: string | undefined;
  let pushesRead: UnappliedWrite[] | undefined;
  try {
    let pushes: UnappliedWrite[] | undefined;
    // scim: whether pushed users and groups are compared with the tenant on cheap columns
    // (fingerprint, active, userName; member versions) and read whole only where they differ.
    let compareFirst = false;
    if (connector instanceof ScimSnapshotSource) {
      pushes = await new ScimRepository(deps.db).unapplied(integration.id, mode === 'targeted' ? TARGETED_WRITES + 1 : FULL_RUN_SETTLES);
      if (mode === 'targeted') {
        const due = await fullRunDue(deps.db, integration);
        if (pushes.length <= TARGETED_WRITES && !due) {
          const [{ local, snapshot }, current] = await Promise.all([connector.readSubjects(pushes, directory, integration.tenantId), directory.countTenant(integration.tenantId)]);
          recorder.read(connector.stats, Date.now() - readStart, snapshot);
          return { kind: 'read', local, snapshot, current, pushes, narrowed: true, notes };
        }
        await runs.widenToFull(recorder.runId);
        pushes = await new ScimRepository(deps.db).unapplied(integration.id, FULL_RUN_SETTLES);
        // Too much written to target: compared first. A run that is due (and any full run asked
        // for) reads everything whole: it is the proof that heals a tenant changed behind dirsync's back.
        compareFirst = !due;
      }
    } else if ((mode === 'targeted' || mode === 'incremental') && !run.dryRun && isTargetedSource(connector)) {
      const named = await readNamed(deps, integration, connector, recorder, run, signal, notes);
      if (named.kind === 'whole') pushesRead = named.pushesRead;
      if (named.kind === 'narrowed') {
        const { kind: _, ...narrowed } = named;
        recorder.read(connector.stats, Date.now() - readStart, narrowed.snapshot);
        return { kind: 'read', ...narrowed, narrowed: true, notes };
      }
      await runs.changeMode(run.id, 'full');
      // The feed was read up to here: the whole read that follows covers what it named.
      feedAfterFallback = named.feedCursor;
    }
    // A pulled integration's full read, when it applies, is declared: see src/runs/read-stamps.ts.
    const declares = !(connector instanceof ScimSnapshotSource) && !run.dryRun;
    // Pushes stored before the read are covered by it (`--scim`).
    if (declares && integration.scimPush && !pushesRead) pushesRead = await new ScimRepository(deps.db).unapplied(integration.id, FULL_RUN_SETTLES);
    const readAt = declares ? await databaseNow(deps.db) : undefined;
    if (readAt) await runs.markRead(run.id, readAt);
    const feedCursor = readAt && isTargetedSource(connector) ? (feedAfterFallback ?? connector.feedCursorAt?.(readAt)) : undefined;
    const membersVersions = pushes && !compareFirst ? new Map<string, string>() : await directory.loadMemberVersions(integration.id, FULL_MEMBER_READ_EVERY_MS);
    // What was pushed is compared with the accounts before it is read whole (see ScimSnapshotSource);
    // an IdP is read first, so that the tenant's state is as fresh as the read.
    const pushedLocal = pushes ? await directory.loadLocalState(integration.id, integration.tenantId) : undefined;
    if (!pushes && isStageable(connector)) {
      // A full read of the IdP: staged in Postgres as it comes, not held whole (issue 19).
      const staging = new StagingRepository(deps.db);
      const readId = await staging.begin(run.id);
      const sink = new StagedSnapshot(deps.db, readId);
      try {
        await connector.readInto(sink, signal, { membersVersions });
        const staged = await sink.finish();
        if (readAt) await declareRead(deps.db, integration.id, run.id, 'all');
        const current = await directory.countTenant(integration.tenantId);
        if (staged.unreadMembers) {
          // Users entering the scope may be members of groups that were not re-read.
          const entering = await staging.entering(readId, integration.id);
          if (entering.length > 0) {
            const groupsOf = await connector.readGroupsOf(entering, signal);
            const pairs = [...groupsOf].flatMap(([user, groups]) => groups.filter((g) => staged.unreadMembers!.has(g)).map((group) => ({ group, user })));
            await staging.stageMembers(readId, pairs.map((p) => p.group), pairs.map((p) => p.user));
          }
        }
        recorder.read(connector.stats, Date.now() - readStart, { users: { size: staged.users }, groups: staged.groups, skipped: staged.skipped, suspicious: staged.suspicious, ...(staged.unreadMembers && { unreadMembers: staged.unreadMembers }) });
        return {
          kind: 'staged',
          staged,
          current,
          ...(pushesRead && { pushesRead }),
          narrowed: false,
          ...(readAt && { readAt }),
          ...(feedCursor !== undefined && { feedCursor }),
          notes,
        };
      } catch (error) {
        // Writes still queued would land after the clear, and stay.
        await sink.abort();
        await staging.clear(readId).catch(() => {});
        throw error;
      }
    }
    let snapshot = await connector.readSnapshot(signal, { membersVersions, ...(pushedLocal && compareFirst && { users: pushedLocal.users }) });
    if (readAt) await declareRead(deps.db, integration.id, run.id, 'all');
    const [local, current] = await Promise.all([pushedLocal ?? directory.loadLocalState(integration.id, integration.tenantId), directory.countTenant(integration.tenantId)]);
    let complete = completeSnapshot(snapshot, local);
    if (snapshot.unreadMembers) {
      // Users entering the scope may be members of groups that were not re-read.
      const entering = [...snapshot.users.values()].filter((u) => u.active && !local.users.get(u.externalId)?.active).map((u) => u.externalId);
      if (entering.length > 0) {
        if (connector.readGroupsOf) complete = completeSnapshot(snapshot, local, await connector.readGroupsOf(entering, signal));
        else complete = snapshot = await connector.readSnapshot(signal);
      }
    }
    recorder.read(connector.stats, Date.now() - readStart, snapshot);
    return {
      kind: 'read',
      local,
      snapshot: complete,
      current,
      ...(snapshot.unreadMembers && { unread: snapshot.unreadMembers }),
      ...(pushes && { pushes }),
      ...(pushesRead && { pushesRead }),
      narrowed: false,
      ...(readAt && { readAt }),
      ...(feedCursor !== undefined && { feedCursor }),
      notes,
    };
  } catch (error) {
    if (credentials) scrubCredentials(error, credentials);
    if (!(error instanceof IdpReadError || error instanceof SnapshotError)) throw error;
    recorder.read(connector.stats, Date.now() - readStart);
    deps.log.warn({ err: error.message, runId: recorder.runId }, 'IdP read failed; nobody deprovisioned');
    return { kind: 'failed', error: `${error.message}. Nothing was changed.` };
  }
}

/**
 * A targeted or incremental run's read (see src/runs/targeted-read.ts): the subjects its
 * triggers named, plus (incremental) those the change feed names since the last run; or
 * `whole` when the run must read the whole scope instead (no feed position yet, the feed cannot
 * be read, a change it cannot narrow), with the reason added to `notes`.
 */
async function readNamed(
  deps: ReconcileDeps,
  integration: Integration,
  connector: SnapshotSource & TargetedSource,
  recorder: RunRecorder,
  run: RunSummary,
  signal: AbortSignal,
  notes: SkippedRecord[],
): Promise<
  | ({ readonly kind: 'narrowed' } & Omit<Extract<ReadResult, { kind: 'read' }>, 'kind' | 'narrowed' | 'notes'>)
  /** Read the whole scope instead; `feedCursor`: where the feed was read up to, when it was. */
  | { readonly kind: 'whole'; readonly feedCursor?: string; readonly pushesRead?: UnappliedWrite[] }
> {
  const runs = new RunRepository(deps.db);
  let names = await runs.subjects(run.id);
  let feedCursor: string | undefined;
  // `--scim`: what was pushed is read back through the API, by login (push for latency, the API for truth).
  const pushes = integration.scimPush ? await pushedLogins(deps.db, integration.id) : undefined;
  if (pushes === 'too many') {
    notes.push({ kind: 'user', externalId: null, subject: 'SCIM pushes', reason: `read the whole scope instead: more than ${TARGETED_WRITES} pushed writes wait` });
    return { kind: 'whole', pushesRead: await new ScimRepository(deps.db).unapplied(integration.id, FULL_RUN_SETTLES) };
  }
  if (pushes) names = mergeNames(names, { userIds: [], logins: pushes.logins, groupIds: [] });
  if (run.mode === 'incremental') {
    const cursor = await new IntegrationRepository(deps.db).feedCursor(integration.id);
    const feed = cursor !== null && connector.readChanges ? await connector.readChanges(cursor, signal) : undefined;
    const fallback = !connector.readChanges
      ? 'this IdP has no change feed dirsync reads'
      : !feed
        ? 'no change-feed position yet (it is taken by a full run)'
        : feed.kind === 'unavailable'
          ? feed.reason
          : feed.unnarrowable.length > 0
            ? feed.unnarrowable.join('; ')
            : undefined;
    if (fallback || feed?.kind !== 'changes') {
      notes.push({ kind: 'user', externalId: null, subject: 'change feed', reason: `read the whole scope instead of the changes: ${fallback}` });
      return { kind: 'whole', ...(feed?.kind === 'changes' && { feedCursor: feed.cursor }), ...(pushes && { pushesRead: pushes.writes }) };
    }
    recorder.stat('feedEvents', feed.events);
    names = mergeNames(names, feed.names);
    feedCursor = feed.cursor;
  }
  const directory = new DirectoryRepository(deps.db);
  const current = await directory.countTenant(integration.tenantId);
  // A targeted read costs the IdP about two requests a user; past what a full read costs, the
  // run reads the whole scope instead (a group taken off the app names all its members).
  const tooWide = tooWideFor(current);
  const whole = () => ({ kind: 'whole' as const, ...(feedCursor !== undefined && { feedCursor }), ...(pushes && { pushesRead: pushes.writes }) });
  if (tooWide(names.userIds.length + names.logins.length)) {
    notes.push({ kind: 'user', externalId: null, subject: 'targeted read', reason: `read the whole scope instead: ${names.userIds.length + names.logins.length} users named, more than a full read costs` });
    return whole();
  }
  const readAt = await databaseNow(deps.db);
  await runs.markRead(run.id, readAt);
  const narrowedRead = await readNarrowed(deps.db, connector, directory, integration, names, run.id, signal, tooWide);
  if (narrowedRead === 'too wide') {
    notes.push({ kind: 'user', externalId: null, subject: 'targeted read', reason: 'read the whole scope instead: the groups named took more members in or out than a full read costs' });
    return whole();
  }
  const { local, snapshot, read } = narrowedRead;
  notes.push(...loginNotes(integration, names.logins, read));
  recorder.stat('subjectsRead', read.userIds.length + read.groupIds.length);
  return {
    kind: 'narrowed',
    local,
    snapshot,
    current,
    readAt,
    ...(read.assumedInScope?.length && { assumedInScope: read.assumedInScope }),
    ...(feedCursor !== undefined && { feedCursor }),
    ...(pushes && { pushesRead: pushes.writes }),
  };
}

/**
 * What became of logins named by hand (`--user`) that the read did not take: no IdP user has the
 * login, or the user is outside the scope (a login the read took, or skipped as a bad record,
 * needs no word here). One warning each.
 */
function loginNotes(integration: Integration, logins: readonly string[], read: SubjectRead): SkippedRecord[] {
  const idp = integration.provider === 'okta' ? 'Okta' : 'authentik';
  const note = (login: string, reason: string): SkippedRecord => ({ kind: 'user', externalId: null, subject: login, reason });
  const notes = read.unknownLogins.map((login) => note(login, `no ${idp} user has the login "${login}"`));
  const seen = new Set([...read.unknownLogins, ...[...read.snapshot.users.values()].map((u) => u.userName), ...read.snapshot.skipped.map((r) => r.subject)].map((l) => l.toLowerCase()));
  const outside =
    integration.provider === 'okta' && integration.oktaAppId
      ? 'not assigned to the Okta app'
      : integration.provider === 'authentik' && integration.authentikApp
        ? 'not allowed to the authentik application'
        : "not in the integration's scope";
  for (const login of new Set(logins)) {
    if (seen.has(login.toLowerCase())) continue;
    notes.push(note(login, `the ${idp} user with the login "${login}" is ${outside}, so it is not provisioned (an account it had is deprovisioned)`));
  }
  return notes;
}

/**
 * The part of DIRSYNC_RATE_LIMIT_SHARE a full-lane run paces itself to: Okta's headers count the
 * whole org, so a full run that stops at 80% of the share leaves the rest to the targeted and
 * incremental runs beside it, and an event is not made to wait for a bucket's reset.
 */
const FULL_RUN_SHARE = 0.8;

/** Users a targeted run reads one by one at least, however small the scope (below, a full read would be as cheap). */
const MIN_TARGETED_USERS = 25;

/** Whether reading this many users one by one (about two requests each) costs more than a full read of this tenant. */
function tooWideFor(current: TenantCounts): (users: number) => boolean {
  const budget = Math.max(MIN_TARGETED_USERS, fullReadCost(current) / 2);
  return (users) => users > budget;
}

/**
 * About how many requests a full read of this tenant costs Okta: users and groups at the largest
 * page sizes, and each group's members (what readSnapshot asks for when member versions changed).
 */
function fullReadCost(current: TenantCounts): number {
  return Math.ceil(current.activeUsers / 500) + Math.ceil(current.groups / 200) + current.groups + Math.ceil(current.memberships / 1000);
}

/** A run's second read of the subjects whose writes were dropped for another run's read (a targeted read, declared), and the tenant's state of them; 'failed' when it cannot (or there are too many: the follow-up takes them). */
async function rereadNamed(
  deps: ReconcileDeps,
  integrations: IntegrationService,
  integration: Integration,
  run: RunSummary,
  subjects: { readonly userIds: readonly string[]; readonly groupIds: readonly string[] },
  signal: AbortSignal,
): Promise<{ kind: 'read'; local: LocalState; snapshot: Snapshot; current: TenantCounts; readAt: Date } | { kind: 'failed' }> {
  const source = await snapshotSourceFor(deps, integrations, integration);
  if ('error' in source || !isTargetedSource(source.connector)) return { kind: 'failed' };
  const readAt = await databaseNow(deps.db);
  await new RunRepository(deps.db).markRead(run.id, readAt);
  try {
    const directory = new DirectoryRepository(deps.db);
    const names = { userIds: [...subjects.userIds], logins: [], groupIds: [...subjects.groupIds] };
    const current = await directory.countTenant(integration.tenantId);
    const tooWide = tooWideFor(current);
    // Too many to read one by one: left to the follow-up (which reads the whole scope if need be).
    if (tooWide(names.userIds.length)) return { kind: 'failed' };
    const again = await readNarrowed(deps.db, source.connector, directory, integration, names, run.id, signal, tooWide);
    if (again === 'too wide') return { kind: 'failed' };
    return { kind: 'read', local: again.local, snapshot: again.snapshot, current, readAt };
  } catch (error) {
    if (source.credentials) scrubCredentials(error, source.credentials);
    if (error instanceof IdpReadError || error instanceof SnapshotError) return { kind: 'failed' };
    throw error;
  }
}

/** Asks for a targeted run of these subjects (it joins one already queued). */
async function followUp(deps: ReconcileDeps, integrationId: string, trigger: RunTrigger, subjects: { userIds: readonly string[]; groupIds: readonly string[] }, log: Logger): Promise<void> {
  const { run } = await new RunRepository(deps.db).trigger(integrationId, trigger, false, { mode: 'targeted', lane: 'quick', subjects: { userIds: [...subjects.userIds], groupIds: [...subjects.groupIds] } });
  // Without a queue at hand, the worker's sweep enqueues the recorded run.
  if (deps.queue) await (await import('../queue/queue.js')).enqueueRun(deps.queue, run).catch((error: unknown) => log.warn({ err: (error as Error).message }, 'follow-up run recorded; the sweep enqueues it'));
}

/**
 * The logins an okta or authentik integration's SCIM pushes name (`--scim`): a pushed user's
 * userName, a pushed membership's user's, a pushed group's members'. Logins, not the pushed
 * resources' ids: the IdP's API is read by them. 'too many' beyond TARGETED_WRITES.
 */
async function pushedLogins(db: Db, integrationId: string): Promise<{ writes: UnappliedWrite[]; logins: string[] } | 'too many' | undefined> {
  const store = new ScimRepository(db);
  const writes = await store.unapplied(integrationId, TARGETED_WRITES + 1);
  if (writes.length === 0) return undefined;
  if (writes.length > TARGETED_WRITES) return 'too many';
  const users = new Set<string>();
  const groups: string[] = [];
  for (const w of writes) {
    if (w.resourceType === 'User') users.add(w.resourceId);
    else if (w.resourceType === 'Member') users.add(w.memberId);
    else groups.push(w.resourceId);
  }
  for (const { userId } of await store.memberPairs(groups, 'group')) users.add(userId);
  if (users.size > TARGETED_WRITES) return 'too many';
  const logins = (await store.usersById(integrationId, [...users])).map((u) => u.userName);
  return { writes, logins };
}

/**
 * Both sets of names, each once. A user is named in place only if every side naming it does so,
 * and as having left groups if every side names it in place or so, and one so.
 */
function mergeNames(a: SubjectNames, b: SubjectNames): SubjectNames {
  const union = (x: readonly string[], y: readonly string[]) => [...new Set([...x, ...y])];
  const kept = (n: SubjectNames) => [...(n.inPlace ?? []), ...(n.leftGroups ?? [])];
  const moved = new Set([...without(a.userIds, kept(a)), ...without(b.userIds, kept(b))]);
  const leftGroups = union(a.leftGroups ?? [], b.leftGroups ?? []).filter((id) => !moved.has(id));
  const left = new Set(leftGroups);
  const inPlace = union(a.inPlace ?? [], b.inPlace ?? []).filter((id) => !moved.has(id) && !left.has(id));
  return {
    userIds: union(a.userIds, b.userIds),
    logins: union(a.logins, b.logins),
    groupIds: union(a.groupIds, b.groupIds),
    ...(inPlace.length > 0 && { inPlace }),
    ...(leftGroups.length > 0 && { leftGroups }),
  };
}

function without(ids: readonly string[], minus: readonly string[]): string[] {
  const drop = new Set(minus);
  return ids.filter((id) => !drop.has(id));
}

/**
 * Whether a full read of this source can be staged (src/runs/staged-read.ts): it reads into any
 * sink, and it can tell the groups of users entering the scope (which a read that took unread
 * groups' members from the tenant needs).
 */
function isStageable(connector: SnapshotSource): connector is SnapshotSource & Required<Pick<SnapshotSource, 'readGroupsOf'>> & { readInto(sink: SnapshotSink, signal?: AbortSignal, hints?: ReadHints): Promise<void> } {
  return typeof (connector as { readInto?: unknown }).readInto === 'function' && typeof connector.readGroupsOf === 'function';
}

function isTargetedSource(connector: SnapshotSource): connector is SnapshotSource & TargetedSource {
  // ScimSnapshotSource reads named subjects too, from what was pushed: it has its own path.
  return !(connector instanceof ScimSnapshotSource) && typeof (connector as Partial<TargetedSource>).readSubjects === 'function';
}

/**
 * Where the run reads the integration's directory: the IdP's API through its connector, or for
 * a scim integration what the IdP pushed. Stored credentials that cannot be opened fail the run.
 */
async function snapshotSourceFor(
  deps: ReconcileDeps,
  integrations: IntegrationService,
  integration: Integration,
  /** Which lane the run is in: a full run leaves part of the rate-limit share to targeted runs (FULL_RUN_SHARE). */
  lane: RunLane = 'quick',
): Promise<{ connector: SnapshotSource; credentials: Credentials | undefined } | { error: string }> {
  if (integration.provider === 'scim') return { connector: new ScimSnapshotSource(new ScimRepository(deps.db), integration.id), credentials: undefined };
  const refused = outboundRefusal(integration.baseUrl, deps.config);
  if (refused) return { error: `not reading the IdP: ${refused}` };
  let credentials: Credentials;
  try {
    credentials = await integrations.credentials(integration.id);
  } catch (error) {
    if (error instanceof DecryptionError) return { error: `cannot read the integration's credentials: ${error.message}` };
    throw error;
  }
  const connector = deps.connectorFor ? deps.connectorFor(integration, credentials) : createConnector(integration, credentials, egressFor(deps.config), {
        rateLimitShare: lane === 'full' ? deps.config.rateLimitShare * FULL_RUN_SHARE : deps.config.rateLimitShare,
        ...deps.connectorSettings,
      });
  return { connector, credentials };
}

/** Whether a scim integration's next run should read everything: no full run succeeded within SCIM_FULL_EVERY_MS (of its creation, if none ever did). */
async function fullRunDue(db: Db, integration: Integration): Promise<boolean> {
  const last = (await new RunRepository(db).lastFullRunAt(integration.id)) ?? new Date(integration.createdAt);
  return Date.now() - last.getTime() > SCIM_FULL_EVERY_MS;
}
