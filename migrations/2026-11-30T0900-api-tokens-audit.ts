import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Scoped API tokens (SPEC: `dirsync token create`) and the audit log of admin actions.
 *
 * A token is stored as the SHA-256 of its text: tokens are 32 random bytes, so a fast hash is
 * enough (no dictionary to guess from). Revoked tokens stay, so the audit log's token ids keep
 * their names.
 *
 * The audit log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE. It has no
 * foreign keys, so deleting a tenant or an integration never has to touch it. Pruning it is a
 * deliberate act of a database owner (`alter table audit_log disable trigger ...`), not
 * something dirsync does.
 */
export async function up(db: Db): Promise<void> {
  await sql`
    create table api_tokens (
      id uuid primary key default gen_random_uuid(),
      name text not null check (length(name) between 1 and 100),
      role text not null check (role in ('viewer', 'operator', 'admin')),
      tenant_id uuid references tenants(id) on delete cascade,
      token_hash text not null unique,
      created_at timestamptz not null default now(),
      created_by text not null,
      revoked_at timestamptz
    )`.execute(db);
  await sql`
    create table audit_log (
      id bigserial primary key,
      at timestamptz not null default now(),
      actor text not null,
      token_id uuid,
      role text,
      actor_tenant_id uuid,
      action text not null,
      target_type text,
      target_id text,
      tenant_id uuid,
      source text not null,
      outcome text not null check (outcome in ('ok', 'refused', 'failed')),
      reason text,
      detail jsonb
    )`.execute(db);
  await sql`create index audit_log_at on audit_log (at)`.execute(db);
  await sql`create index audit_log_tenant_at on audit_log (tenant_id, at)`.execute(db);
  await sql`
    create function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only: % is refused', tg_op using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`create trigger audit_log_no_change before update or delete on audit_log for each row execute function audit_log_append_only()`.execute(db);
  await sql`create trigger audit_log_no_truncate before truncate on audit_log for each statement execute function audit_log_append_only()`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop table audit_log`.execute(db);
  await sql`drop function audit_log_append_only()`.execute(db);
  await sql`drop table api_tokens`.execute(db);
}
