import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Rejected webhook deliveries are recorded too (SPEC: `dirsync webhooks` shows "rejected ones
 * too"; the console's deliveries): outcome `rejected`, with the answer's status and reason in
 * `detail`, for a delivery to an integration that exists (a wrong or missing secret, a
 * disabled integration, a body that is not the IdP's, a scim integration, which takes none).
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table webhook_deliveries drop constraint webhook_deliveries_outcome_check`.execute(db);
  await sql`alter table webhook_deliveries add constraint webhook_deliveries_outcome_check check (outcome in ('triggered', 'ignored', 'duplicate', 'rejected'))`.execute(db);
  await sql`alter table webhook_deliveries drop constraint webhook_deliveries_source_check`.execute(db);
  await sql`alter table webhook_deliveries add constraint webhook_deliveries_source_check check (source in ('okta', 'authentik', 'scim'))`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`delete from webhook_deliveries where outcome = 'rejected' or source = 'scim'`.execute(db);
  await sql`alter table webhook_deliveries drop constraint webhook_deliveries_outcome_check`.execute(db);
  await sql`alter table webhook_deliveries add constraint webhook_deliveries_outcome_check check (outcome in ('triggered', 'ignored', 'duplicate'))`.execute(db);
  await sql`alter table webhook_deliveries drop constraint webhook_deliveries_source_check`.execute(db);
  await sql`alter table webhook_deliveries add constraint webhook_deliveries_source_check check (source in ('okta', 'authentik'))`.execute(db);
}
