import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * "Nothing read later may be overwritten by a run that read earlier" (SPEC "Run"), with
 * targeted runs applying while a full run is in flight (issue #18; the race Firezone's review
 * found: a full run reads X active, an event deactivates X and a targeted run applies it, then
 * the full run applies its older view).
 *
 * When a run read a subject is known only within an interval: after its read began (`start`,
 * `runs.read_at`) and before its read ended (`end`); a full read of minutes may have read X at
 * any moment in between. So two reads are ordered only when their intervals do not overlap.
 * Every time comes from Postgres's clock, so no worker's clock matters.
 *
 * - **Declare.** Once its read has ended, and before it loads the tenant's state, a run records
 *   `end` for what it read: per subject for a targeted read (a user: its record and all its
 *   memberships; a group: its record and all its members), once (`all`) for a full read.
 * - **Fence.** Every applying transaction takes the integration's apply lock (shared with other
 *   applying transactions, never with a declaration), then drops this
 *   run's operations on any subject another run declared an `end` for that is later than this
 *   run's `start` (that run's read may be later than this one's), and all of them when another
 *   run declared a full read so. A membership is both its user's and its group's.
 *
 * Why this holds: declarations and applying transactions take the same lock. A run B whose read
 * is certainly earlier than A's (B's end before A's start) writes X either before A declares (A
 * then loads the tenant's state with B's write and plans from it) or after, when A's declared
 * end (later than A's start, so later than B's start) fences B. So no write comes from a read
 * certainly earlier than one already declared, and what the tenant shows never moves back.
 * When two reads overlap, whichever applies first stays (the other, seeing the first's end
 * later than its own start, drops its write): either could be the later read. Both may drop,
 * leaving the subject as it was; a targeted run that dropped writes asks for a follow-up that
 * reads its subjects again (src/runs/reconcile.ts). Dropped operations are counted on the run
 * (`staleSkipped`).
 */

/** Subjects a run may no longer write: another run may have read them later than it did. */
export interface Fence {
  /** Another run's full read may be later than this run's read: nothing of this run applies any more. */
  readonly all: boolean;
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
}

/** Subjects a targeted read covers whole: users (record and every membership) and groups (record and every member). */
export interface ReadSubjects {
  readonly users: readonly string[];
  readonly groups: readonly string[];
}

/** This run's read: who, and when it began (see the module's docstring). */
export interface ReadInterval {
  readonly runId: string;
  readonly start: Date;
  /**
   * Users the read took as in scope because the tenant held active accounts for them, without
   * asking the IdP (SubjectRead.assumedInScope). That is knowledge from the tenant's state when
   * the run loaded it, which a run whose read ended before this one's began may change after:
   * so the run applies to them only if their accounts are still active when it starts applying
   * (lostScope). Later changes are fenced as any other: this run declared them read.
   */
  readonly assumedInScope?: readonly string[];
}

/**
 * Orders declarations against applying transactions of one integration (transaction-scoped):
 * a declaration takes the lock alone (`exclusive`), applying transactions share it. Applying
 * transactions need not exclude each other: what a fence drops depends on the declarations
 * alone, so applying them side by side drops what applying them one after the other would.
 * (lostScope reads other runs' writes, and may miss one not yet committed beside it. That
 * write's transaction took the lock after this run declared, or the declaration would have
 * waited for it: if its run's read began before this run's ended, its own fence drops its
 * write of what this run read; if later, that run declared before this transaction took the
 * lock, and this run's fence drops this run's write.) That lets a run apply two chunks at once
 * (src/runs/staged-run.ts).
 *
 * Every applying transaction shares it, fenced or not (applyPlan), so deleting the integration
 * takes it alone too (src/integrations/integration-removal.ts): it waits for the writes in
 * flight, whose memberships hold no lock on the integration's row, and keeps new ones out.
 */
export async function lockApply(trx: Db, integrationId: string, mode: 'exclusive' | 'shared'): Promise<void> {
  const key = `dirsync.apply:${integrationId}`;
  if (mode === 'exclusive') await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);
  else await sql`select pg_advisory_xact_lock_shared(hashtextextended(${key}, 0))`.execute(trx);
}

/** The database's clock: a read's start (taken just before it) and end (just after). */
export async function databaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db);
  return rows[0]!.now;
}

/**
 * Declares that run `runId` read `subjects` (or, `all`, the whole scope) and that its read
 * ended now, by the database's clock. Call when the IdP read has returned, before loading the
 * tenant's state. Returns the end it declared.
 */
export async function declareRead(db: Db, integrationId: string, runId: string, subjects: ReadSubjects | 'all'): Promise<Date> {
  return db.transaction().execute(async (trx) => {
    await lockApply(trx, integrationId, 'exclusive');
    const end = await databaseNow(trx);
    const keys: Array<{ kind: 'user' | 'group' | 'all'; external_id: string }> =
      subjects === 'all'
        ? [{ kind: 'all', external_id: '' }]
        : [
            ...[...new Set(subjects.users)].map((id) => ({ kind: 'user' as const, external_id: id })),
            ...[...new Set(subjects.groups)].map((id) => ({ kind: 'group' as const, external_id: id })),
          ];
    for (let i = 0; i < keys.length; i += 5_000) {
      await trx
        .insertInto('subject_reads')
        .values(keys.slice(i, i + 5_000).map((k) => ({ integration_id: integrationId, ...k, run_id: runId, read_at: end })))
        .onConflict((oc) => oc.columns(['integration_id', 'kind', 'external_id', 'run_id']).doUpdateSet({ read_at: end }))
        .execute();
    }
    return end;
  });
}

/**
 * Inside an applying transaction: takes the integration's apply lock (held until it commits)
 * and answers which subjects the run whose read is `read` must leave alone.
 */
export async function fenceFor(trx: Db, integrationId: string, read: ReadInterval): Promise<Fence> {
  await lockApply(trx, integrationId, 'shared');
  const later = await trx
    .selectFrom('subject_reads')
    .select(['kind', 'external_id'])
    .where('integration_id', '=', integrationId)
    .where('run_id', '!=', read.runId)
    .where('read_at', '>', read.start)
    .execute();
  return {
    all: later.some((r) => r.kind === 'all'),
    users: new Set(later.filter((r) => r.kind === 'user').map((r) => r.external_id)),
    groups: new Set(later.filter((r) => r.kind === 'group').map((r) => r.external_id)),
  };
}

/**
 * Inside an applying transaction, after fenceFor: of `userIds`, those whose accounts are no
 * longer active (deprovisioned or gone). Asked once, before the run's first write, since the
 * run's own deprovisions would answer it too.
 */
export async function lostScope(trx: Db, integrationId: string, userIds: readonly string[]): Promise<Set<string>> {
  if (userIds.length === 0) return new Set();
  const active = await trx
    .selectFrom('accounts')
    .select('external_id')
    .where('integration_id', '=', integrationId)
    .where(sql<boolean>`external_id = any(${[...userIds]}::text[])`)
    .where('active', '=', true)
    .execute();
  const still = new Set(active.map((r) => r.external_id));
  return new Set(userIds.filter((id) => !still.has(id)));
}

/**
 * Forgets declarations no run can be fenced by any more: those ending before every running run
 * of the integration began its read (a run not yet reading will begin later still).
 */
export async function pruneReads(db: Db, integrationId: string): Promise<void> {
  await sql`
    delete from subject_reads
    where integration_id = ${integrationId}::uuid
      and read_at < coalesce((select min(read_at) from runs where integration_id = ${integrationId}::uuid and status = 'running' and read_at is not null), now())`.execute(db);
}
