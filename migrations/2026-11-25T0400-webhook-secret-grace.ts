import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * A rotated webhook secret keeps working until its grace period ends, so the IdP can be
 * switched to the new one without dropping events. Only the last secret retired is kept.
 */
export async function up(db: Db): Promise<void> {
  await db.schema
    .alterTable('integrations')
    .addColumn('webhook_secret_previous_hash', 'text')
    .addColumn('webhook_secret_previous_expires_at', 'timestamptz')
    .execute();
  await db.schema
    .alterTable('integrations')
    .addCheckConstraint(
      'webhook_secret_previous_expires',
      sql`(webhook_secret_previous_hash is null) = (webhook_secret_previous_expires_at is null)`,
    )
    .execute();
}

export async function down(db: Db): Promise<void> {
  await db.schema.alterTable('integrations').dropColumn('webhook_secret_previous_hash').dropColumn('webhook_secret_previous_expires_at').execute();
}
