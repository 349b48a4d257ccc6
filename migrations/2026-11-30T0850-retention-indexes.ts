import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Indexes that keep each batch of the retention job (src/runs/retention.ts) cheap: every
 * batch reads the oldest rows past DIRSYNC_RETENTION through an index, never a table scan.
 *
 * - `runs_prunable_idx`: finished runs (succeeded, failed) by when they finished. Held,
 *   queued and running runs are never pruned, so they are not in it.
 * - `run_changes_applied_age_idx`: events (applied change-log rows) by their own time, then
 *   id, the order a prune walks them in; rows of a run still kept are stepped over once.
 *   A run's other rows go with it through run_changes_run_idx.
 * - `webhook_deliveries_received_idx`: webhook deliveries (rejections included) by age; the
 *   per-integration index does not serve a query across integrations.
 *
 * webhook_events (webhook_events_received_idx) and event_deliveries (event_deliveries_age_idx)
 * already have theirs.
 */
export async function up(db: Db): Promise<void> {
  await sql`create index runs_prunable_idx on runs (finished_at) where status in ('succeeded', 'failed')`.execute(db);
  await sql`create index run_changes_applied_age_idx on run_changes (created_at, id) where state = 'applied'`.execute(db);
  await sql`create index webhook_deliveries_received_idx on webhook_deliveries (received_at)`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop index webhook_deliveries_received_idx`.execute(db);
  await sql`drop index run_changes_applied_age_idx`.execute(db);
  await sql`drop index runs_prunable_idx`.execute(db);
}
