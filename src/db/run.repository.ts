import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { type DestructiveOp, changeLogId, destructiveFromChange, membershipDetail } from '../core/approvals.js';
import { attributeDiff } from '../core/attribute-diff.js';
import type { JsonObject } from '../core/model.js';
import { printable } from '../core/snapshot.js';
import { CHANGE_KINDS, PLAN_KINDS, type PlanCounts } from '../core/plan.js';
import type { RecentRemovals } from '../core/safety.js';
import { accountByIdpId } from './account-probe.js';
import type { Db } from './database.js';
import type { ChangeState, RunChangeRow, RunLane, RunMode, RunRow, RunStatus, RunSubjectKind, RunTrigger, RunWarning } from './schema.js';
import type { SubjectNames } from '../connectors/connector.js';

/**
 * What a trigger asks for: a full run, an incremental one (the change feed since the last), or
 * a targeted read of named subjects; and the lane it queues in (see RunRepository.trigger).
 */
export type RunRequest =
  | { readonly mode: 'full'; readonly lane: RunLane; readonly subjects?: undefined }
  | { readonly mode: 'incremental' | 'targeted'; readonly lane: RunLane; readonly subjects?: Partial<SubjectNames> };

/** The wider of two requests joined into one run: full > incremental > targeted. */
export function widerMode(a: RunMode, b: RunMode): RunMode {
  const rank: Record<RunMode, number> = { targeted: 0, incremental: 1, full: 2 };
  return rank[a] >= rank[b] ? a : b;
}

/** Without a request: a push (`scim`) asks for a targeted run of what was pushed, anything else for a full one. */
function defaultRequest(trigger: RunTrigger): RunRequest {
  return trigger === 'scim' ? { mode: 'targeted', lane: 'full' } : { mode: 'full', lane: 'full' };
}

/** Named subjects as run_subjects rows. */
export function subjectRows(names: Partial<SubjectNames> | undefined): Array<{ kind: RunSubjectKind; name: string }> {
  return [
    ...(names?.userIds ?? []).map((name) => ({ kind: 'user' as const, name })),
    ...(names?.logins ?? []).map((name) => ({ kind: 'login' as const, name })),
    ...(names?.groupIds ?? []).map((name) => ({ kind: 'group' as const, name })),
  ];
}

async function addSubjects(db: Db, runId: string, subjects: ReadonlyArray<{ kind: RunSubjectKind; name: string }>): Promise<void> {
  for (let i = 0; i < subjects.length; i += 5_000) {
    await db
      .insertInto('run_subjects')
      .values(subjects.slice(i, i + 5_000).map((s) => ({ run_id: runId, ...s })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
}

/** A run as SPEC's run summary shows it. */
export interface RunSummary {
  id: string;
  integrationId: string;
  trigger: RunTrigger;
  mode: RunMode;
  status: RunStatus;
  dryRun: boolean;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  counts: PlanCounts | null;
  stats: Record<string, number> | null;
  error: string | null;
  /** For a held run: why its removals wait for approval. */
  heldReason: string | null;
  /** For an approval run: the held run it approves. */
  approvesRunId: string | null;
  /** For a held run that was approved: when, and by which run. */
  approvedAt: string | null;
  approvedByRunId: string | null;
  /** Records the run skipped, and why (SPEC "Per-record isolation"). */
  warnings: RunWarning[];
}

export interface RunChange {
  kind: string;
  externalId: string;
  subject: string;
  detail: JsonObject | null;
  state: ChangeState;
  at: string;
}

export interface NewRunChange {
  kind: string;
  externalId: string;
  subject: string;
  detail: JsonObject | null;
}

export type ClaimResult =
  /** `attempt` counts this run's claims (1 for the first): it fences this attempt's writes (heartbeat, abandonAttempt). */
  | { readonly kind: 'claimed'; readonly run: RunSummary; readonly attempt: number }
  /** Another run of the same integration is in progress; try again later. */
  | { readonly kind: 'busy' }
  /** Already finished (a duplicate delivery of the job); nothing to do. */
  | { readonly kind: 'finished'; readonly run: RunSummary }
  | { readonly kind: 'missing' };

const ABANDONED = 'The worker running this run stopped without finishing it (no heartbeat); the next run converges.';

/** How long a running run may go without a heartbeat before it is presumed dead. */
export const STALE_AFTER_MS = 30_000;

/** The CLI hint a held reason carries, " (`dirsync run approve <id>`)": dropped once the run is settled (a Postgres regex). */
const HOW_TO_APPROVE = String.raw` ?\(\`dirsync run approve [^\`]*\`\)`;

export class RunRepository {
  constructor(private readonly db: Db) {}

  /**
   * Records a trigger. Non-dry triggers coalesce per lane: while a run of the integration is
   * queued (not yet started) in the lane the request goes to, every further trigger joins that
   * run instead of adding one. Atomic through the partial unique index runs_one_queued (per
   * integration and lane), so racing triggers agree.
   *
   * The `full` lane serves full runs, dry runs (always full: they record the whole plan) and
   * every run of a scim integration; the `quick` lane serves targeted and incremental runs of a
   * pulled integration, which go on while a full run reads (src/runs/read-stamps.ts keeps them
   * from overwriting each other). Joining a queued run widens it: full beats targeted (a full
   * run applies what was pushed too), incremental beats targeted (it also reads the named
   * subjects), and named subjects add up.
   */
  async trigger(integrationId: string, trigger: RunTrigger, dryRun: boolean, request: RunRequest = defaultRequest(trigger)): Promise<{ run: RunSummary; created: boolean }> {
    const mode: RunMode = dryRun ? 'full' : request.mode;
    const lane: RunLane = dryRun ? 'full' : request.lane;
    const subjects = mode === 'full' ? [] : subjectRows(request.subjects);
    for (;;) {
      const result = await this.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('runs')
          .values({ id: randomUUID(), integration_id: integrationId, trigger, mode, lane, status: 'queued', dry_run: dryRun })
          .onConflict((oc) =>
            oc.columns(['integration_id', 'lane']).where('status', '=', 'queued').where('dry_run', '=', false).where('approves_run_id', 'is', null).doNothing(),
          )
          .returningAll()
          .executeTakeFirst();
        if (inserted) {
          await addSubjects(trx, inserted.id, subjects);
          return { run: toSummary(inserted), created: true };
        }
        // Locked until commit: the run cannot start (RunRepository.claim waits) before the subjects are in.
        const queued = await trx
          .selectFrom('runs')
          .selectAll()
          .where('integration_id', '=', integrationId)
          .where('lane', '=', lane)
          .where('status', '=', 'queued')
          .where('dry_run', '=', false)
          .where('approves_run_id', 'is', null)
          .forUpdate()
          .executeTakeFirst();
        // The queued run may have started between the two statements; then insert again.
        if (!queued) return undefined;
        const widened = widerMode(queued.mode, mode);
        if (widened !== 'full') await addSubjects(trx, queued.id, subjects);
        if (widened === queued.mode) return { run: toSummary(queued), created: false };
        const row = await trx.updateTable('runs').set({ mode: widened }).where('id', '=', queued.id).returningAll().executeTakeFirstOrThrow();
        if (widened === 'full') await trx.deleteFrom('run_subjects').where('run_id', '=', queued.id).execute();
        return { run: toSummary(row), created: false };
      });
      if (result) return result;
    }
  }

  /** What a targeted or incremental run reads besides its change feed: the subjects its triggers named. */
  async subjects(runId: string): Promise<SubjectNames> {
    const rows = await this.db.selectFrom('run_subjects').select(['kind', 'name']).where('run_id', '=', runId).orderBy('kind').orderBy('name').execute();
    const of = (kind: RunSubjectKind) => rows.filter((r) => r.kind === kind).map((r) => r.name);
    return { userIds: of('user'), logins: of('login'), groupIds: of('group') };
  }

  /** Records when this run's IdP read began (see src/runs/read-stamps.ts). */
  async markRead(runId: string, readAt: Date): Promise<void> {
    await this.db.updateTable('runs').set({ read_at: readAt }).where('id', '=', runId).execute();
  }

  /** Records that a run reads something else than it was asked to: the whole scope (its feed could not be read), or a targeted read of the feed's names. */
  async changeMode(runId: string, mode: RunMode): Promise<void> {
    await this.db.updateTable('runs').set({ mode }).where('id', '=', runId).execute();
  }

  /** When the integration's last full (not dry) run succeeded, or null. */
  async lastFullRunAt(integrationId: string): Promise<Date | null> {
    const row = await this.db
      .selectFrom('runs')
      .select(sql<Date | null>`max(finished_at)`.as('at'))
      .where('integration_id', '=', integrationId)
      .where('mode', '=', 'full')
      .where('status', '=', 'succeeded')
      .where('dry_run', '=', false)
      .executeTakeFirst();
    return row?.at ?? null;
  }

  /** Records that a run reads the whole scope after all (a targeted run with too much to target). */
  async widenToFull(runId: string): Promise<void> {
    await this.changeMode(runId, 'full');
  }

  /** Deletes a run that never started (its enqueue failed), so triggers do not coalesce into a run without a job. */
  async deleteQueued(runId: string): Promise<void> {
    await this.db.deleteFrom('runs').where('id', '=', runId).where('status', '=', 'queued').execute();
  }

  /**
   * Moves a queued run to running. A run left `running` by a dead worker (no heartbeat
   * for STALE_AFTER_MS) is failed first, or taken over when it is this very run.
   */
  async claim(runId: string): Promise<ClaimResult> {
    const run = await this.find(runId);
    if (!run) return { kind: 'missing' };
    if (run.status !== 'queued' && run.status !== 'running') return { kind: 'finished', run };
    await this.db
      .updateTable('runs')
      .set({
        status: 'failed',
        finished_at: sql`now()`,
        error: ABANDONED,
      })
      .where('integration_id', '=', run.integrationId)
      .where('status', '=', 'running')
      .where('id', '!=', runId)
      .where('heartbeat_at', '<', sql<Date>`now() - ${STALE_AFTER_MS} * interval '1 millisecond'`)
      .execute();
    try {
      const claimed = await this.db
        .updateTable('runs')
        .set({
          status: 'running',
          started_at: sql`now()`,
          heartbeat_at: sql`now()`,
          attempts: sql`attempts + 1`,
          error: null,
        })
        .where('id', '=', runId)
        .where((eb) =>
          eb.or([
            eb('status', '=', 'queued'),
            eb.and([
              eb('status', '=', 'running'),
              eb('heartbeat_at', '<', sql<Date>`now() - ${STALE_AFTER_MS} * interval '1 millisecond'`),
            ]),
          ]),
        )
        .returningAll()
        .executeTakeFirst();
      if (claimed) return { kind: 'claimed', run: toSummary(claimed), attempt: claimed.attempts };
      return { kind: 'busy' };
    } catch (error) {
      if ((error as { code?: string }).code === '23505') return { kind: 'busy' };
      throw error;
    }
  }

  /**
   * What earlier attempts of this run applied, by kind: a run taken over after its worker died
   * or Postgres went away continues from committed batches, and its counts must include them.
   */
  async appliedCounts(runId: string): Promise<PlanCounts> {
    const rows = await this.db
      .selectFrom('run_changes')
      .select(['kind', (eb) => eb.fn.countAll<string>().as('n')])
      .where('run_id', '=', runId)
      .where('state', '=', 'applied')
      .groupBy('kind')
      .execute();
    const byKind = new Map(rows.map((r) => [r.kind, Number(r.n)]));
    const counts = {} as Record<keyof PlanCounts, number>;
    for (const kind of PLAN_KINDS) counts[kind] = byKind.get(CHANGE_KINDS[kind]) ?? 0;
    return counts;
  }

  /**
   * Gives up this attempt of a running run after an unexpected error (Postgres went away):
   * its heartbeat is made stale so the job's retry takes it over at once, instead of waiting
   * out the stale period as for a dead worker.
   */
  async abandonAttempt(runId: string, attempt: number, why: string): Promise<void> {
    await this.db
      .updateTable('runs')
      // Stale just now, not long ago: the next claim takes it over, while failAbandoned (a worker
      // starting) still tells it from a run whose worker died long ago.
      .set({ heartbeat_at: sql`now() - ${STALE_AFTER_MS + 1_000} * interval '1 millisecond'`, error: `an attempt stopped: ${why}; retrying` })
      .where('id', '=', runId)
      .where('status', '=', 'running')
      // A later attempt that took the run over is not this attempt's to give up.
      .where('attempts', '=', attempt)
      .execute();
  }

  /** Runs recorded but not started (for at least `olderThanMs`), oldest first: to re-enqueue after Redis lost their jobs. */
  async listQueued(olderThanMs = 0): Promise<{ id: string; integrationId: string }[]> {
    const rows = await this.db
      .selectFrom('runs')
      .select(['id', 'integration_id'])
      .where('status', '=', 'queued')
      .where('queued_at', '<=', sql<Date>`now() - ${olderThanMs} * interval '1 millisecond'`)
      .orderBy('queued_at')
      .execute();
    return rows.map((r) => ({ id: r.id, integrationId: r.integration_id }));
  }

  /**
   * Deletes runs that finished (succeeded or failed) more than `olderThanMs` ago, with their
   * whole change log, `batch` rows per statement: a run's rows go first, then the run, so a
   * crash between statements leaves a kept run with part of its log, never rows without a run
   * that are not events. Never pruned: held, queued and running runs, and each integration's
   * last finished run, last success and last full success (what /metrics, the console and the
   * full-run schedule read), however old. Returns how many runs and change-log rows went.
   */
  async pruneFinished(olderThanMs: number, batch = 5_000): Promise<{ runs: number; changes: number }> {
    let runs = 0;
    let changes = 0;
    for (;;) {
      // runs_prunable_idx finds the oldest; runs_last_*_idx the few kept per integration.
      const { rows } = await sql<{ id: string }>`
        with kept as (
          select k.id from integrations i cross join lateral (
            (select id from runs where integration_id = i.id and status in ('succeeded', 'failed', 'held') and not dry_run order by finished_at desc limit 1)
            union all
            (select id from runs where integration_id = i.id and status = 'succeeded' and not dry_run order by finished_at desc limit 1)
            union all
            (select id from runs where integration_id = i.id and status = 'succeeded' and not dry_run and mode = 'full' order by finished_at desc limit 1)
          ) k
        )
        select r.id from runs r
        where r.status in ('succeeded', 'failed') and r.finished_at < now() - ${olderThanMs} * interval '1 millisecond'
          and r.id not in (select id from kept where id is not null)
        order by r.finished_at
        limit ${batch}
      `.execute(this.db);
      if (rows.length === 0) break;
      const ids = rows.map((r) => r.id);
      for (;;) {
        const result = await sql`
          delete from run_changes where id in (select id from run_changes where run_id = any(${ids}::uuid[]) limit ${batch})
        `.execute(this.db);
        const n = Number(result.numAffectedRows ?? 0n);
        changes += n;
        if (n < batch) break;
      }
      const result = await sql`delete from runs where id = any(${ids}::uuid[]) and status in ('succeeded', 'failed')`.execute(this.db);
      runs += Number(result.numAffectedRows ?? 0n);
      if (rows.length < batch) break;
    }
    return { runs, changes };
  }

  /** Fails runs whose worker died long ago (no heartbeat for 10 stale periods). */
  async failAbandoned(): Promise<number> {
    const result = await this.db
      .updateTable('runs')
      .set({ status: 'failed', finished_at: sql`now()`, error: ABANDONED })
      .where('status', '=', 'running')
      .where('heartbeat_at', '<', sql<Date>`now() - ${STALE_AFTER_MS * 10} * interval '1 millisecond'`)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * Marks attempt `attempt` of the run alive, and records how far it got (shown by `sync --wait`
   * and the dashboards). Returns false when the run is no longer this attempt's: finished, failed
   * as abandoned by another worker, or taken over by a later attempt after a stale heartbeat.
   */
  async heartbeat(runId: string, attempt: number, progress?: Record<string, number>): Promise<boolean> {
    const result = await this.db
      .updateTable('runs')
      .set({ heartbeat_at: sql`now()`, ...(progress ? { stats: JSON.stringify(progress) } : {}) })
      .where('id', '=', runId)
      .where('status', '=', 'running')
      .where('attempts', '=', attempt)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async finish(
    runId: string,
    outcome: {
      status: 'succeeded' | 'failed' | 'held';
      counts: PlanCounts;
      stats: Record<string, number>;
      error?: string;
      heldReason?: string;
      warnings?: readonly RunWarning[];
    },
    /** The attempt finishing it (RunRecorder): nothing is written unless the run is still running under that attempt. */
    attempt?: number,
  ): Promise<boolean> {
    let update = this.db
      .updateTable('runs')
      .set({
        status: outcome.status,
        finished_at: sql`now()`,
        counts: JSON.stringify(outcome.counts),
        stats: JSON.stringify(outcome.stats),
        error: outcome.error === undefined ? null : printable(outcome.error),
        held_reason: outcome.heldReason ?? null,
        warnings: storableJson(outcome.warnings ?? []),
      })
      .where('id', '=', runId);
    if (attempt !== undefined) update = update.where('status', '=', 'running').where('attempts', '=', attempt);
    const result = await update.executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Records an approval of a held run as a run of its own (queued, never coalesced). It
   * approves the integration's removals held up to and including that run.
   */
  async createApproval(heldRun: RunSummary): Promise<RunSummary> {
    const row = await this.db
      .insertInto('runs')
      .values({
        id: randomUUID(),
        integration_id: heldRun.integrationId,
        trigger: 'manual',
        status: 'queued',
        approves_run_id: heldRun.id,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toSummary(row);
  }

  /** Held runs of the integration an approval of `heldRunId` covers: it and every earlier held run. */
  async heldRunsUpTo(heldRunId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('runs as r')
      .innerJoin('runs as h', 'h.integration_id', 'r.integration_id')
      .select('r.id')
      .where('h.id', '=', heldRunId)
      .where('r.status', '=', 'held')
      .where('r.queued_at', '<=', sql<Date>`h.queued_at`)
      .execute();
    return rows.map((r) => r.id);
  }

  /** The destructive operations each held run of the integration waits on. */
  async heldOpsByRun(integrationId: string): Promise<Map<string, DestructiveOp[]>> {
    const rows = await this.db
      .selectFrom('run_changes as c')
      .innerJoin('runs as r', 'r.id', 'c.run_id')
      .select(['r.id as run_id', 'c.kind', 'c.external_id', 'c.detail'])
      .where('r.integration_id', '=', integrationId)
      .where('r.status', '=', 'held')
      .where('r.dry_run', '=', false)
      .where('c.state', '=', 'held')
      // In the order they were held: what an approval finds stale is recorded in that order.
      .orderBy('c.id')
      .execute();
    const byRun = new Map<string, DestructiveOp[]>();
    for (const r of rows) {
      const op = destructiveFromChange(r.kind, r.external_id, r.detail);
      if (!op) continue;
      let ops = byRun.get(r.run_id);
      if (!ops) byRun.set(r.run_id, (ops = []));
      ops.push(op);
    }
    return byRun;
  }

  /**
   * Records approved removals that a fresh read no longer warrants, as skipped changes; but
   * those the run recorded already, skipped or applied: an attempt that died before the run
   * ended may have applied them (the next attempt finds nothing left to do) or recorded them.
   * Returns how many the run holds recorded as skipped, this attempt's and earlier ones'.
   */
  async recordStale(runId: string, stale: readonly DestructiveOp[], approvedRunId: string | null): Promise<number> {
    const { n } = await this.db.selectFrom('run_changes').select((eb) => eb.fn.countAll<string>().as('n')).where('run_id', '=', runId).where('state', '=', 'skipped').executeTakeFirstOrThrow();
    const skippedBefore = Number(n);
    if (stale.length === 0) return skippedBefore;
    const recorded = await this.db
      .selectFrom('run_changes')
      .select(['kind', 'external_id'])
      .where('run_id', '=', runId)
      .where('state', 'in', ['skipped', 'applied'])
      .where('external_id', '=', sql<string>`any(${stale.map(changeLogId)}::text[])`)
      .execute();
    const already = new Set(recorded.map((c) => `${c.kind} ${c.external_id}`));
    stale = stale.filter((op) => !already.has(`${op.kind} ${changeLogId(op)}`));
    if (stale.length === 0) return skippedBefore;
    // Named as the held run named them ("ann@x.test in Admins"), not by their ids.
    const held = await this.db
      .selectFrom('run_changes as c')
      .innerJoin('runs as r', 'r.id', 'c.run_id')
      .innerJoin('runs as me', 'me.integration_id', 'r.integration_id')
      .select(['c.kind', 'c.external_id', 'c.subject'])
      .where('me.id', '=', runId)
      .where('c.state', '=', 'held')
      .execute();
    const subjects = new Map(held.map((c) => [`${c.kind} ${c.external_id}`, c.subject]));
    const changes = stale.map((op) => ({
      kind: op.kind,
      externalId: changeLogId(op),
      subject: subjects.get(`${op.kind} ${changeLogId(op)}`) ?? changeLogId(op),
      detail: {
        ...(op.kind === 'membership.removed' ? membershipDetail(op) : {}),
        skipped: `approved in run ${approvedRunId}, but the IdP no longer warrants it`,
      },
    }));
    await this.recordChanges(runId, changes, 'skipped');
    return skippedBefore + changes.length;
  }

  /** Closes approved held runs: their removals were applied (or found stale) by `approverRunId`. */
  async markApproved(heldRunIds: readonly string[], approverRunId: string): Promise<void> {
    if (heldRunIds.length === 0) return;
    await this.db
      .updateTable('runs')
      .set({ status: 'succeeded', approved_at: sql`now()`, approved_by_run_id: approverRunId })
      .where('id', 'in', [...heldRunIds])
      .where('status', '=', 'held')
      .execute();
  }

  /**
   * Rejects a held run: its held removals are recorded as skipped (with who said no and when)
   * and the run is closed as succeeded, since what it did apply stands. Answers false when the
   * run was no longer held (approved or rejected meanwhile). The next run plans afresh: if the
   * IdP still warrants the removals, they are held again.
   */
  async reject(heldRunId: string, reason: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const closed = await tx
        .updateTable('runs')
        // Its reason says what happened now, no longer how to approve it.
        .set({
          status: 'succeeded',
          held_reason: sql`regexp_replace(coalesce(held_reason, ''), ${HOW_TO_APPROVE}, '') || ' Its removals were ' || ${reason}::text || '.'`,
        })
        .where('id', '=', heldRunId)
        .where('status', '=', 'held')
        .returning('id')
        .executeTakeFirst();
      if (!closed) return false;
      await tx
        .updateTable('run_changes')
        .set({ state: 'skipped', detail: sql`coalesce(detail, '{}'::jsonb) || jsonb_build_object('skipped', ${reason}::text)` })
        .where('run_id', '=', heldRunId)
        .where('state', '=', 'held')
        .execute();
      return true;
    });
  }

  /** Held (not dry) runs of every integration, oldest first: what waits for an admin. */
  async listHeld(limit = 200): Promise<RunSummary[]> {
    const rows = await this.db.selectFrom('runs').selectAll().where('status', '=', 'held').where('dry_run', '=', false).orderBy('queued_at').limit(limit).execute();
    return rows.map(toSummary);
  }

  /** The changes of a run in one state (a held run's waiting removals), at most `limit`. */
  /**
   * A run's changes in one state, the weightiest first (people losing access, then groups
   * going, then memberships, then the rest), in log order within a kind.
   */
  async listChangesInState(runId: string, state: ChangeState, limit = 1_000): Promise<RunChange[]> {
    const rows: RunChangeRow[] = await this.db
      .selectFrom('run_changes')
      .selectAll()
      .where('run_id', '=', runId)
      .where('state', '=', state)
      .orderBy(sql`case kind when 'user.deprovisioned' then 0 when 'group.deleted' then 1 when 'membership.removed' then 2 else 3 end`)
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toChange);
  }

  /** How many of a run's changes are in `state`, by kind. */
  async countChangesByKind(runId: string, state: ChangeState): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('run_changes')
      .select(['kind', (eb) => eb.fn.countAll<string>().as('n')])
      .where('run_id', '=', runId)
      .where('state', '=', state)
      .groupBy('kind')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]));
  }

  async find(runId: string): Promise<RunSummary | undefined> {
    if (!isUuid(runId)) return undefined;
    const row = await this.db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    return row && toSummary(row);
  }

  async listForIntegration(integrationId: string, limit = 20): Promise<RunSummary[]> {
    const rows = await this.db
      .selectFrom('runs')
      .selectAll()
      .where('integration_id', '=', integrationId)
      .orderBy('queued_at', 'desc')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toSummary);
  }

  /**
   * Destructive operations this integration applied within the last `windowMs` (as of the
   * database's clock), by kind: the sliding window scim pushes, targeted and incremental runs
   * are guarded by. Each subject counts once, and only while its removal still stands: a user
   * deprovisioned and reprovisioned since (active again), a group deleted and created again, a
   * membership removed and added again is back among the tenant's current counts, and counting
   * it in the window too would count it twice ("4 of the 7 there were" of a tenant that only
   * ever had 6). Removals that went with a deprovision are counted with it, not on their own;
   * those an approval applied are not counted (an admin weighed them already).
   */
  async recentRemovals(integrationId: string, windowMs: number): Promise<RecentRemovals> {
    const { rows } = await sql<{ kind: string; n: string }>`
      with removed as (
        select distinct c.kind, c.external_id, c.detail ->> 'group' as group_id, c.detail ->> 'user' as user_id
        from run_changes c join runs r on r.id = c.run_id
        where r.integration_id = ${integrationId}::uuid
          -- What an admin approved was weighed already: it does not hold the hour's next removals.
          and r.approves_run_id is null
          and c.state = 'applied'
          and c.kind in (${CHANGE_KINDS.usersDeprovisioned}, ${CHANGE_KINDS.groupsDeleted}, ${CHANGE_KINDS.membershipsRemoved})
          and c.created_at > now() - ${windowMs} * interval '1 millisecond'
          -- 'account removed' is what rows written before 2026-11-30 say (apply-plan's USER_DEPROVISIONED).
          and coalesce(c.detail ->> 'with', '') not in ('user deprovisioned', 'account removed')
      )
      select d.kind, count(*)::text as n from removed d
      where case d.kind
        when ${CHANGE_KINDS.usersDeprovisioned} then not exists (
          select 1 from accounts a where a.integration_id = ${integrationId}::uuid and a.external_id = d.external_id and a.active)
        when ${CHANGE_KINDS.groupsDeleted} then not exists (
          select 1 from groups g where g.integration_id = ${integrationId}::uuid and g.external_id = d.external_id)
        else not exists (
          select 1 from group_memberships gm
          join groups g on g.id = gm.group_id and g.integration_id = ${integrationId}::uuid and g.external_id = d.group_id
          join accounts a on a.id = gm.account_id and a.integration_id = ${integrationId}::uuid and a.external_id = d.user_id)
      end
      group by d.kind
    `.execute(this.db);
    const n = (kind: string) => Number(rows.find((r) => r.kind === kind)?.n ?? 0);
    return {
      windowMs,
      deprovisions: n(CHANGE_KINDS.usersDeprovisioned),
      groupDeletions: n(CHANGE_KINDS.groupsDeleted),
      membershipRemovals: n(CHANGE_KINDS.membershipsRemoved),
    };
  }

  /**
   * Deletes the run's `planned` and `held` changes: what an earlier attempt of the run recorded
   * of its plan (a staged run records them chunk by chunk), before this attempt plans again and
   * records them whole. Applied changes stay (they happened), and so do `skipped` ones (an
   * approval's stale removals: recordStale does not record one twice).
   */
  async clearUnapplied(runId: string): Promise<void> {
    await this.db.deleteFrom('run_changes').where('run_id', '=', runId).where('state', 'in', ['planned', 'held']).execute();
  }

  /** The change keys (changeKey) of the run's `held` changes. */
  async heldKeys(runId: string): Promise<Set<string>> {
    const rows = await this.db.selectFrom('run_changes').select(['kind', 'external_id']).where('run_id', '=', runId).where('state', '=', 'held').execute();
    return new Set(rows.map((r) => changeKey({ kind: r.kind, externalId: r.external_id })));
  }

  /** Records changes not applied (planned, held, skipped): the run's change log only, not events. */
  async recordChanges(runId: string, changes: readonly NewRunChange[], state: Exclude<ChangeState, 'applied'>): Promise<void> {
    if (changes.length === 0) return;
    await sql`
      insert into run_changes (run_id, kind, external_id, subject, detail, state)
      select ${runId}::uuid, t.kind, t.external_id, t.subject, t.detail, ${state}::text
      from ${changeRows(changes)}
      order by t.n
    `.execute(this.db);
  }

  /**
   * Records applied changes, in the transaction that applied them: each row is also an event
   * for the host app (SPEC "Events", see migration 2026-11-30T0200-events). `detail.of` holds
   * the subject as the plan knew it, and `detail.ids` what it is in the tenant right after the
   * change (account and person ids, active and locked; group id; for a deprovision, its lock),
   * joined set-based in this same transaction, so an event keeps the ids of its own moment.
   * For subjects the change removed (an account in remove-access or delete mode, a deleted
   * group, a lifted lock) what `before` described before the write (see describeSubjects) is
   * kept too. With `ids: false` nothing is joined: each change's detail is stored as given.
   * (Created users and added memberships, nearly every change of an initial sync, are recorded
   * by the statements that write them: DirectoryRepository.grantAccess and addMemberships.)
   */
  async recordApplied(scope: ChangeScope, changes: readonly NewRunChange[], options: { before?: ReadonlyMap<string, SubjectBefore>; ids?: boolean } = {}): Promise<void> {
    if (changes.length === 0) return;
    const { before, ids = true } = options;
    const rows = before ? changes.map((c) => withBefore(c, before.get(changeKey(c)))) : changes;
    if (!ids) {
      await sql`
        insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
        select ${scope.runId}::uuid, ${scope.tenantId}::uuid, ${scope.integrationId}::uuid, t.kind, t.external_id, t.subject, t.detail, 'applied'
        from ${changeRows(rows)}
        order by t.n
      `.execute(this.db);
      return;
    }
    await sql`
      with t as (
        select t.*,
          case when t.kind like 'membership.%' then t.detail->>'user' when t.kind like 'user.%' then t.external_id end as account_key,
          case when t.kind like 'membership.%' then t.detail->>'group' when t.kind like 'group.%' then t.external_id end as group_key
        from ${changeRows(rows)}
      )
      insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
      select ${scope.runId}::uuid, ${scope.tenantId}::uuid, ${scope.integrationId}::uuid, t.kind, t.external_id, t.subject,
        coalesce(t.detail, '{}'::jsonb) || jsonb_build_object('ids', jsonb_strip_nulls(jsonb_build_object(
          'accountId', a.id, 'personId', a.user_id, 'active', a.active, 'locked', case when a.id is not null then l.id is not null end,
          'groupId', g.id,
          'lock', case when t.kind = 'user.deprovisioned' and l.id is not null
                    then jsonb_build_object('id', l.id::text, 'personId', l.user_id, 'reason', l.reason, 'since', l.created_at) end))),
        'applied'
      from t
      -- Per-row probes, as accountByIdpId says why (the lock's key is unique too).
      left join lateral ${accountByIdpId(scope.integrationId, sql.ref('t.account_key'), 'a.id, a.user_id, a.active')} a on true
      left join groups g on g.integration_id = ${scope.integrationId}::uuid and g.external_id = t.group_key
      left join lateral (select l.id, l.user_id, l.reason, l.created_at from locks l
                         where l.integration_id = ${scope.integrationId}::uuid and l.external_id = t.account_key and t.kind like 'user.%' limit 1) l on true
      order by t.n
    `.execute(this.db);
  }

  /**
   * What these changes' subjects are now, by change (kind and external id): `detail.of` as the host app
   * sees them, for subjects a write is about to remove; and for a `user.updated` or
   * `group.updated` whose `changes.attributes` gives the new raw attributes, the attributes before it.
   */
  async describeSubjects(integrationId: string, changes: readonly NewRunChange[]): Promise<Map<string, SubjectBefore>> {
    if (changes.length === 0) return new Map();
    const { rows } = await sql<{ kind: string; external_id: string; of: JsonObject; attributes: JsonObject | null }>`
      select d.kind, d.external_id, d.detail->'of' as of, d.attributes from (${described(integrationId, changes)}) d
    `.execute(this.db);
    return new Map(rows.map((r) => [changeKey({ kind: r.kind, externalId: r.external_id }), { of: r.of, attributes: r.attributes }]));
  }

  /** `changes` as recordApplied stores them after `describeSubjects` (for rows recorded unapplied: a dry run's plan). */
  async describedBefore(integrationId: string, changes: readonly NewRunChange[]): Promise<NewRunChange[]> {
    const before = await this.describeSubjects(integrationId, changes);
    return changes.map((c) => withBefore(c, before.get(changeKey(c))));
  }

  async listChanges(runId: string, limit = 10_000, offset = 0): Promise<RunChange[]> {
    const rows: RunChangeRow[] = await this.db
      .selectFrom('run_changes')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('id')
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map(toChange);
  }

  /** How many changes the run recorded, or only those in `state` (a held run's waiting removals). */
  async countChanges(runId: string, state?: ChangeState): Promise<number> {
    let query = this.db
      .selectFrom('run_changes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('run_id', '=', runId);
    if (state) query = query.where('state', '=', state);
    const row = await query.executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

/**
 * JSON Postgres can store: warnings quote IdP values, and jsonb refuses a NUL (\u0000) and a
 * lone surrogate, so those are spelled out (as \0 and \udXXX) in the strings themselves.
 */
function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? printable(v) : v));
}

export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

function toChange(r: RunChangeRow): RunChange {
  return { kind: r.kind, externalId: r.external_id, subject: r.subject, detail: changeLogDetail(r.detail), state: r.state, at: r.created_at.toISOString() };
}

function toSummary(row: RunRow): RunSummary {
  return {
    id: row.id,
    integrationId: row.integration_id,
    trigger: row.trigger,
    mode: row.mode,
    status: row.status,
    dryRun: row.dry_run,
    queuedAt: row.queued_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    counts: (row.counts as PlanCounts | null) ?? null,
    stats: row.stats ?? null,
    error: row.error,
    heldReason: row.held_reason,
    approvesRunId: row.approves_run_id,
    approvedAt: row.approved_at?.toISOString() ?? null,
    approvedByRunId: row.approved_by_run_id,
    warnings: row.warnings ?? [],
  };
}

/** What describeSubjects read of a change's subject before the write. */
export interface SubjectBefore {
  /** The subject as the host app saw it (`detail.of`). */
  readonly of: JsonObject;
  /** A `user.updated` or `group.updated` with `changes.attributes`: the account's or group's raw attributes before it (null otherwise, or for none). */
  readonly attributes: JsonObject | null;
}

/**
 * A change with what was read of its subject before the write, under the plan's own
 * description (which wins: it is the state after). A `user.updated`'s or `group.updated`'s
 * `changes.attributes` (the new raw attributes, as apply-plan describes it) becomes the attributes that differ,
 * before and after (attributeDiff); it is left out when none does, or nothing was there before.
 */
/**
 * A change's key: its kind and subject (IdP id). Keys the `held` changes a run recorded
 * (heldKeys, apply-plan's planKeys) and describeSubjects' answers, as one batch may hold two
 * changes of one subject (a user's update and the deprovision it came with).
 */
export function changeKey(change: Pick<NewRunChange, 'kind' | 'externalId'>): string {
  return `${change.kind}\u0000${change.externalId}`;
}

function withBefore(change: NewRunChange, before: SubjectBefore | undefined): NewRunChange {
  const detail = change.detail && (change.kind === CHANGE_KINDS.usersUpdated || change.kind === CHANGE_KINDS.groupsUpdated) ? withAttributeDiff(change.detail, before?.attributes ?? null) : change.detail;
  if (!before) return { ...change, detail };
  const planned = (detail?.of ?? {}) as Record<string, JsonObject | undefined>;
  const read = before.of as Record<string, JsonObject | undefined>;
  const of: JsonObject = { ...before.of };
  for (const [key, value] of Object.entries(planned)) of[key] = { ...(read[key] ?? {}), ...(value ?? {}) };
  return { ...change, detail: { ...detail, of } };
}

function withAttributeDiff(detail: JsonObject, previous: JsonObject | null): JsonObject {
  const changes = detail.changes as JsonObject | undefined;
  const next = (changes?.attributes as JsonObject | undefined)?.new as JsonObject | undefined;
  if (!changes || !next) return detail;
  const { attributes: _planned, ...named } = changes;
  const diff = previous ? attributeDiff(previous, next) : undefined;
  return { ...detail, changes: diff ? { ...named, attributes: { previous: diff.previous, new: diff.new } } : named };
}

/** Which run, of which integration and tenant, applied a change: an event's provenance. */
export interface ChangeScope {
  /** Null for a change no run made: an integration's deletion. */
  readonly runId: string | null;
  readonly tenantId: string;
  readonly integrationId: string;
}

/**
 * Change-log rows as a table expression for a FROM clause, named `alias` (default `t`), with
 * the columns kind, external_id, subject, detail (jsonb) and n (1-based position).
 */
export function changeRows(changes: readonly NewRunChange[], alias = 't') {
  return sql`unnest(${changes.map((c) => c.kind)}::text[], ${changes.map((c) => c.externalId)}::text[],
        ${changes.map((c) => c.subject)}::text[], ${changes.map((c) => (c.detail ? JSON.stringify(c.detail) : null))}::jsonb[])
        with ordinality as ${sql.raw(alias)}(kind, external_id, subject, detail, n)`;
}

/**
 * The changes with `detail.of` describing their subjects as the host app sees them (SPEC
 * "Event": the account as \`dirsync users\` shows it, with its id and the person's id; the
 * group; for a deprovision, the lock): read in set-based joins, keyed by (integration, IdP
 * id). A subject that no longer exists keeps what `detail.of` already said of it. Each lookup
 * is a per-row probe (`limit 1`, each key being unique), for the reason accountByIdpId gives.
 */
function described(integrationId: string, changes: readonly NewRunChange[]) {
  return sql`
    select t.n, t.kind, t.external_id, t.subject,
      coalesce(t.detail, '{}'::jsonb) || jsonb_build_object('of', coalesce(t.detail->'of', '{}'::jsonb) || jsonb_strip_nulls(jsonb_build_object(
        'account', case when acct.view is not null then acct.view || jsonb_build_object('locked', lk.view is not null)
                        when t.kind = 'user.deprovisioned' then t.detail->'of'->'account' || '{"active": false, "locked": true}'::jsonb end,
        'group', grp.view,
        'lock', case when t.kind in ('user.deprovisioned', 'user.reprovisioned') then coalesce(lk.view, t.detail->'of'->'lock') end))) as detail,
      case when t.detail->'changes' ? 'attributes' then case t.kind when 'user.updated' then acct.attributes when 'group.updated' then grp.attributes end end as attributes
    from ${changeRows(changes)}
    left join lateral (
      select jsonb_build_object('id', a.id, 'personId', a.user_id, 'externalId', a.external_id, 'userName', a.user_name,
        'email', a.email, 'givenName', a.given_name, 'familyName', a.family_name, 'displayName', a.display_name, 'active', a.active) as view,
        a.attributes
      from accounts a
      where a.integration_id = ${integrationId}::uuid
        and a.external_id = case when t.kind like 'membership.%' then t.detail->>'user' when t.kind like 'user.%' then t.external_id end
      limit 1
    ) acct on true
    left join lateral (
      select jsonb_build_object('id', g.id, 'externalId', g.external_id, 'name', g.name, 'description', g.description) as view, g.attributes
      from groups g
      where g.integration_id = ${integrationId}::uuid
        and g.external_id = case when t.kind like 'membership.%' then t.detail->>'group' when t.kind like 'group.%' then t.external_id end
      limit 1
    ) grp on true
    left join lateral (
      select jsonb_build_object('id', l.id::text, 'personId', l.user_id, 'reason', l.reason, 'since', l.created_at) as view
      from locks l
      where l.integration_id = ${integrationId}::uuid and t.kind like 'user.%' and l.external_id = t.external_id
      limit 1
    ) lk on true`;
}

/** A change's detail as the change log shows it: without `of` and `ids`, the event's description of the subject (the events API shows that). */
function changeLogDetail(detail: JsonObject | null): JsonObject | null {
  if (!detail || !('of' in detail || 'ids' in detail)) return detail;
  const { of: _of, ids: _ids, ...rest } = detail;
  return rest;
}
