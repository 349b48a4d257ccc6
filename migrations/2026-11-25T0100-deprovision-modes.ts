import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Locks outlive the global user (delete mode removes the user, but the host app must still
 * refuse their sessions), and remember which IdP user they were for, so reprovisioning can
 * find and lift them. Runs can approve a held run.
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table locks drop constraint if exists locks_user_id_fkey`.execute(db);
  await db.schema.alterTable('locks').addColumn('external_id', 'text').addColumn('user_name', 'text').execute();
  await sql`
    update locks l set external_id = ta.external_id, user_name = ta.user_name
    from tenant_access ta where ta.tenant_id = l.tenant_id and ta.user_id = l.user_id
  `.execute(db);
  await db.schema.createIndex('locks_integration_external_idx').on('locks').columns(['integration_id', 'external_id']).execute();

  await db.schema
    .alterTable('runs')
    .addColumn('approves_run_id', 'uuid', (c) => c.references('runs.id').onDelete('set null'))
    .addColumn('approved_at', 'timestamptz')
    .addColumn('approved_by_run_id', 'uuid')
    .addColumn('held_reason', 'text')
    .execute();
  // Approval runs carry their own purpose: they never coalesce with ordinary triggers.
  await sql`drop index runs_one_queued`.execute(db);
  await sql`create unique index runs_one_queued on runs (integration_id)
            where status = 'queued' and dry_run = false and approves_run_id is null`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop index runs_one_queued`.execute(db);
  await sql`create unique index runs_one_queued on runs (integration_id) where status = 'queued' and dry_run = false`.execute(db);
  await db.schema.alterTable('runs').dropColumn('approves_run_id').dropColumn('approved_at').dropColumn('approved_by_run_id').dropColumn('held_reason').execute();
  await db.schema.dropIndex('locks_integration_external_idx').execute();
  await db.schema.alterTable('locks').dropColumn('external_id').dropColumn('user_name').execute();
  await sql`delete from locks l where not exists (select 1 from users u where u.id = l.user_id)`.execute(db);
  await sql`alter table locks add constraint locks_user_id_fkey foreign key (user_id) references users (id) on delete cascade`.execute(db);
}
