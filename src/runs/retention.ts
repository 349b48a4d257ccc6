import type { Db } from '../db/database.js';
import { EndpointRepository } from '../db/endpoint.repository.js';
import { EventRepository } from '../db/event.repository.js';
import { RunRepository } from '../db/run.repository.js';
import { StagingRepository } from '../db/staging.repository.js';
import { WebhookRepository } from '../db/webhook.repository.js';

/**
 * How long a webhook event id is remembered to drop a redelivery of it. Okta retries a
 * delivery once, within seconds, and sets no maximum delay on its at-least-once hooks
 * (IDP-FACTS "Okta System Log"); authentik retries failed notification tasks within hours.
 * A week covers both with room to spare. Independent of DIRSYNC_RETENTION: the ids serve only
 * deduplication (the delivery rows keep the record), so they are kept neither shorter nor longer.
 */
export const WEBHOOK_DEDUP_WINDOW_MS = 7 * 86_400_000;

/** Rows one retention statement deletes at most: short statements, short locks. */
export const PRUNE_BATCH = 5_000;

/** What one retention pass deleted, by kind of row. */
export interface PruneReport {
  /** Finished runs, and their change-log rows (plan, held, skipped and applied ones). */
  readonly runs: number;
  readonly runChanges: number;
  /** Events whose run was already gone (deleted integrations, run-less removals). */
  readonly events: number;
  /** Webhook deliveries, rejections included. */
  readonly webhookDeliveries: number;
  /** Webhook event ids past WEBHOOK_DEDUP_WINDOW_MS. */
  readonly webhookEventIds: number;
  /** Finished (delivered or failed) deliveries to event endpoints. */
  readonly endpointDeliveries: number;
  /** Staged reads (src/runs/staged-read.ts) of runs no longer running: what an attempt killed mid-run left. */
  readonly stagedReads: number;
}

/**
 * Deletes what DIRSYNC_RETENTION (`retentionMs`) no longer keeps, in statements of at most
 * `batch` rows: finished runs with their change logs (never held, queued or running ones,
 * nor an integration's last run), events whose run is gone, webhook deliveries, endpoint
 * deliveries that are finished (never one still retried), webhook event ids past the
 * redelivery window, and staged reads of runs that are no longer running. Runs go before events so that an old run's events go with it. Safe to
 * run concurrently with everything else, and to repeat.
 */
export async function pruneExpired(db: Db, retentionMs: number, batch = PRUNE_BATCH): Promise<PruneReport> {
  const { runs, changes } = await new RunRepository(db).pruneFinished(retentionMs, batch);
  const events = await new EventRepository(db).prune(retentionMs, batch);
  const webhooks = new WebhookRepository(db);
  const webhookDeliveries = await webhooks.pruneDeliveries(retentionMs, batch);
  const webhookEventIds = await webhooks.pruneEvents(WEBHOOK_DEDUP_WINDOW_MS, batch);
  const endpointDeliveries = await new EndpointRepository(db).pruneDeliveries(retentionMs, batch);
  const stagedReads = await new StagingRepository(db).prune();
  return { runs, runChanges: changes, events, webhookDeliveries, webhookEventIds, endpointDeliveries, stagedReads };
}

/** A report as one line: "pruned 3 runs, 120 change-log rows, ..." or "nothing to prune". */
export function describePrune(report: PruneReport): string {
  const parts = [
    [report.runs, 'run', 'runs'],
    [report.runChanges, 'change-log row', 'change-log rows'],
    [report.events, 'event of a removed run', 'events of removed runs'],
    [report.webhookDeliveries, 'webhook delivery', 'webhook deliveries'],
    [report.webhookEventIds, 'webhook event id', 'webhook event ids'],
    [report.endpointDeliveries, 'endpoint delivery', 'endpoint deliveries'],
    [report.stagedReads, 'staged read of a run that ended', 'staged reads of runs that ended'],
  ] as const;
  const said = parts.filter(([n]) => n > 0).map(([n, one, many]) => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`);
  return said.length > 0 ? `pruned ${said.join(', ')}` : 'nothing to prune';
}
