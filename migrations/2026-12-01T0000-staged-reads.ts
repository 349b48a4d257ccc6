import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Staged reads (issue #19): a full run of a large directory writes what it reads here, page by
 * page, instead of holding the whole snapshot in memory, and plans from it chunk by chunk
 * (src/runs/staged-read.ts, src/runs/staged-plan.ts).
 *
 * - `staged_reads`: one per attempt of a run that stages its read (attempts of one run read
 *   apart: one killed mid-read leaves rows that are not the next attempt's). Retention deletes
 *   the reads of runs that ended, with their rows.
 * - `staged_users`: one row per IdP user a read took (its last version), the DirectoryUser as
 *   JSON text, and its userName key (userNameKey) for finding clashes in SQL.
 * - `staged_members`: (group, user) IdP-id pairs as listed; a pair listed twice (pages that
 *   shifted) is two rows, made one when read.
 *
 * Unlogged: a crash of Postgres empties them, and a run whose staging is gone reads again
 * (nothing of a read is applied before the read is complete). No foreign keys on the rows
 * (they are written as fast as pages come): a read's rows are deleted when its run ends.
 */
export async function up(db: Db): Promise<void> {
  await sql`
    create unlogged table staged_reads (
      id uuid primary key default gen_random_uuid(),
      run_id uuid not null,
      started_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index staged_reads_run on staged_reads (run_id)`.execute(db);
  await sql`
    create unlogged table staged_users (
      read_id uuid not null,
      external_id text not null,
      user_key text not null,
      body text not null,
      primary key (read_id, external_id)
    )`.execute(db);
  await sql`
    create unlogged table staged_members (
      read_id uuid not null,
      group_external_id text not null,
      user_external_id text not null
    )`.execute(db);
  await sql`create index staged_members_user on staged_members (read_id, user_external_id)`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop table staged_members`.execute(db);
  await sql`drop table staged_users`.execute(db);
  await sql`drop table staged_reads`.execute(db);
}
