import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * How an integration authenticates, readable without the encryption key: `integration list`
 * and the dashboards show it, and an Okta service app's client id (not a secret) with it.
 */
export async function up(db: Db): Promise<void> {
  await db.schema
    .alterTable('integrations')
    .addColumn('credential_kind', 'text', (c) => c.notNull().defaultTo('token').check(sql`credential_kind in ('token', 'okta-private-key')`))
    .addColumn('okta_client_id', 'text')
    .execute();
}

export async function down(db: Db): Promise<void> {
  await db.schema.alterTable('integrations').dropColumn('credential_kind').dropColumn('okta_client_id').execute();
}
