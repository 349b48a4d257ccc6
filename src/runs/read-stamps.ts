import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * "Nothing read later may be overwritten by a run that read earlier" (SPEC "Run"), with
 * targeted runs applying while a full run is in flight (issue #18; the race Firezone's review
 * found: a full run reads X active, an event deactivates X and a targeted run applies it, then
 * the full run applies its older view).
 *
 * Each run has a read time `readAt` (the database's clock when its IdP read began, so no
 * worker's clock matters). Before it loads the tenant's state, a run *declares* it:
 * - a targeted or incremental run stamps each subject it reads whole (a user: its record and all
 *   its memberships; a group: its record and all its members) in `subject_reads`;
 * - a full run raises `integrations.full_read_at`, which stamps every subject at once.
 * A subject's stamp is the larger of the two. Every applying transaction first takes the
 * integration's apply lock, then drops the operations on subjects stamped later than its run's
 * `readAt` (a membership is both its group's and its user's): `ApplyOptions.fence`.
 *
 * Why this holds: declarations and applying transactions take the same lock, so a write of
 * subject X by an earlier reader either commits before the later reader's declaration (which
 * then loads the tenant's state with it, and plans from there) or sees the declaration and is
 * dropped. Declarations only raise stamps, and a stamp is never later than the read it stands
 * for (declared as the read's start), so a run never drops a view newer than what is kept.
 * Ops dropped are counted on the run (`staleSkipped`); the subject is as its later read left it.
 */

/** Subjects a run may no longer write: someone read them after it did. */
export interface Fence {
  /** A full read began applying after this run read: nothing of this run applies any more. */
  readonly all: boolean;
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
}

/** Subjects a targeted read covers whole: users (record and every membership) and groups (record and every member). */
export interface ReadSubjects {
  readonly users: readonly string[];
  readonly groups: readonly string[];
}

/** Serializes declarations and applying transactions of one integration (transaction-scoped). */
async function lockApply(trx: Db, integrationId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`dirsync.apply:${integrationId}`}, 0))`.execute(trx);
}

/** The database's clock: a run's `readAt`, taken just before it reads the IdP. */
export async function databaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db);
  return rows[0]!.now;
}

/** Declares a targeted read of `subjects` at `readAt`. Call before loading the tenant's state. */
export async function declareTargetedRead(db: Db, integrationId: string, readAt: Date, subjects: ReadSubjects): Promise<void> {
  const rows = [
    ...new Set(subjects.users.map((id) => `user\u0000${id}`)),
    ...new Set(subjects.groups.map((id) => `group\u0000${id}`)),
  ].map((key) => {
    const [kind, externalId] = key.split('\u0000') as ['user' | 'group', string];
    return { integration_id: integrationId, kind, external_id: externalId, read_at: readAt };
  });
  await db.transaction().execute(async (trx) => {
    await lockApply(trx, integrationId);
    for (let i = 0; i < rows.length; i += 5_000) {
      await trx
        .insertInto('subject_reads')
        .values(rows.slice(i, i + 5_000))
        .onConflict((oc) => oc.columns(['integration_id', 'kind', 'external_id']).doUpdateSet({ read_at: sql`greatest(subject_reads.read_at, excluded.read_at)` }))
        .execute();
    }
  });
}

/** Declares a full read at `readAt`: every subject at once. Call before loading the tenant's state. */
export async function declareFullRead(db: Db, integrationId: string, readAt: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await lockApply(trx, integrationId);
    await trx
      .updateTable('integrations')
      .set({ full_read_at: sql`greatest(coalesce(full_read_at, '-infinity'::timestamptz), ${readAt}::timestamptz)` })
      .where('id', '=', integrationId)
      .execute();
  });
}

/**
 * Inside an applying transaction: takes the integration's apply lock (held until it commits)
 * and answers which subjects a run that read at `readAt` must leave alone.
 */
export async function fenceFor(trx: Db, integrationId: string, readAt: Date): Promise<Fence> {
  await lockApply(trx, integrationId);
  const full = await trx.selectFrom('integrations').select('full_read_at').where('id', '=', integrationId).executeTakeFirst();
  if (full?.full_read_at && full.full_read_at > readAt) return { all: true, users: new Set(), groups: new Set() };
  const later = await trx.selectFrom('subject_reads').select(['kind', 'external_id']).where('integration_id', '=', integrationId).where('read_at', '>', readAt).execute();
  return {
    all: false,
    users: new Set(later.filter((r) => r.kind === 'user').map((r) => r.external_id)),
    groups: new Set(later.filter((r) => r.kind === 'group').map((r) => r.external_id)),
  };
}

/**
 * Forgets stamps a full read has overtaken (each is below `full_read_at`, which stands for
 * them): keeps subject_reads as small as the targeted reads since the last full run.
 */
export async function pruneOvertakenReads(db: Db, integrationId: string): Promise<void> {
  await sql`
    delete from subject_reads s using integrations i
    where i.id = ${integrationId}::uuid and s.integration_id = i.id and s.read_at <= i.full_read_at`.execute(db);
}
