import { sql } from 'kysely';
import { type DirectoryUser, userNameKey } from '../core/model.js';
import type { Db } from './database.js';

/**
 * A range of IdP ids in the database's order of text (its default collation): after `after`
 * (null: from the first) up to and including `upTo` (null: to the last). How a staged run cuts
 * its users into chunks (src/runs/staged-plan.ts); the same order is used by every query, so
 * consecutive ranges cover every id exactly once.
 */
export interface IdRange {
  readonly after: string | null;
  readonly upTo: string | null;
}

/** The SQL condition "`column` is in `range`". */
export function inRange(column: string, range: IdRange) {
  const ref = sql.ref(column);
  return sql<boolean>`(${range.after}::text is null or ${ref} > ${range.after}::text) and (${range.upTo}::text is null or ${ref} <= ${range.upTo}::text)`;
}

/**
 * What a staged read wrote (migration 2026-12-01T0000-staged-reads): the IdP users one attempt
 * of a run read, and the group members the IdP listed, keyed by the read (`begin`). Rows live
 * from the read to the end of its attempt: `clear` removes them, `prune` what a killed attempt
 * left once its run ended.
 */
export class StagingRepository {
  constructor(private readonly db: Db) {}

  /** Starts a read for run `runId` (one attempt of it): its id, which keys what it stages. */
  async begin(runId: string): Promise<string> {
    const { rows } = await sql<{ id: string }>`insert into staged_reads (run_id) values (${runId}::uuid) returning id`.execute(this.db);
    return rows[0]!.id;
  }

  /** Removes the read and every row it staged. */
  async clear(readId: string): Promise<void> {
    await sql`delete from staged_users where read_id = ${readId}::uuid`.execute(this.db);
    await sql`delete from staged_members where read_id = ${readId}::uuid`.execute(this.db);
    await sql`delete from staged_reads where id = ${readId}::uuid`.execute(this.db);
  }

  /**
   * Removes the reads of runs that are no longer running (or gone), with their rows: what an
   * attempt killed mid-run left, once its run ended. Then rows whose read is gone (a write
   * that landed after its read was cleared). Answers how many reads went.
   */
  async prune(): Promise<number> {
    const { rows } = await sql<{ id: string }>`
      select r.id from staged_reads r
      where not exists (select 1 from runs where runs.id = r.run_id and runs.status = 'running')
    `.execute(this.db);
    for (const { id } of rows) await this.clear(id);
    await sql`delete from staged_users s where not exists (select 1 from staged_reads r where r.id = s.read_id)`.execute(this.db);
    await sql`delete from staged_members s where not exists (select 1 from staged_reads r where r.id = s.read_id)`.execute(this.db);
    return rows.length;
  }

  /**
   * Whether the read is still whole: its row exists and it holds `users` users. Unlogged tables
   * are emptied when Postgres restarts after a crash (and are empty on a promoted standby), and
   * a run must never take a read that vanished for a directory that emptied.
   */
  async intact(readId: string, users: number): Promise<boolean> {
    const { rows } = await sql<{ n: string | null }>`
      select (select count(*) from staged_users where read_id = ${readId}::uuid) as n
      where exists (select 1 from staged_reads where id = ${readId}::uuid)
    `.execute(this.db);
    return rows.length === 1 && Number(rows[0]!.n) === users;
  }

  /** Stages these users (each once: the caller keeps a record's last version); a user staged already is replaced. */
  async stageUsers(readId: string, users: readonly DirectoryUser[]): Promise<void> {
    if (users.length === 0) return;
    // One JSON document, not text arrays: node-postgres escapes every quote of every body in an
    // array literal, which cost the read (bound by the connector's CPU) 5 times as much.
    const rows = JSON.stringify(users.map((u) => ({ id: u.externalId, key: userNameKey(u.userName), body: u })));
    await sql`
      insert into staged_users (read_id, external_id, user_key, body)
      select ${readId}::uuid, t.id, t.key, t.body::text
      from json_to_recordset(${rows}::json) as t(id text, key text, body json)
      on conflict (read_id, external_id) do update set user_key = excluded.user_key, body = excluded.body
    `.execute(this.db);
  }

  /** Removes these users from the run's staging (a later version of the record cannot be taken). */
  async unstageUsers(readId: string, externalIds: readonly string[]): Promise<void> {
    if (externalIds.length === 0) return;
    await sql`delete from staged_users where read_id = ${readId}::uuid and external_id = any(${externalIds}::text[])`.execute(this.db);
  }

  /** Stages (group, user) IdP-id pairs as the IdP listed them; `groups` and `users` are aligned. */
  async stageMembers(readId: string, groups: readonly string[], users: readonly string[]): Promise<void> {
    if (groups.length === 0) return;
    await sql`
      insert into staged_members (read_id, group_external_id, user_external_id)
      select ${readId}::uuid, g, u from unnest(${groups}::text[], ${users}::text[]) as t(g, u)
    `.execute(this.db);
  }

  /**
   * Staged users whose userName keys another staged user shares (SnapshotBuilder's clashes), as
   * read. One pass over the read's rows, whatever the statistics say: the same question as a
   * semi-join planned as a nested loop (statistics from when the tables were empty) took
   * 100,000 x 100,000 comparisons.
   */
  async clashing(readId: string): Promise<DirectoryUser[]> {
    const { rows } = await sql<{ body: string }>`
      select body from (
        select body, count(*) over (partition by user_key) as same
        from staged_users where read_id = ${readId}::uuid
      ) keyed
      where same > 1
    `.execute(this.db);
    return rows.map((r) => JSON.parse(r.body) as DirectoryUser);
  }

  /**
   * Staged users entering the scope: active as read, and without an active account of the
   * integration (completeSnapshot's `groupsOf` users): their groups must be read from the IdP.
   */
  async entering(readId: string, integrationId: string): Promise<string[]> {
    const { rows } = await sql<{ id: string }>`
      select s.external_id as id from staged_users s
      left join accounts a on a.integration_id = ${integrationId}::uuid and a.external_id = s.external_id
      where s.read_id = ${readId}::uuid and (s.body::jsonb ->> 'active')::boolean and not coalesce(a.active, false)
    `.execute(this.db);
    return rows.map((r) => r.id);
  }

  /** The groups whose staged members include any of these users. */
  async groupsListing(readId: string, userIds: readonly string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const { rows } = await sql<{ group: string }>`
      select distinct group_external_id as "group" from staged_members
      where read_id = ${readId}::uuid and user_external_id = any(${userIds}::text[])
    `.execute(this.db);
    return rows.map((r) => r.group);
  }

  /** Refreshes the planner's statistics of the staging tables (after a large read). */
  async analyze(): Promise<void> {
    await sql`analyze staged_users, staged_members`.execute(this.db);
  }

  /** How many users the read staged. */
  async countUsers(readId: string): Promise<number> {
    const { rows } = await sql<{ n: string }>`select count(*) as n from staged_users where read_id = ${readId}::uuid`.execute(this.db);
    return Number(rows[0]!.n);
  }

  /** The run's staged users in `range`. */
  async usersIn(readId: string, range: IdRange): Promise<DirectoryUser[]> {
    const { rows } = await sql<{ body: string }>`
      select body from staged_users where read_id = ${readId}::uuid and ${inRange('external_id', range)}
    `.execute(this.db);
    return rows.map((r) => JSON.parse(r.body) as DirectoryUser);
  }

  /** The (group, user) pairs the IdP listed for the users in `range`, each once. */
  async membersIn(readId: string, range: IdRange): Promise<Array<{ group: string; user: string }>> {
    const { rows } = await sql<{ group: string; user: string }>`
      select distinct group_external_id as "group", user_external_id as "user"
      from staged_members where read_id = ${readId}::uuid and ${inRange('user_external_id', range)}
    `.execute(this.db);
    return rows;
  }

  /**
   * Which of `ranges` (by index) each of these ids falls in, by the database's order of text
   * (the ranges' own): index -> ids.
   */
  async chunkOf(ids: readonly string[], ranges: readonly IdRange[]): Promise<Map<number, string[]>> {
    const byChunk = new Map<number, string[]>();
    if (ids.length === 0) return byChunk;
    const bounds = ranges.flatMap((r) => (r.upTo === null ? [] : [r.upTo]));
    // Range i holds the ids above i bounds: (bound i-1, bound i].
    const { rows } = await sql<{ id: string; chunk: number }>`
      select s.id, (select count(*) from unnest(${bounds}::text[]) b where b < s.id)::int as chunk
      from unnest(${ids}::text[]) as s(id)
    `.execute(this.db);
    for (const { id, chunk } of rows) {
      const list = byChunk.get(chunk);
      if (list) list.push(id);
      else byChunk.set(chunk, [id]);
    }
    return byChunk;
  }

  /**
   * Cuts the IdP ids a staged plan covers (the run's staged users, the integration's accounts,
   * and `extra`: users skipped as unreadable) into ranges of about `size` ids, in the
   * database's order: at least one range, the last open-ended.
   */
  async ranges(readId: string, integrationId: string, extra: readonly string[], size: number): Promise<IdRange[]> {
    const { rows } = await sql<{ id: string }>`
      select id from (
        select id, row_number() over (order by id) as n
        from (
          select external_id as id from staged_users where read_id = ${readId}::uuid
          union select external_id from accounts where integration_id = ${integrationId}::uuid
          union select unnest(${extra}::text[])
        ) ids
      ) numbered
      where n % ${size} = 0
      order by id
    `.execute(this.db);
    const ranges: IdRange[] = [];
    let after: string | null = null;
    for (const { id } of rows) {
      ranges.push({ after, upTo: id });
      after = id;
    }
    ranges.push({ after, upTo: null });
    return ranges;
  }
}
