import { setTimeout } from 'node:timers/promises';
import { changeLogId, destructive, membershipDetail } from '../core/approvals.js';
import type { DirectoryGroup, DirectoryUser, JsonObject, SkippedRecord } from '../core/model.js';
import { CHANGE_KINDS, type Membership, type Plan, type PlanCounts, type PlanKind, type UserDeprovision, type UserGrant, type UserUpdate, updateWithStatus, zeroCounts } from '../core/plan.js';
import type { DeprovisionMode, Policy } from '../core/policy.js';
import { type Db, isDataError, isTransactionConflict } from '../db/database.js';
import { DirectoryRepository, type WriteScope } from '../db/directory.repository.js';
import { type NewRunChange, RunRepository, changeKey } from '../db/run.repository.js';
import { type Fence, type ReadInterval, fenceFor, lockApply, lostScope } from '../runs/read-stamps.js';

/** Operations per transaction: large enough that round trips do not dominate, small enough to keep transactions short. */
const DEFAULT_BATCH = 2_000;

export interface ApplyOptions {
  /** Operations per transaction. */
  readonly batchSize?: number;
  /** Called after each committed batch (progress, heartbeats, and crash tests). */
  readonly afterBatch?: (kind: PlanKind, applied: number) => Promise<void> | void;
  /**
   * The run's IdP read (src/runs/read-stamps.ts): each transaction drops the operations on
   * subjects another run may have read later. Without it, nothing is dropped (a dry run's
   * record, an integration's removal).
   */
  readonly read?: ReadInterval;
}

export interface ApplyResult {
  readonly counts: PlanCounts;
  /** Records the database refused, each skipped with the reason (SPEC "Per-record isolation"). */
  readonly skipped: readonly SkippedRecord[];
  /** Operations dropped because another run may have read their subject later (see ApplyOptions.read). */
  readonly stale: number;
  /** The users and groups those operations were on (a membership: both): what to read again. */
  readonly staleSubjects: { readonly userIds: readonly string[]; readonly groupIds: readonly string[] };
}

/** The subjects an operation writes: a membership is both its user's and its group's. */
interface Subjects {
  readonly user?: string;
  readonly group?: string;
}

/** One kind of operation, cut into batches; the item type is closed over so steps can share a list. */
interface Step {
  readonly kind: PlanKind;
  batches(size: number): Iterable<Batch>;
}

interface Batch {
  readonly kind: PlanKind;
  readonly size: number;
  readonly changes: readonly NewRunChange[];
  write(repo: DirectoryRepository, scope: WriteScope): Promise<Written>;
  /** The batch as single-item batches, for when one of its records fails. */
  items(): Batch[];
  /** The batch without the operations on fenced subjects, how many were dropped, and their subjects. */
  without(fence: Fence): { batch: Batch | undefined; dropped: number; subjects: Subjects[] };
  /** The same item in a form more likely to apply (a deprovision without its attribute refresh), if any. */
  fallback?(): Batch | undefined;
  describe(): SkippedRecord;
}

/** What one batch's transaction did: taken in by applyPlan once it committed. */
interface Committed {
  /** Changes applied, by kind: a batch's own, and the updates that came with its deprovisions or reprovisions. */
  readonly applied: Partial<Record<PlanKind, number>>;
  /** Operations dropped for another run's later read, and their subjects. */
  readonly dropped: number;
  readonly subjects: readonly Subjects[];
  /** Grants refused as per-record conflicts (Written.refused), as the run's warnings. */
  readonly refused: readonly SkippedRecord[];
}

/** What writing a batch did beyond what its changes say. */
interface Written {
  /** IdP ids of users it refused (a grant's per-record conflicts): not applied. */
  readonly refused?: readonly string[];
  /**
   * The write recorded its own change-log rows, in the same statement (how many): the bulk
   * kinds (created users, added memberships), where a second statement joining the ids back
   * costs as much as the write. Users it refused are neither written nor recorded.
   */
  readonly recorded?: number;
}

/**
 * Applies a plan in batches. Each batch is one transaction holding both the state change and
 * its change-log rows, so the log never claims more than happened. Every write is keyed by
 * (integration, IdP id) and converges when repeated: after a crash at any point, the next run
 * re-plans from what was committed and finishes the job with no duplicates.
 *
 * A batch that fails on one record's data is applied again record by record; a record that
 * still fails is skipped and returned, and everything else applies.
 *
 * Order: groups and users first, so memberships can reference them; updates before creates,
 * so a login a renamed user gave up is free for the new user who takes it; removals last.
 */
export async function applyPlan(
  db: Db,
  scope: WriteScope,
  plan: Plan,
  policy: Policy,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const applied: Record<PlanKind, number> = { ...zeroCounts() };
  const skipped: SkippedRecord[] = [];
  let stale = 0;
  const staleUsers = new Set<string>();
  const staleGroups = new Set<string>();
  // Users taken as in scope whose accounts another run deprovisioned since (ReadInterval.assumedInScope).
  let lost: Set<string> | undefined;
  // What a batch's transaction found is taken in only once it committed: a transaction that
  // fails is tried again item by item, and must not count its drops or refusals twice.
  const commit = async (whole: Batch): Promise<Partial<Record<PlanKind, number>>> => {
    const done = await retryConflicts(() => db.transaction().execute(async (trx): Promise<Committed> => {
      let batch: Batch | undefined = whole;
      let dropped = 0;
      let subjects: Subjects[] = [];
      if (options.read) {
        // Held until commit: no other run of the integration declares a read meanwhile.
        const fence = await fenceFor(trx, scope.integrationId, options.read);
        lost ??= await lostScope(trx, scope.integrationId, options.read.assumedInScope ?? []);
        ({ batch, dropped, subjects } = whole.without(lost.size === 0 ? fence : { ...fence, users: new Set([...fence.users, ...lost]) }));
        if (!batch) return { applied: {}, dropped, subjects, refused: [] };
      } else {
        // What fenceFor takes: the integration's deletion waits for this transaction.
        await lockApply(trx, scope.integrationId, 'shared');
      }
      const runs = new RunRepository(trx);
      // An event describes its subject as it is after the change; one the change removes, as it was.
      const before = DESCRIBED_BEFORE.has(batch.kind) ? await runs.describeSubjects(scope.integrationId, batch.changes) : undefined;
      const written = await batch.write(new DirectoryRepository(trx), scope);
      const refusedIds = new Set(written.refused);
      // Only a refusal needs the batch described: a write that records its own rows (added
      // memberships) must not have its 2,000 descriptions built for nothing.
      const refused: SkippedRecord[] =
        refusedIds.size === 0
          ? []
          : batch.changes.filter((c) => refusedIds.has(c.externalId)).map((c) => ({ kind: 'user', externalId: c.externalId, subject: c.subject, reason: `${c.subject}: ${REFUSED}` }));
      if (written.recorded !== undefined) return { applied: { [batch.kind]: written.recorded }, dropped, subjects, refused };
      const changes = refusedIds.size > 0 ? batch.changes.filter((c) => !refusedIds.has(c.externalId)) : batch.changes;
      await runs.recordApplied(scope, changes, { ...(before && { before }) });
      return { applied: countKinds(changes), dropped, subjects, refused };
    }));
    stale += done.dropped;
    for (const s of done.subjects) {
      if (s.user !== undefined) staleUsers.add(s.user);
      if (s.group !== undefined) staleGroups.add(s.group);
    }
    skipped.push(...done.refused);
    return done.applied;
  };
  for (const step of steps(plan, policy)) {
    for (const batch of step.batches(options.batchSize ?? DEFAULT_BATCH)) {
      // The kinds this batch moved: its own, and usersUpdated for updates recorded with deprovisions or reprovisions.
      const kinds = new Set<PlanKind>([step.kind]);
      const count = (done: Partial<Record<PlanKind, number>>) => {
        for (const [kind, n] of Object.entries(done) as [PlanKind, number][]) {
          applied[kind] += n;
          kinds.add(kind);
        }
      };
      try {
        count(await commit(batch));
      } catch (error) {
        if (!isDataError(error)) throw error;
        for (const item of batch.items()) count(await commitItem(item, commit, skipped, error));
      }
      for (const kind of kinds) await options.afterBatch?.(kind, applied[kind]);
    }
  }
  return { counts: applied, skipped, stale, staleSubjects: { userIds: [...staleUsers], groupIds: [...staleGroups] } };
}

/**
 * The label of a membership removal that goes with its user's deprovision, in any mode (the
 * account suspended, its access removed, or it deleted). Rows written before 2026-11-30 say
 * 'account removed' (RunRepository.recentRemovals reads both).
 */
export const USER_DEPROVISIONED = 'user deprovisioned';

/**
 * Operations whose subject is described before the write too: those it may remove (an account
 * in remove-access or delete mode, a group, a lifted lock), and updates, whose rename may move
 * the account to another person (the event's `changes.personId`).
 */
export const DESCRIBED_BEFORE: ReadonlySet<PlanKind> = new Set(['usersDeprovisioned', 'groupsDeleted', 'usersReprovisioned', 'usersUpdated', 'groupsUpdated']);

const REFUSED = 'another enabled integration of this tenant took an account with this userName while the run was applying';

/** Times a transaction that lost to a concurrent one (isTransactionConflict) is run again before its error stands. */
const CONFLICT_ATTEMPTS = 5;

/**
 * Runs `transaction` again while it loses to a concurrent one, a few times, after a short
 * random pause (so the two do not meet again at once); other errors pass through.
 */
async function retryConflicts<T>(transaction: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (error) {
      if (!isTransactionConflict(error) || attempt >= CONFLICT_ATTEMPTS) throw error;
      await setTimeout(Math.random() * 50 * attempt);
    }
  }
}

async function commitItem(
  item: Batch,
  commit: (b: Batch) => Promise<Partial<Record<PlanKind, number>>>,
  skipped: SkippedRecord[],
  batchError: unknown,
): Promise<Partial<Record<PlanKind, number>>> {
  let error: unknown = batchError;
  for (const attempt of [item, item.fallback?.()]) {
    if (!attempt) continue;
    try {
      return await commit(attempt);
    } catch (e) {
      if (!isDataError(e)) throw e;
      error = e;
    }
  }
  const record = item.describe();
  skipped.push({ ...record, reason: `${record.reason}: Postgres refused it (${(error as Error).message})` });
  return {};
}

/** The plan kind of each change-log kind (CHANGE_KINDS read backwards). */
const PLAN_KIND_OF = new Map<string, PlanKind>(Object.entries(CHANGE_KINDS).map(([kind, change]) => [change, kind as PlanKind]));

/** How many changes of each plan kind these change-log rows record. */
function countKinds(changes: readonly NewRunChange[]): Partial<Record<PlanKind, number>> {
  const counts: Partial<Record<PlanKind, number>> = {};
  for (const c of changes) {
    const kind = PLAN_KIND_OF.get(c.kind);
    if (kind) counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

/**
 * Records planned operations as changes not applied: `planned` for a dry run, `held` for a held
 * plan; but those whose change key (planKeys) is in `except` (recorded already). Returns how
 * many it recorded.
 */
export async function recordPlan(
  db: Db,
  scope: { readonly runId: string; readonly integrationId: string },
  plan: Plan,
  policy: Policy,
  state: 'planned' | 'held',
  batchSize = 1000,
  except?: ReadonlySet<string>,
): Promise<number> {
  const runs = new RunRepository(db);
  let recorded = 0;
  for (const batch of describePlan(plan, policy, batchSize)) {
    let changes = except ? batch.changes.filter((c) => !except.has(changeKey(c))) : batch.changes;
    // An update's attributes are said as they differ from the account's or group's now, as
    // applying it would record them (also an update recorded with a deprovision or reprovision).
    const updates = changes.filter(isUpdate);
    if (updates.length > 0) {
      const described = await runs.describedBefore(scope.integrationId, updates);
      let next = 0;
      changes = changes.map((c) => (isUpdate(c) ? described[next++]! : c));
    }
    if (changes.length > 0) await runs.recordChanges(scope.runId, changes, state);
    recorded += changes.length;
  }
  return recorded;
}

/** The change-log keys of a plan's operations (kind and subject), to tell one recorded already. */
export function planKeys(plan: Plan, policy: Policy): Set<string> {
  const keys = new Set<string>();
  for (const batch of describePlan(plan, policy, 10_000)) for (const c of batch.changes) keys.add(changeKey(c));
  return keys;
}

function isUpdate(change: NewRunChange): boolean {
  return change.kind === CHANGE_KINDS.usersUpdated || change.kind === CHANGE_KINDS.groupsUpdated;
}

/**
 * A plan's operations as the change-log rows applying them records, in apply order, in
 * batches of at most `batchSize` of one kind; nothing is written. For recording a change made
 * outside applyPlan exactly as applyPlan would (an integration's deletion).
 */
export function* describePlan(plan: Plan, policy: Policy, batchSize: number): Iterable<{ kind: PlanKind; changes: readonly NewRunChange[] }> {
  for (const step of steps(plan, policy)) {
    for (const batch of step.batches(batchSize)) yield { kind: batch.kind, changes: batch.changes };
  }
}

function steps(plan: Plan, policy: Policy): Step[] {
  const mode = policy.deprovisionMode;
  const recordedUpdate = (op: UserGrant | UserDeprovision) => {
    const update = updateWithStatus(op, policy);
    return update ? [describeUpdate(update)] : [];
  };
  return [
    step('groupsCreated', plan.groupsCreated, (g) => ({ group: g.externalId }), (r, s, b) => r.upsertGroups(s, b).then(() => ({})), (g) =>
      change(CHANGE_KINDS.groupsCreated, g.externalId, g.name, { description: g.description, of: { group: groupOf(g) } }),
    ),
    step('groupsUpdated', plan.groupsUpdated, (u) => ({ group: u.group.externalId }), (r, s, b) => r.upsertGroups(s, b.map((u) => u.group)).then(() => ({})), (u) =>
      change(CHANGE_KINDS.groupsUpdated, u.group.externalId, u.group.name, {
        changed: [...u.changed],
        changes: { ...changes(u.changed, u.previous, u.group), ...(u.changed.includes('attributes') && { attributes: { new: u.group.attributes } }) },
        of: { group: groupOf(u.group) },
      }),
    ),
    step('usersUpdated', plan.usersUpdated, (u) => ({ user: u.user.externalId }), (r, s, b) => r.updateUsers(s, b.map((u) => u.user)).then(() => ({})), describeUpdate),
    // Created users are recorded by the grant itself (one statement, not a second join); a
    // reprovision goes through recordApplied, which adds what its account was before (DESCRIBED_BEFORE).
    step('usersCreated', plan.usersCreated, (u) => ({ user: u.externalId }), (r, s, b, changes) => r.grantAccess(s, b, changes()), (u) =>
      change(CHANGE_KINDS.usersCreated, u.externalId, u.userName, {
        email: u.email,
        status: u.status,
        ...(u.adopts ? { adopted: u.adopts } : {}),
        of: { account: accountOf(u) },
      }),
    ),
    // A reprovision's attribute changes are applied by its grant, and recorded before it as a user.updated.
    step('usersReprovisioned', plan.usersReprovisioned, (u) => ({ user: u.externalId }), (r, s, b) => r.grantAccess(s, b), (u) => [
      ...recordedUpdate(u),
      change(CHANGE_KINDS.usersReprovisioned, u.externalId, u.userName, {
        status: u.status,
        ...(u.adopts ? { adopted: u.adopts } : {}),
        of: { account: accountOf(u) },
      }),
    ]),
    step('membershipsAdded', plan.membershipsAdded, membershipSubjects, async (r, s, b) => ({ recorded: await r.addMemberships(s, b) }), (m) =>
      change(CHANGE_KINDS.membershipsAdded, membershipId(m), `${m.userName} in ${m.groupName}`, { ...membershipDetail(m), of: membershipOf(m) }),
    ),
    step('membershipsRemoved', plan.membershipsRemoved, membershipSubjects, (r, s, b) => r.removeMemberships(s, b).then(() => ({})), (m) =>
      change(CHANGE_KINDS.membershipsRemoved, membershipId(m), `${m.userName} in ${m.groupName}`, {
        ...membershipDetail(m),
        ...(m.with ? { with: m.with === 'group' ? 'group deleted' : USER_DEPROVISIONED } : {}),
        of: membershipOf(m),
      }),
    ),
    step(
      'usersDeprovisioned',
      plan.usersDeprovisioned,
      (d) => ({ user: d.externalId }),
      (r, s, b) => deprovision(r, s, b, mode).then(() => ({})),
      (d) => [
        // Recorded before the deprovision, as the user.updated a held deprovision's update records when it applies alone.
        ...recordedUpdate(d),
        change(CHANGE_KINDS.usersDeprovisioned, d.externalId, d.userName, {
          reason: d.reason,
          status: d.user?.status ?? null,
          mode,
          // The account after: suspend mode keeps it with the record's attributes; the other
          // modes remove it as it was (a rename in the same edit never applied).
          of: { account: { ...(d.user && mode === 'suspend' ? accountOf(d.user) : { userName: d.update?.previous.userName ?? d.userName }), active: false, locked: true } },
        }),
      ],
      // A record whose attributes Postgres refuses is still deprovisioned: bad data never keeps anyone in.
      (d) => {
        if (!d.user) return undefined;
        const { update: _refused, ...rest } = d;
        return { ...rest, user: null };
      },
    ),
    step('groupsDeleted', plan.groupsDeleted, (g) => ({ group: g.externalId }), (r, s, b) => r.deleteGroups(s, b.map((g) => g.externalId)).then(() => ({})), (g) =>
      change(CHANGE_KINDS.groupsDeleted, g.externalId, g.name, { members: g.members, of: { group: { name: g.name } } }),
    ),
  ];
}

function step<T>(
  kind: PlanKind,
  items: readonly T[],
  subjects: (item: T) => Subjects,
  /** `changes()`: the batch's change-log rows (describe, computed on the first call), for a write that records them itself. */
  write: (repo: DirectoryRepository, scope: WriteScope, batch: readonly T[], changes: () => readonly NewRunChange[]) => Promise<Written>,
  /** The item's change-log row; or rows, in order, when the write also applies changes of another kind (an update with a deprovision). */
  describe: (item: T) => NewRunChange | readonly NewRunChange[],
  fallback?: (item: T) => T | undefined,
): Step {
  const batchOf = (batch: readonly T[]): Batch => {
    // Described when asked: a write that records its own rows (added memberships) never asks.
    let described: NewRunChange[] | undefined;
    const self: Batch = {
      kind,
      size: batch.length,
      get changes() {
        return (described ??= batch.flatMap(describe));
      },
      write: (repo, scope) => write(repo, scope, batch, () => self.changes),
      items: () => batch.map((item) => batchOf([item])),
      without: (fence) => {
        const fenced = (item: T) => {
          const s = subjects(item);
          return fence.all || (s.user !== undefined && fence.users.has(s.user)) || (s.group !== undefined && fence.groups.has(s.group));
        };
        const kept = batch.filter((item) => !fenced(item));
        const dropped = batch.length - kept.length;
        // Nearly always nothing is fenced: the batch as it is, not described again.
        if (dropped === 0) return { batch: self, dropped, subjects: [] };
        return { batch: kept.length === 0 ? undefined : batchOf(kept), dropped, subjects: batch.filter(fenced).map(subjects) };
      },
      fallback: () => {
        const better = batch.length === 1 && fallback ? fallback(batch[0]!) : undefined;
        return better === undefined ? undefined : batchOf([better]);
      },
      describe: () => {
        // The step's own row (a deprovision, not the update recorded with it).
        const first = self.changes.find((c) => c.kind === CHANGE_KINDS[kind]) ?? self.changes[0];
        return {
          kind: kind.startsWith('group') ? 'group' : 'user',
          externalId: first?.externalId ?? null,
          subject: first?.subject ?? '',
          reason: `${first?.kind ?? kind} of ${first?.subject ?? '?'}`,
        };
      },
    };
    return self;
  };
  return {
    kind,
    *batches(size) {
      for (const batch of chunks(items, size)) yield batchOf(batch);
    },
  };
}

function deprovision(
  repo: DirectoryRepository,
  scope: WriteScope,
  batch: readonly UserDeprovision[],
  mode: DeprovisionMode,
): Promise<void> {
  switch (mode) {
    case 'suspend':
      return repo.suspendUsers(scope, batch);
    case 'remove-access':
      return repo.removeAccess(scope, batch, false);
    case 'delete':
      return repo.removeAccess(scope, batch, true);
  }
}

/** A user's attribute changes as the change-log row `user.updated` (its `changes`: each field's previous and new value). */
function describeUpdate(u: UserUpdate): NewRunChange {
  return change(CHANGE_KINDS.usersUpdated, u.user.externalId, u.user.userName, {
    changed: [...u.changed],
    // As for groups: the new raw attributes, made the ones that differ (before and after) as they are recorded (RunRepository.describeSubjects).
    changes: { ...changes(u.changed, u.previous, u.user), ...(u.changed.includes('attributes') && { attributes: { new: u.user.attributes } }) },
    of: { account: accountOf(u.user) },
  });
}

/** The account an event describes, as the plan knows it (its ids, IdP id included, are added when events are read). */
function accountOf(u: DirectoryUser): JsonObject {
  return { userName: u.userName, email: u.email, givenName: u.givenName, familyName: u.familyName, displayName: u.displayName, active: u.active, locked: false };
}

function groupOf(g: DirectoryGroup): JsonObject {
  return { name: g.name, description: g.description };
}

/** A membership's account and group by name only: their ids are in the change's detail already (`user`, `group`). */
function membershipOf(m: Membership): JsonObject {
  return { account: { userName: m.userName }, group: { name: m.groupName } };
}

/** Each named field that changed, with its previous and new value (an event's `changes`). */
function changes<F extends string>(changed: readonly (F | 'attributes')[], previous: Readonly<Record<F, string | null>>, next: Readonly<Record<F, string | null>>): JsonObject {
  const out: JsonObject = {};
  for (const field of changed) if (field !== 'attributes') out[field] = { previous: previous[field as F], new: next[field as F] };
  return out;
}

function membershipSubjects(m: Membership): Subjects {
  return { user: m.userExternalId, group: m.groupExternalId };
}

function membershipId(m: Membership): string {
  return changeLogId(destructive.membershipRemove(m));
}

function change(kind: string, externalId: string, subject: string, detail: JsonObject | null): NewRunChange {
  return { kind, externalId, subject, detail };
}

function* chunks<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
