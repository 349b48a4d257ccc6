import { type Kysely, sql } from 'kysely';

// Migrations take Kysely<any>: they must keep working whatever the schema types become later.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

export async function up(db: Db): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('integrations')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('provider', 'text', (c) => c.notNull().check(sql`provider in ('okta', 'authentik')`))
    .addColumn('base_url', 'text', (c) => c.notNull())
    // AES-256-GCM envelope, authenticated with the integration id (see src/crypto.ts).
    .addColumn('credentials', 'bytea', (c) => c.notNull())
    .addColumn('okta_app_id', 'text')
    .addColumn('authentik_app', 'text')
    .addColumn('deprovision_mode', 'text', (c) =>
      c.notNull().defaultTo('suspend').check(sql`deprovision_mode in ('suspend', 'remove-access', 'delete')`),
    )
    .addColumn('threshold_percent', 'real')
    .addColumn('schedule_every_ms', 'bigint', (c) => c.check(sql`schedule_every_ms > 0`))
    .addColumn('schedule_cron', 'text')
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('webhook_secret_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('one_schedule', sql`schedule_every_ms is null or schedule_cron is null`)
    .execute();
  await db.schema.createIndex('integrations_tenant_idx').on('integrations').column('tenant_id').execute();

  // One row per person across all tenants; matched case-insensitively by userName.
  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('user_name', 'text', (c) => c.notNull())
    .addColumn('user_name_key', 'text', (c) => c.notNull().unique().generatedAlwaysAs(sql`lower(user_name)`).stored())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // A user's access to one tenant, owned by the integration that provisions it, with the
  // attributes that IdP reports.
  await db.schema
    .createTable('tenant_access')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('integration_id', 'uuid', (c) => c.notNull().references('integrations.id').onDelete('cascade'))
    .addColumn('external_id', 'text', (c) => c.notNull())
    .addColumn('user_name', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('given_name', 'text')
    .addColumn('family_name', 'text')
    .addColumn('display_name', 'text')
    .addColumn('active', 'boolean', (c) => c.notNull())
    .addColumn('idp_status', 'text', (c) => c.notNull())
    .addColumn('attributes', 'jsonb', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('deprovisioned_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('tenant_access_integration_external_key', ['integration_id', 'external_id'])
    .addUniqueConstraint('tenant_access_tenant_user_key', ['tenant_id', 'user_id'])
    .execute();
  await db.schema.createIndex('tenant_access_user_idx').on('tenant_access').column('user_id').execute();

  await db.schema
    .createTable('groups')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('integration_id', 'uuid', (c) => c.notNull().references('integrations.id').onDelete('cascade'))
    .addColumn('external_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('attributes', 'jsonb', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('groups_integration_external_key', ['integration_id', 'external_id'])
    .execute();
  await db.schema.createIndex('groups_tenant_idx').on('groups').column('tenant_id').execute();

  await db.schema
    .createTable('group_memberships')
    .addColumn('group_id', 'uuid', (c) => c.notNull().references('groups.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('group_memberships_pkey', ['group_id', 'user_id'])
    .execute();
  await db.schema.createIndex('group_memberships_user_idx').on('group_memberships').column('user_id').execute();

  // The host app checks for a row here to end sessions and refuse issued credentials.
  await db.schema
    .createTable('locks')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('integration_id', 'uuid', (c) => c.references('integrations.id').onDelete('set null'))
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('run_id', 'uuid')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('locks_pkey', ['tenant_id', 'user_id'])
    .execute();

  await db.schema
    .createTable('runs')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('integration_id', 'uuid', (c) => c.notNull().references('integrations.id').onDelete('cascade'))
    .addColumn('trigger', 'text', (c) => c.notNull().check(sql`trigger in ('schedule', 'webhook', 'manual')`))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('queued', 'running', 'succeeded', 'failed', 'held')`),
    )
    .addColumn('dry_run', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('queued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('heartbeat_at', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('counts', 'jsonb')
    .addColumn('stats', 'jsonb')
    .addColumn('error', 'text')
    .execute();
  await db.schema
    .createIndex('runs_integration_queued_at_idx')
    .on('runs')
    .columns(['integration_id', 'queued_at desc'])
    .execute();
  // Triggers coalesce: at most one queued (non-dry) run per integration, enforced atomically.
  await sql`create unique index runs_one_queued on runs (integration_id) where status = 'queued' and dry_run = false`.execute(db);
  // At most one run per integration at a time, whatever worker claims it.
  await sql`create unique index runs_one_running on runs (integration_id) where status = 'running'`.execute(db);

  // The change log: one row per applied (or, for dry runs, planned) operation.
  await db.schema
    .createTable('run_changes')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('runs.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('external_id', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb')
    .addColumn('applied', 'boolean', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('run_changes_run_idx').on('run_changes').columns(['run_id', 'id']).execute();
}

export async function down(db: Db): Promise<void> {
  for (const table of [
    'run_changes',
    'runs',
    'locks',
    'group_memberships',
    'groups',
    'tenant_access',
    'users',
    'integrations',
    'tenants',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
