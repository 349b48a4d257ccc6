import type { Db } from '../db/database.js';
import { RunRepository, type RunSummary } from '../db/run.repository.js';
import { NotFoundError, UserError } from '../errors.js';

/** A run that has ended, or waits for an admin: nothing more happens without someone. */
const SETTLED = new Set<RunSummary['status']>(['succeeded', 'failed', 'held']);

export interface RunWaitOptions {
  /** How long to wait, in milliseconds, before giving up with a UserError. */
  readonly timeoutMs: number;
  /**
   * When the run is still queued after `afterMs` (milliseconds), `workers()` is asked how many
   * workers the queue has; none is a UserError saying how to start one, not a silent wait.
   */
  readonly noWorker?: { readonly afterMs: number; readonly workers: () => Promise<number> };
  /** Called on every look while the run is queued or running, with how long it has waited (ms). */
  readonly progress?: (run: RunSummary, waitedMs: number) => void;
  /** Milliseconds between looks (200 by default). */
  readonly intervalMs?: number;
}

/**
 * Waits for a run to succeed, fail or be held, reading it from Postgres every `intervalMs`,
 * and answers it. Used by `dirsync sync --wait` and by `dirsync demo` for its first sync.
 * Throws NotFoundError if the run disappears (its integration deleted), UserError when no
 * worker takes it (see `noWorker`) or after `timeoutMs`.
 */
export async function waitForRunEnd(db: Db, runId: string, options: RunWaitOptions): Promise<RunSummary> {
  const runs = new RunRepository(db);
  const started = Date.now();
  for (;;) {
    const run = await runs.find(runId);
    if (!run) throw new NotFoundError(`run ${runId} disappeared (was its integration deleted?)`);
    if (SETTLED.has(run.status)) return run;
    const waited = Date.now() - started;
    options.progress?.(run, waited);
    if (options.noWorker && run.status === 'queued' && waited > options.noWorker.afterMs && (await options.noWorker.workers()) === 0) {
      throw new UserError(`run ${runId} is queued but no worker is running to pick it up: start one with \`dirsync worker\` or \`dirsync start\``);
    }
    if (waited > options.timeoutMs) throw new UserError(`run ${runId} is still ${run.status} after ${Math.round(options.timeoutMs / 1000)} s; it goes on in the worker: \`dirsync run show ${runId}\` shows how far it got`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
}
