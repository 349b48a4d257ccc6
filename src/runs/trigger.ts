import type { Db } from '../db/database.js';
import { type RunRequest, RunRepository, type RunSummary } from '../db/run.repository.js';
import { type Integration, IntegrationRepository } from '../db/integration.repository.js';
import { WebhookRepository } from '../db/webhook.repository.js';
import type { SubjectNames } from '../connectors/connector.js';
import type { RunTrigger } from '../db/schema.js';
import { NotFoundError, UserError } from '../errors.js';
import { IntegrationService } from '../integrations/integration.service.js';
import type { Config } from '../config.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { withTimeout } from '../queue/timeout.js';
import { DEFAULT_FULL_EVERY_MS } from './full-every.js';

/** The queue did not take a run's job in time: the caller answers "try again later". */
export class QueueUnavailableError extends Error {
  override name = 'QueueUnavailableError';
}

/**
 * What a caller asks a run to read:
 * - `full`: the whole scope (`dirsync sync --full`, approvals, dry runs);
 * - `auto`: what changed, by the IdP's change feed (an incremental run), or the whole scope when
 *   a full run is due (none succeeded within the integration's full-every) or the integration has
 *   no feed position yet (the schedule, `dirsync sync`);
 * - `targeted`: named users (ids or logins) and groups only (webhook events, `sync --user`).
 */
export type RunWish =
  | { readonly kind: 'full' }
  | { readonly kind: 'auto' }
  | { readonly kind: 'targeted'; readonly subjects: Partial<SubjectNames> };

/**
 * What a sync asked for by hand asks of a run (`dirsync sync`, the admin API): `full`, `users`
 * (logins: a targeted run, provision on demand), or by default what changed (SPEC "Run").
 * Throws UserError for a contradiction (users with full, or with a dry run).
 */
export function syncWish(
  opts: { dryRun?: boolean | undefined; full?: boolean | undefined; users?: readonly string[] | undefined },
  /** How the caller names the options: the CLI's flags by default, the API's fields for it. */
  terms: { users: string; full: string; dryRun: string } = { users: '--user', full: '--full', dryRun: '--dry-run' },
): RunWish {
  const logins = opts.users ?? [];
  if (logins.length > 0 && opts.full) throw new UserError(`${terms.users} reads only the users named and ${terms.full} reads everything: give one or the other`);
  if (logins.length > 0 && opts.dryRun) throw new UserError(`${terms.dryRun} records the plan of a full read: it cannot be combined with ${terms.users}`);
  const blank = logins.find((login) => login.trim() === '' || login.length > 256);
  if (blank !== undefined) throw new UserError(`${terms.users} takes logins, such as jane@example.com, not ${JSON.stringify(blank.slice(0, 40))}`);
  if (logins.length > 0) return { kind: 'targeted', subjects: { logins: [...new Set(logins.map((l) => l.trim()))] } };
  return opts.full || opts.dryRun ? { kind: 'full' } : { kind: 'auto' };
}


/**
 * Asks for a run of an integration: the one way every caller (CLI, admin API, console,
 * scheduler, webhook) requests one. Triggers that arrive while a run is queued coalesce into
 * it; one that arrives while a run is in progress queues exactly one follow-up (per lane: see
 * RunRepository.trigger). Returns the run that will serve this trigger. Refuses a disabled
 * integration.
 */
export async function requestRun(
  deps: { db: Db; config: Config; queue: DirsyncQueue },
  integrationId: string,
  trigger: RunTrigger,
  options: { dryRun?: boolean; wish?: RunWish } = {},
): Promise<{ run: RunSummary; created: boolean }> {
  const integration = await new IntegrationService(deps.db, deps.config).get(integrationId);
  if (!integration.enabled) {
    throw new UserError(`integration ${integrationId} is disabled: enable it with \`dirsync integration enable ${integrationId}\``);
  }
  return queueRun(deps, integration, trigger, options);
}

/**
 * What a wish comes to for this integration, now: the run's mode and lane. A scim integration
 * has no feed to read and is read whole (its pushes ask for targeted runs: queuePushRun).
 */
export async function resolveWish(db: Db, integration: Integration, wish: RunWish): Promise<RunRequest> {
  if (integration.provider === 'scim') return { mode: 'full', lane: 'full' };
  if (wish.kind === 'targeted') return { mode: 'targeted', lane: 'quick', subjects: wish.subjects };
  if (wish.kind === 'full') return { mode: 'full', lane: 'full' };
  const [cursor, lastFull] = await Promise.all([new IntegrationRepository(db).feedCursor(integration.id), new RunRepository(db).lastFullRunAt(integration.id)]);
  const due = !lastFull || Date.now() - lastFull.getTime() >= (integration.fullEveryMs ?? DEFAULT_FULL_EVERY_MS);
  return cursor === null || due ? { mode: 'full', lane: 'full' } : { mode: 'incremental', lane: 'quick' };
}

/**
 * Records a run (or joins the queued one) and puts it on the queue, for a caller that has
 * already checked the integration is enabled (the webhook receiver checks it in the same
 * statement that authenticates the delivery). A run this call created is deleted again if
 * the queue cannot take it, so a queued run always has its job; with `enqueueTimeoutMs`, a
 * queue that does not answer in time throws QueueUnavailableError.
 */
export async function queueRun(
  deps: { db: Db; queue: DirsyncQueue },
  integrationOrId: Integration | string,
  trigger: RunTrigger,
  options: { dryRun?: boolean; wish?: RunWish; enqueueTimeoutMs?: number } = {},
): Promise<{ run: RunSummary; created: boolean }> {
  const runs = new RunRepository(deps.db);
  const integration = typeof integrationOrId === 'string' ? await new IntegrationRepository(deps.db).find(integrationOrId) : integrationOrId;
  if (!integration) throw new NotFoundError(`integration ${String(integrationOrId)} does not exist`);
  const request = await resolveWish(deps.db, integration, options.wish ?? { kind: 'full' });
  const result = await runs.trigger(integration.id, trigger, options.dryRun ?? false, request);
  // Always (re-)add: if an earlier enqueue was lost (Redis away), this repairs it.
  try {
    const enqueued = enqueue(deps.queue, result.run);
    await (options.enqueueTimeoutMs === undefined ? enqueued : withTimeout(enqueued, options.enqueueTimeoutMs, () => new QueueUnavailableError(`the queue did not answer within ${options.enqueueTimeoutMs} ms`)));
  } catch (error) {
    if (result.created) await runs.deleteQueued(result.run.id);
    throw error;
  }
  return result;
}

/**
 * Asks for a run after a SCIM push was stored, for the SCIM endpoint. The push is already
 * committed, so the run row stays even if the queue cannot take its job (within
 * `enqueueTimeoutMs`): the worker's sweep enqueues queued runs without a job, and nothing
 * pushed waits for more than a sweep. A push that joins an already queued run costs no Redis
 * round trip. Throws when the run could not be recorded or enqueued.
 */
export async function queuePushRun(deps: { db: Db; queue: DirsyncQueue }, integrationId: string, enqueueTimeoutMs: number): Promise<RunSummary> {
  // A scim integration's push is applied from what was pushed; an okta or authentik one's
  // (`--scim`) is read back through the API, beside any full run in flight.
  // One column, no join: this is on the path of every push.
  const provider = (await new WebhookRepository(deps.db).findProvider(integrationId))?.provider;
  const request: RunRequest | undefined = provider && provider !== 'scim' ? { mode: 'targeted', lane: 'quick' } : undefined;
  const { run, created } = await new RunRepository(deps.db).trigger(integrationId, 'scim', false, request);
  if (created) {
    await withTimeout(enqueue(deps.queue, run), enqueueTimeoutMs, () => new QueueUnavailableError(`the queue did not answer within ${enqueueTimeoutMs} ms`));
  }
  return run;
}

/**
 * Approves a held run: records an approval run and queues it. The approval re-reads the IdP
 * and applies the held removals that are still warranted; those the IdP has since undone are
 * skipped and recorded as such. It covers every held run of the integration up to this one.
 */
export async function approveRun(deps: { db: Db; config: Config; queue: DirsyncQueue }, runId: string): Promise<RunSummary> {
  const runs = new RunRepository(deps.db);
  const held = await runs.find(runId);
  if (!held) throw new NotFoundError(`run ${runId} does not exist: \`dirsync runs <integration-id>\` lists the runs`);
  if (held.status !== 'held') {
    throw new UserError(`run ${runId} is ${held.status}, not held: only a held run can be approved`);
  }
  const integration = await new IntegrationService(deps.db, deps.config).get(held.integrationId);
  if (!integration.enabled) {
    throw new UserError(`integration ${integration.id} is disabled: enable it before approving its runs`);
  }
  const approval = await runs.createApproval(held);
  await enqueue(deps.queue, approval);
  return approval;
}

/**
 * Rejects a held run: its held removals are not applied, and are recorded as skipped with the
 * reason; what it already applied (creates, updates) stands. Only this run is closed. The next
 * run plans afresh, so removals the IdP still warrants are held again: fix the IdP (or its
 * scope) before the next run, or approve then. Used by the admin API and the console alike.
 */
export async function rejectRun(deps: { db: Db }, runId: string, by = 'an admin'): Promise<RunSummary> {
  const runs = new RunRepository(deps.db);
  const held = await runs.find(runId);
  if (!held) throw new NotFoundError(`run ${runId} does not exist: \`dirsync runs <integration-id>\` lists the runs`);
  const reason = `rejected by ${by} at ${new Date().toISOString()}`;
  if (held.status !== 'held' || !(await runs.reject(runId, reason))) {
    throw new UserError(`run ${runId} is ${held.status === 'held' ? 'no longer held' : `${held.status}, not held`}: only a held run can be rejected`);
  }
  return (await runs.find(runId))!;
}

/** enqueueRun, with the queue module loaded on first use: the CLI loads this module for every command, BullMQ only for those that queue. */
async function enqueue(...args: Parameters<typeof import('../queue/queue.js').enqueueRun>): ReturnType<typeof import('../queue/queue.js').enqueueRun> {
  return (await import('../queue/queue.js')).enqueueRun(...args);
}
