import type { Command } from 'commander';
import { RunRepository, type RunSummary } from '../db/run.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { runStatusLabel } from '../runs/run-status.js';
import { waitForRunEnd } from '../runs/run-wait.js';
import { approveRun, rejectRun, requestRun, syncWish } from '../runs/trigger.js';
import type { CliContext } from './context.js';
import { describeChanges, describeRun, emit, jsonOption, parseLimit, table } from './output.js';
import { withContext } from './run-command.js';
import { audited } from './audited.js';

/**
 * Waits for the run to finish, showing its progress on a terminal. If it is still queued
 * after `noWorkerMs` and no worker is connected to the queue, says so instead of waiting forever.
 */
async function waitForRun(
  ctx: CliContext,
  runId: string,
  timeoutMs: number,
  options: { showProgress: boolean; noWorkerMs?: number },
): Promise<RunSummary> {
  // A spinner on stderr while it waits (ora: cursor, redraws and clean-up on exit handled).
  const spinner = options.showProgress ? (await import('ora')).default({ stream: process.stderr }).start() : undefined;
  try {
    return await waitForRunEnd(ctx.db, runId, {
      timeoutMs,
      noWorker: { afterMs: options.noWorkerMs ?? 5_000, workers: async () => (await ctx.queue()).getWorkersCount() },
      progress: (run, waited) => {
        if (spinner) spinner.text = progressLine(run, waited);
      },
    });
  } finally {
    spinner?.stop();
  }
}

/**
 * Whether a spinner can be drawn on `stream`: a terminal with a width. A pseudo-terminal of no
 * size (`script -c` under a process without a terminal, some CI runners) reports 0 columns, for
 * which ora 9.4 counts Infinity lines to clear and redraws forever, blocking the event loop.
 */
export function canShowProgress(stream: { isTTY?: boolean; columns?: number }): boolean {
  return stream.isTTY === true && typeof stream.columns === 'number' && stream.columns > 0;
}

function progressLine(run: RunSummary, waitedMs: number): string {
  const s = run.stats ?? {};
  const secs = `${Math.round(waitedMs / 1000)}s`;
  // Queued: no worker is free, or the integration's run in progress goes first (one run per integration at a time).
  if (run.status === 'queued') return `run ${run.id}: queued, waiting for a worker or for the integration's run in progress (${secs})`;
  if (s.reading) return `run ${run.id}: reading the IdP: ${s.requests ?? 0} requests, ${s.records ?? 0} records (${secs})`;
  if (s.planned !== undefined) return `run ${run.id}: applying: ${s.applied ?? 0} of ${s.planned} changes (${secs})`;
  // A large full run applies its creates and updates while it plans, before the total is known.
  if (s.applied !== undefined) return `run ${run.id}: planning and applying: ${s.applied} changes so far (${secs})`;
  return `run ${run.id}: ${run.status} (${secs})`;
}

function parseTimeout(text: string): number {
  const seconds = Number(text);
  if (!(seconds > 0)) throw new UserError(`--timeout must be a number of seconds above 0, not "${text}"`);
  return seconds * 1000;
}

/** Prints a queued run's id, or waits for it and prints its summary (exit 1 if it failed). */
async function report(ctx: CliContext, run: RunSummary, opts: { wait: boolean; timeoutMs: number; json?: boolean | undefined }): Promise<void> {
  if (!opts.wait) {
    emit(opts.json, { id: run.id, status: run.status }, () => run.id);
    return;
  }
  // Live progress on a terminal; nothing extra with --json or when piped.
  const finished = await waitForRun(ctx, run.id, opts.timeoutMs, { showProgress: !opts.json && canShowProgress(process.stderr) });
  emit(opts.json, finished, () => describeRun(finished));
  if (finished.status === 'failed') process.exitCode = 1;
}

export function registerSyncCommands(program: Command): void {
  program
    .command('sync <integration-id>')
    .description(
      'run a reconcile now (queued for the worker): what changed since the last run, by the IdP\'s change feed (incremental), or the whole scope when a full run is due',
    )
    .option('--wait', 'wait for the run to finish and print its summary')
    .option('--dry-run', 'plan only: record what would change, change nothing (reads the whole scope)')
    .option('--full', 'read the whole scope, whatever the change feed says')
    .option('--user <login>', 'read only this user, by login (repeatable): provision on demand', (login: string, logins: string[] = []) => [...logins, login])
    .option('--timeout <seconds>', 'with --wait, give up after this long', '3600')
    .addOption(jsonOption())
    .action((id: string, opts: { wait?: boolean; dryRun?: boolean; full?: boolean; user?: string[]; timeout: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const timeoutMs = parseTimeout(opts.timeout);
        const wish = syncWish({ dryRun: opts.dryRun, full: opts.full, users: opts.user });
        const queue = await ctx.queue();
        const { run } = await audited(ctx, 'integration.sync', { type: 'integration', id }, () => requestRun({ db: ctx.db, config: ctx.config, queue }, id, 'manual', { dryRun: opts.dryRun ?? false, wish }), {
          detail: { dryRun: opts.dryRun ?? false, ...(opts.full && { full: true }), ...(opts.user && { users: opts.user }) },
        });
        await report(ctx, run, { wait: opts.wait ?? false, timeoutMs, json: opts.json });
      }),
    );

  program
    .command('runs <integration-id>')
    .description('recent runs of an integration, newest first')
    .option('--limit <n>', 'how many', '20')
    .addOption(jsonOption())
    .action((id: string, opts: { limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const limit = parseLimit(opts.limit);
        await new IntegrationService(ctx.db, ctx.config).get(id);
        const runs = await new RunRepository(ctx.db).listForIntegration(id, limit);
        emit(opts.json, runs, () =>
          table(
            ['id', 'trigger', 'mode', 'status', 'dryRun', 'queuedAt', 'finishedAt', 'error'],
            runs.map((r) => [r.id, r.trigger, r.mode, runStatusLabel(r).text, r.dryRun, r.queuedAt, r.finishedAt, r.error]),
          ),
        );
      }),
    );

  const run = program.command('run').description('inspect runs and approve held ones');
  run
    .command('approve <run-id>')
    .description("apply a held run's removals that the IdP still warrants (re-reads the IdP first)")
    .option('--no-wait', 'queue the approval and print its run id')
    .option('--timeout <seconds>', 'give up waiting after this long', '3600')
    .addOption(jsonOption())
    .action((id: string, opts: { wait: boolean; timeout: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const timeoutMs = parseTimeout(opts.timeout);
        const queue = await ctx.queue();
        const approval = await audited(ctx, 'run.approve', { type: 'run', id }, () => approveRun({ db: ctx.db, config: ctx.config, queue }, id));
        await report(ctx, approval, { wait: opts.wait, timeoutMs, json: opts.json });
      }),
    );
  run
    .command('reject <run-id>')
    .description("refuse a held run's removals: recorded as skipped, nothing removed (the next run plans afresh)")
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const rejected = await audited(ctx, 'run.reject', { type: 'run', id }, () => rejectRun({ db: ctx.db }, id, 'the command line'));
        emit(opts.json, rejected, () => describeRun(rejected));
      }),
    );
  run
    .command('show <run-id>')
    .description("a run's summary and change log (or plan, for a dry run)")
    .addOption(jsonOption())
    .action((id: string, opts: { json?: boolean }) =>
      withContext(async (ctx) => {
        const runs = new RunRepository(ctx.db);
        const found = await runs.find(id);
        if (!found) throw new NotFoundError(`run ${id} does not exist: \`dirsync runs <integration-id>\` lists the runs`);
        const changes = await runs.listChanges(id);
        emit(opts.json, { ...found, changes }, () => `${describeRun(found)}\n\n${describeChanges(changes, found)}`);
      }),
    );
}
