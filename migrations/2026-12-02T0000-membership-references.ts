import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Memberships keep their references without per-row foreign-key checks (issue #19).
 *
 * A foreign key checks each inserted row with a query of its own (a `SELECT ... FOR KEY SHARE`
 * per row and per key, run as a trigger at the end of the statement). With two chunks of an
 * initial sync applying side by side, the two keys of group_memberships cost about as much as
 * the rest of the statement that adds memberships and records them (auto_explain: 47 ms of
 * statement and 51 ms of checks per batch of 2,000). Taking the same row locks in that
 * statement's join costs a few per cent of it. Two W100k initial syncs run in turn with each:
 * the membership statements took 17.0-18.3 s of Postgres time against 25.3-26.3 s (README,
 * "Benchmarks").
 *
 * What the two foreign keys did, and what does it now:
 * - A membership names an existing group and account when inserted: the one statement that
 *   inserts memberships (DirectoryRepository.addMemberships) takes them from a join on the
 *   group and the account, and locks both rows `FOR KEY SHARE`, as the keys did, so a
 *   concurrent delete of either waits for it to commit, or (committed first) leaves the row
 *   out of the join. Nothing checks other writers: there are none, and a statement-level
 *   check of every inserted row cost most of what dropping the keys saved.
 * - Deleting a group or an account deletes its memberships (was `ON DELETE CASCADE`): a
 *   statement-level trigger on each, with the deleted rows as a transition table, so also
 *   when the delete is itself a cascade (an integration's groups, a person's accounts).
 */
/** The tables whose deleted rows take their memberships with them, and the membership column naming them. */
const CASCADES = [
  { table: 'groups', column: 'group_id' },
  { table: 'accounts', column: 'account_id' },
] as const;

export async function up(db: Db): Promise<void> {
  await sql`alter table group_memberships drop constraint group_memberships_group_id_fkey`.execute(db);
  await sql`alter table group_memberships drop constraint group_memberships_account_id_fkey`.execute(db);
  for (const { table, column } of CASCADES) {
    await sql`
      create function ${sql.raw(`${table}_delete_memberships`)}() returns trigger language plpgsql as $$
      begin
        -- EXECUTE plans each call for its own size: a cached plan made for an integration's
        -- thousands of deleted rows would scan every membership for each later single delete.
        execute 'delete from group_memberships gm using gone d where gm.${sql.raw(column)} = d.id';
        return null;
      end $$`.execute(db);
    await sql`
      create trigger ${sql.raw(`${table}_memberships_cascade`)} after delete on ${sql.raw(table)}
        referencing old table as gone for each statement execute function ${sql.raw(`${table}_delete_memberships`)}()`.execute(db);
  }
}

export async function down(db: Db): Promise<void> {
  for (const { table } of CASCADES) {
    await sql`drop trigger ${sql.raw(`${table}_memberships_cascade`)} on ${sql.raw(table)}`.execute(db);
    await sql`drop function ${sql.raw(`${table}_delete_memberships`)}()`.execute(db);
  }
  // Nothing should dangle; if something does, the keys could not be added back.
  await sql`delete from group_memberships gm where not exists (select 1 from groups g where g.id = gm.group_id) or not exists (select 1 from accounts a where a.id = gm.account_id)`.execute(db);
  await sql`alter table group_memberships add constraint group_memberships_group_id_fkey foreign key (group_id) references groups (id) on delete cascade`.execute(db);
  await sql`alter table group_memberships add constraint group_memberships_account_id_fkey foreign key (account_id) references accounts (id) on delete cascade`.execute(db);
}
