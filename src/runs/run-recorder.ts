import type { ReadStats } from '../connectors/connector.js';
import type { SkippedRecord } from '../core/model.js';
import type { ListingSizes } from '../core/safety.js';
import { type PlanCounts, type PlanKind, addCounts } from '../core/plan.js';
import type { RunRepository, RunSummary } from '../db/run.repository.js';
import type { RunWarning } from '../db/schema.js';
import type { Logger } from '../log.js';
import { RunInterruptedError } from './interruption.js';

export type ReconcileOutcome =
  | { readonly kind: 'finished'; readonly run: RunSummary }
  | { readonly kind: 'busy' }
  | { readonly kind: 'skipped'; readonly reason: string };

/**
 * Owns a running run's record: its heartbeat (with progress), its statistics, and its end.
 * A run taken over from an attempt that died keeps what that attempt committed.
 */
export class RunRecorder {
  private readonly started = Date.now();
  private readonly stats: Record<string, number> = {};
  private progress: () => Record<string, number> = () => ({});
  private readonly appliedSoFar: Partial<Record<PlanKind, number>> = {};
  private readonly heartbeat: NodeJS.Timeout;
  private applyStart = 0;

  private readonly lost = new AbortController();
  private beating: Promise<void> = Promise.resolve();

  /**
   * Starts recording attempt `attempt` of a run (RunRepository.claim's). What earlier attempts
   * committed is read first, before this attempt writes anything: read later (on a busy pool it
   * could run after this attempt's first batches committed), it would count this attempt's own
   * changes twice.
   */
  static async start(runs: RunRepository, runId: string, attempt: number, heartbeatMs: number, log: Logger): Promise<RunRecorder> {
    return new RunRecorder(runs, runId, attempt, heartbeatMs, log, await runs.appliedCounts(runId));
  }

  private constructor(
    private readonly runs: RunRepository,
    readonly runId: string,
    readonly attempt: number,
    heartbeatMs: number,
    private readonly log: Logger,
    /** What earlier attempts of this run committed. */
    private readonly prior: PlanCounts,
  ) {
    this.heartbeat = setInterval(() => {
      this.beating = runs.heartbeat(runId, attempt, this.progress()).then(
        (ours) => {
          if (ours || this.lost.signal.aborted) return;
          log.warn('the run was taken over by another worker (this one missed its heartbeats); stopping this attempt');
          this.lost.abort(new RunInterruptedError('superseded'));
        },
        (error: unknown) => log.warn({ err: error }, 'heartbeat failed'),
      );
    }, heartbeatMs);
  }

  /** Aborted once a heartbeat finds the run no longer this attempt's (taken over after a stale heartbeat). */
  get superseded(): AbortSignal {
    return this.lost.signal;
  }

  reading(connectorStats: ReadStats): void {
    this.progress = () => ({ reading: 1, requests: connectorStats.requests, records: connectorStats.records });
  }

  /** The read's figures: the connector's counters and, for a read that completed, its sizes (a Snapshot, or a staged read's counts in its shape). */
  read(connectorStats: ReadStats, readMs: number, snapshot?: ListingSizes & { readonly unreadMembers?: { readonly size: number } }): void {
    Object.assign(this.stats, connectorStats, { readMs });
    if (snapshot) {
      Object.assign(this.stats, {
        idpUsers: snapshot.users.size,
        idpGroups: snapshot.groups.size,
        membersSkipped: snapshot.unreadMembers?.size ?? 0,
        recordsSkipped: snapshot.skipped.length,
      });
    }
  }

  /**
   * A staged run applies while it plans (src/runs/staged-run.ts): the apply phase starts now,
   * its progress counts what applied, and the total comes with `planned`.
   */
  applying(): void {
    this.applyStart = Date.now();
    this.progress = () => ({ ...this.stats, applied: Object.values(this.appliedSoFar).reduce((n: number, c) => n + (c ?? 0), 0) });
  }

  planned(total: number): void {
    this.applyStart ||= Date.now();
    this.progress = () => ({
      ...this.stats,
      planned: total,
      applied: Object.values(this.appliedSoFar).reduce((n: number, c) => n + (c ?? 0), 0),
    });
  }

  applied(kind: PlanKind, count: number): void {
    this.appliedSoFar[kind] = count;
  }

  stat(name: string, value: number): void {
    this.stats[name] = value;
  }

  /** This attempt's counts plus what earlier attempts of the run committed. */
  async withEarlierAttempts(counts: PlanCounts): Promise<PlanCounts> {
    return addCounts(this.prior, counts);
  }

  async finish(status: 'succeeded' | 'held', counts: PlanCounts, skipped: readonly SkippedRecord[], held?: { held: number; reason: string }): Promise<ReconcileOutcome> {
    if (held) this.stats.held = held.held;
    this.stats.recordsSkipped = skipped.length;
    this.stats.applyMs = Date.now() - (this.applyStart || this.started);
    this.stats.totalMs = Date.now() - this.started;
    const warnings = skipped.map(toWarning);
    await this.halt();
    if (!(await this.runs.finish(this.runId, { status, counts, stats: this.stats, heldReason: held?.reason, warnings }, this.attempt))) throw new RunInterruptedError('superseded');
    if (held) this.log.warn({ counts, held: held.held, reason: held.reason }, 'run held for approval');
    else this.log.info({ counts, stats: this.stats, skipped: warnings.length }, 'run succeeded');
    return { kind: 'finished', run: (await this.runs.find(this.runId))! };
  }

  async fail(error: string): Promise<ReconcileOutcome> {
    const counts = this.prior;
    this.stats.totalMs = Date.now() - this.started;
    await this.halt();
    if (!(await this.runs.finish(this.runId, { status: 'failed', counts, stats: this.stats, error }, this.attempt))) throw new RunInterruptedError('superseded');
    return { kind: 'finished', run: (await this.runs.find(this.runId))! };
  }

  stop(): void {
    clearInterval(this.heartbeat);
  }

  /**
   * Stops the heartbeat and waits for one in flight: a beat landing after abandonAttempt would
   * make the run look alive again, and one landing after the run is finished would find it no
   * longer running and say it was taken over (finish and fail halt first).
   */
  async halt(): Promise<void> {
    this.stop();
    await this.beating;
  }
}

/** A skipped record as the run summary's warning: `{"externalId","subject","reason"}`. */
function toWarning(record: SkippedRecord): RunWarning {
  return { externalId: record.externalId, subject: record.subject, reason: record.reason };
}
