import { type DirectoryGroup, type DirectoryUser, type JsonObject, type JsonValue, type LocalState, type SkippedRecord, type Snapshot, userNameClash, userNameKey } from './model.js';

/** The IdP data cannot be reconciled as it stands; the run fails and changes nothing. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/**
 * One IdP record cannot be taken as it is: the record is skipped with this reason, and the rest
 * of the read goes on (SPEC "Per-record isolation"). Carries what could still be read of it.
 */
export class RecordError extends SnapshotError {
  override name = 'RecordError';
  constructor(
    message: string,
    readonly record: { readonly externalId: string | null; readonly subject: string; readonly active?: boolean },
  ) {
    super(message);
  }
}

/**
 * A required text field of an IdP record: a non-blank string, or a RecordError saying what
 * came instead, e.g. `requireText(12345, 'Okta user 00u1', 'profile.login')` throws
 * "Okta user 00u1 has a profile.login that is a number (12345), not a string".
 */
export function requireText(value: unknown, record: string, field: string, known: RecordError['record'] = { externalId: null, subject: record }): string {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (value === undefined || value === null || typeof value === 'string') throw new RecordError(`${record} has no ${field}`, known);
  const kind = Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value} (${String(value)})`;
  throw new RecordError(`${record} has ${/^[aeio]/i.test(field) ? 'an' : 'a'} ${field} that is ${kind}, not a string`, known);
}

/** An optional text field of an IdP record: numbers and booleans become their text; anything else that is not a string is absent. */
export function optionalText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

/**
 * The longest userName accepted, in code points. userNames are unique through a btree index
 * on their normalized form, whose entries cannot exceed 2704 bytes; at 4 bytes a code point at
 * most, 512 always fit, and IdPs cap logins far lower (Okta 100, authentik 150).
 */
export const MAX_USER_NAME_LENGTH = 512;

/**
 * The most attribute names one IdP user or group record may hold, nested names included
 * (`{"a": {"b": 1}}` holds two; array elements are values, not names). Okta's base user
 * profile has 31 attributes and Okta documents no cap on custom ones ("you can add any number
 * of custom attributes", Okta Expression Language reference); PingOne, for comparison, allows
 * 200 custom attributes. Real profiles hold tens to a few hundred: 1,000 leaves room for any
 * of them while a record of 50,000 is not a person's profile.
 */
export const MAX_RECORD_ATTRIBUTES = 1_000;

/**
 * The most bytes a record's attributes may take as JSON (UTF-8): 64 KiB. PingOne caps a
 * whole user profile at 16 KB; each stored record is read by every run, diffed, and copied
 * into events, so one record must not cost what thousands of ordinary ones do.
 */
export const MAX_RECORD_BYTES = 64 * 1024;

/**
 * Why a record's attributes (the raw profile kept verbatim) are too large to take, as one
 * sentence starting with `what` ("IdP user 00u1 has 50,002 attributes ..."), or undefined
 * when they are within MAX_RECORD_ATTRIBUTES and MAX_RECORD_BYTES.
 */
export function recordSizeProblem(what: string, attributes: JsonObject, fix = 'remove attributes in the IdP or stop sending them to this app'): string | undefined {
  const names = countNames(attributes);
  if (names > MAX_RECORD_ATTRIBUTES) {
    return `${what} has ${names.toLocaleString('en-US')} attributes (nested ones counted); at most ${MAX_RECORD_ATTRIBUTES.toLocaleString('en-US')} are taken: ${fix}`;
  }
  const bytes = Buffer.byteLength(JSON.stringify(attributes));
  if (bytes > MAX_RECORD_BYTES) {
    return `${what} has ${bytes.toLocaleString('en-US')} bytes of attributes as JSON; at most ${MAX_RECORD_BYTES.toLocaleString('en-US')} (64 KiB) are taken: ${fix}`;
  }
  return undefined;
}

/** Attribute names in a JSON value, at any depth. */
function countNames(value: JsonValue): number {
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  if (Array.isArray(value)) for (const v of value) n += countNames(v);
  else for (const v of Object.values(value)) n += 1 + countNames(v);
  return n;
}

/** A subject for a warning: at most 80 code points of a name or login, however long it is. */
function shortSubject(text: string): string {
  const points = [...text];
  return printable(points.length > 80 ? `${points.slice(0, 40).join('')}...` : text);
}

/**
 * Where a connector puts what it reads, record by record, as it pages: SnapshotBuilder (in
 * memory, for reads of any size) or a staged read (src/runs/staged-read.ts: written to
 * Postgres as it comes, for full reads of large directories). Calls are synchronous; a sink
 * that writes elsewhere does so in the background and reports a failure at its next `ready`,
 * or when it is finished.
 */
export interface SnapshotSink {
  /** Maps a raw IdP user and adds it, or records it as skipped when it cannot be taken; a later version of a record replaces an earlier one. */
  addUserFrom<T>(raw: T, map: (raw: T) => DirectoryUser): void;
  /** Maps a raw IdP group and adds it, or records it as skipped when it cannot be taken. */
  addGroupFrom<T>(raw: T, map: (raw: T) => DirectoryGroup): void;
  /** The group, read already, as mapped (undefined when it was not read, or skipped). */
  group(externalId: string): DirectoryGroup | undefined;
  /** Groups in scope, skipped ones included: their members are read like any other's. */
  groupIds(): string[];
  /** The group's members were not read: its version matched what the tenant holds. */
  markMembersUnread(groupExternalId: string): void;
  /** A member the IdP lists for a group (members outside the scope are dropped when the read is built). */
  addMember(groupExternalId: string, userExternalId: string): void;
  /** The read looks incomplete although every page answered: hold every destructive operation. */
  suspect(reason: string): void;
  /**
   * Resolves once the sink has caught up enough to take another page (a sink writing elsewhere
   * in the background); a connector awaits it before fetching each page, so that a slow writer
   * slows the read instead of piling up what it has not written. Absent: always ready.
   */
  ready?(): Promise<void>;
}

/**
 * Collects what a connector reads, page by page, into a Snapshot. A record seen twice (pages
 * shift while the IdP changes) keeps its last version. Records that cannot be taken as they
 * are (a mapping error, text Postgres cannot store such as NUL or a lone surrogate, a userName
 * too long to index, attributes over MAX_RECORD_ATTRIBUTES or MAX_RECORD_BYTES, two IdP users
 * whose userNames normalize alike) are skipped with a reason,
 * never dropped silently: each is evidence that the record exists.
 */
export class SnapshotBuilder implements SnapshotSink {
  private readonly users = new Map<string, DirectoryUser>();
  private readonly groups = new Map<string, DirectoryGroup>();
  private readonly members = new Map<string, Set<string>>();
  private readonly unread = new Set<string>();
  private readonly skippedUsers = new Map<string, SkippedRecord>();
  private readonly skippedGroups = new Map<string, SkippedRecord>();
  private readonly unidentified: SkippedRecord[] = [];
  private readonly suspicions: string[] = [];

  addUser(user: DirectoryUser): void {
    this.skippedUsers.delete(user.externalId);
    this.users.set(user.externalId, user);
  }

  /** Maps a raw IdP user and adds it, or records it as skipped when it cannot be taken. */
  addUserFrom<T>(raw: T, map: (raw: T) => DirectoryUser): void {
    try {
      this.addUser(map(raw));
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.skip('user', error);
    }
  }

  /** Maps a raw IdP group and adds it, or records it as skipped when it cannot be taken. */
  addGroupFrom<T>(raw: T, map: (raw: T) => DirectoryGroup): void {
    try {
      this.addGroup(map(raw));
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.skip('group', error);
    }
  }

  hasUser(externalId: string): boolean {
    return this.users.has(externalId) || this.skippedUsers.has(externalId);
  }

  addGroup(group: DirectoryGroup): void {
    this.skippedGroups.delete(group.externalId);
    this.groups.set(group.externalId, group);
    if (!this.members.has(group.externalId)) this.members.set(group.externalId, new Set());
  }

  group(externalId: string): DirectoryGroup | undefined {
    return this.groups.get(externalId);
  }

  /** Groups in scope, skipped ones included: their members are read like any other's. */
  groupIds(): string[] {
    return [...this.groups.keys(), ...this.skippedGroups.keys()];
  }

  /** The group's members were not read: its version matched what the tenant holds. */
  markMembersUnread(groupExternalId: string): void {
    this.unread.add(groupExternalId);
  }

  addMember(groupExternalId: string, userExternalId: string): void {
    let set = this.members.get(groupExternalId);
    if (!set) this.members.set(groupExternalId, (set = new Set()));
    // The user's own id string when the user was read already (every connector reads users
    // first): a member listing parses a fresh copy of each id, and a large directory's members
    // are most of its strings (5M at 1M users), so they share the one copy.
    set.add(this.users.get(userExternalId)?.externalId ?? userExternalId);
  }

  /** The read looks incomplete although every page answered: hold every destructive operation. */
  suspect(reason: string): void {
    this.suspicions.push(reason);
  }

  build(): Snapshot {
    const users = new Map<string, DirectoryUser>();
    // One user per key; a second with the same key starts a clash (rare, so kept apart).
    const byKey = new Map<string, DirectoryUser>();
    const clashes = new Map<string, DirectoryUser[]>();
    for (const user of this.users.values()) {
      const problem = userProblem(user);
      if (problem?.externalId === null) {
        this.skippedUsers.delete(user.externalId);
        this.unidentified.push(problem);
      } else if (problem) this.skippedUsers.set(user.externalId, problem);
      else {
        const key = userNameKey(user.userName);
        const first = byKey.get(key);
        if (first === undefined) byKey.set(key, user);
        else clashes.set(key, [...(clashes.get(key) ?? [first]), user]);
      }
    }
    for (const [key, user] of byKey) if (!clashes.has(key)) users.set(user.externalId, user);
    for (const record of clashSkips([...clashes.values()].flat())) this.skippedUsers.set(record.externalId!, record);
    const groups = takeGroups(this.groups.values(), this.skippedGroups, this.unidentified);
    const memberships = new Map<string, ReadonlySet<string>>();
    const inScope = (id: string) => users.has(id) || this.skippedUsers.has(id);
    for (const groupId of [...groups.keys(), ...this.skippedGroups.keys()]) {
      // Members outside the scope are not the tenant's users: drop them here, once.
      memberships.set(groupId, new Set([...(this.members.get(groupId) ?? [])].filter(inScope)));
    }
    const unreadMembers = new Set([...this.unread].filter((g) => groups.has(g)));
    const skipped = [...this.skippedUsers.values(), ...this.skippedGroups.values(), ...this.unidentified];
    return {
      users,
      groups,
      memberships,
      skipped,
      suspicious: [...this.suspicions],
      ...(unreadMembers.size > 0 ? { unreadMembers } : {}),
    };
  }

  private skip(kind: 'user' | 'group', error: RecordError): void {
    const record: SkippedRecord = { kind, ...error.record, reason: error.message };
    // The last version of a record is what counts: one read well before is taken no more.
    if (record.externalId === null) this.unidentified.push(record);
    else if (kind === 'user') {
      this.users.delete(record.externalId);
      this.skippedUsers.set(record.externalId, record);
    } else {
      this.groups.delete(record.externalId);
      this.skippedGroups.set(record.externalId, record);
    }
  }
}

/**
 * IdP users whose userNames normalize alike (userNameKey), each skipped: which of them is the
 * person cannot be told from the data, so none is taken until the IdP says. `users` are all
 * the clashing users, in any order; each record names every user its login clashes with.
 */
export function clashSkips(users: readonly DirectoryUser[]): SkippedRecord[] {
  const byKey = new Map<string, DirectoryUser[]>();
  for (const user of users) {
    const key = userNameKey(user.userName);
    const same = byKey.get(key);
    if (same) same.push(user);
    else byKey.set(key, [user]);
  }
  return [...byKey.values()].flatMap((clash) => {
    const ids = clash.map((u) => u.externalId);
    return clash.map((user): SkippedRecord => ({ kind: 'user', externalId: user.externalId, subject: user.userName, reason: userNameClash(ids, user.userName), active: user.active }));
  });
}

/**
 * The groups that can be taken as they are, by IdP id; the others (groupProblem) are added to
 * `skipped` (by id) or `unidentified` (no storable id).
 */
export function takeGroups(groups: Iterable<DirectoryGroup>, skipped: Map<string, SkippedRecord>, unidentified: SkippedRecord[]): Map<string, DirectoryGroup> {
  const taken = new Map<string, DirectoryGroup>();
  for (const group of groups) {
    const problem = groupProblem(group);
    if (problem?.externalId === null) unidentified.push(problem);
    else if (problem) skipped.set(group.externalId, problem);
    else taken.set(group.externalId, group);
  }
  return taken;
}

/**
 * Why a mapped IdP user cannot be taken as it is, as its skipped record, or undefined when it
 * can: text Postgres cannot store (NUL, a lone surrogate; in the id, the record identifies
 * nobody and its `externalId` is null), attributes over MAX_RECORD_ATTRIBUTES or
 * MAX_RECORD_BYTES, a userName over MAX_USER_NAME_LENGTH. The record keeps a readable status
 * (`active`), so that a status that deprovisions still applies. Clashes between users are the
 * caller's to find: they need every user.
 */
export function userProblem(user: DirectoryUser): SkippedRecord | undefined {
  const problem = storableProblem(user, `IdP user ${printable(user.externalId)}`);
  // An id Postgres cannot store identifies nobody: the record could be any user.
  if (problem?.path === 'externalId') return { kind: 'user', externalId: null, subject: printable(user.userName), reason: problem.reason };
  if (problem) {
    return { kind: 'user', externalId: user.externalId, subject: printable(user.userName), reason: problem.reason, ...(problem.path === 'status' ? {} : { active: user.active }) };
  }
  const oversize = recordSizeProblem(`IdP user ${user.externalId}`, user.attributes);
  // Its id and status are readable: a status that deprovisions still applies.
  if (oversize) return { kind: 'user', externalId: user.externalId, subject: shortSubject(user.userName), reason: oversize, active: user.active };
  const length = [...user.userName].length;
  if (length > MAX_USER_NAME_LENGTH) {
    return {
      kind: 'user',
      externalId: user.externalId,
      subject: `${[...user.userName].slice(0, 40).join('')}...`,
      reason: `IdP user ${user.externalId} has a userName of ${length} characters; at most ${MAX_USER_NAME_LENGTH} fit the index that keeps userNames unique: shorten it in the IdP`,
      active: user.active,
    };
  }
  return undefined;
}

/** Why a mapped IdP group cannot be taken as it is, as its skipped record (`externalId` null when its id is unstorable), or undefined when it can. */
export function groupProblem(group: DirectoryGroup): SkippedRecord | undefined {
  const problem = storableProblem(group, `IdP group ${printable(group.externalId)}`);
  if (problem?.path === 'externalId') return { kind: 'group', externalId: null, subject: printable(group.name), reason: problem.reason };
  if (problem) return { kind: 'group', externalId: group.externalId, subject: printable(group.name), reason: problem.reason };
  const oversize = recordSizeProblem(`IdP group ${group.externalId}`, group.attributes);
  if (oversize) return { kind: 'group', externalId: group.externalId, subject: shortSubject(group.name), reason: oversize };
  return undefined;
}

// NUL, and a lone surrogate (which Postgres would store as U+FFFD, so two names could merge).
const UNSTORABLE = /[\0\p{Cs}]/u;

/**
 * Text as Postgres can store it: a NUL spelled `\0` and a lone surrogate `\udXXX` (Postgres
 * refuses both in text and jsonb), for messages and warnings that quote IdP values.
 */
export function printable(text: string): string {
  return text.replace(/\0/g, '\\0').replace(/\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** Postgres cannot store every string exactly: the first field that holds what it cannot, in words. */
function storableProblem(record: object, what: string): { path: string; reason: string } | undefined {
  const found = unstorable(record, '');
  if (!found) return undefined;
  const kind = found.char === '\0' ? 'a NUL character' : 'a lone surrogate (text that is not valid Unicode)';
  return { path: found.path, reason: `${what} has ${kind} in ${found.path}, which Postgres cannot store: remove it in the IdP` };
}

function unstorable(value: unknown, path: string): { path: string; char: string } | undefined {
  if (typeof value === 'string') {
    const char = UNSTORABLE.exec(value)?.[0];
    return char === undefined ? undefined : { path, char };
  }
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, v] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    const found = unstorable(key, at) ?? unstorable(v, at);
    if (found) return found;
  }
  return undefined;
}

/**
 * Fills in the members of groups the connector did not re-read (their version was unchanged)
 * from what the tenant holds, so the planner sees a complete snapshot. Only members that hold
 * a local row are known that way: for users entering the scope, `groupsOf` (user -> groups,
 * read from the IdP) adds theirs.
 */
export function completeSnapshot(snapshot: Snapshot, local: LocalState, groupsOf?: ReadonlyMap<string, readonly string[]>): Snapshot {
  const unread = snapshot.unreadMembers;
  if (!unread || unread.size === 0) return snapshot;
  const memberships = new Map(snapshot.memberships);
  const skippedUsers = new Set(snapshot.skipped.flatMap((r) => (r.kind === 'user' && r.externalId !== null ? [r.externalId] : [])));
  const inScope = (userId: string) => snapshot.users.has(userId) || skippedUsers.has(userId);
  for (const groupId of unread) {
    memberships.set(groupId, new Set([...(local.memberships.get(groupId) ?? [])].filter(inScope)));
  }
  for (const [userId, groups] of groupsOf ?? []) {
    if (!inScope(userId)) continue;
    for (const groupId of groups) if (unread.has(groupId)) (memberships.get(groupId) as Set<string>).add(userId);
  }
  return { users: snapshot.users, groups: snapshot.groups, memberships, skipped: snapshot.skipped, suspicious: snapshot.suspicious };
}

/**
 * The membership versions a run may record once everything it planned was applied (no record
 * refused, nothing held): `{externalId, version}` for each group whose members it read from the
 * IdP and whose listing names no record the run skipped. A recorded version means "the tenant's
 * members are the IdP's at this version": the next run does not re-read the group while its
 * version is unchanged and takes its members from the tenant (completeSnapshot).
 *
 * That promise does not hold for a group that lists a skipped record (unreadable, clashing, or
 * in conflict with another integration's account): a record not taken gains no membership
 * (SPEC "Safety", per-record isolation), so the tenant lacks what the IdP lists. Were the
 * version recorded, the group would not be read again once the record is readable (its version
 * does not change when one of its members is fixed), and the account would never gain the
 * membership (SPEC "Group": members mirror the IdP). Such a group keeps the version recorded
 * before, which differs from the IdP's, so it is read again every run until the record is taken.
 * Groups whose members were taken from the tenant (`unread`) were not read: recording them
 * again would postpone their periodic full read for ever.
 *
 * @param snapshot the run's snapshot; `memberships` as read or completed, groups carrying
 *   `membersVersion` (Okta's lastMembershipUpdated, a pushed SCIM group's version)
 * @param unread the groups whose members were not read (the read's `unreadMembers`)
 * @param skipped every record the run skipped: the snapshot's, and the planner's clashes and conflicts
 */
export function settledMemberVersions(
  snapshot: Pick<Snapshot, 'groups' | 'memberships'>,
  unread: ReadonlySet<string> | undefined,
  skipped: readonly SkippedRecord[],
): { externalId: string; version: string }[] {
  const skippedUsers = new Set(skipped.flatMap((r) => (r.kind === 'user' && r.externalId !== null ? [r.externalId] : [])));
  const settled: { externalId: string; version: string }[] = [];
  for (const group of snapshot.groups.values()) {
    if (!group.membersVersion || unread?.has(group.externalId)) continue;
    const members = snapshot.memberships.get(group.externalId);
    if (members && skippedUsers.size > 0 && [...members].some((id) => skippedUsers.has(id))) continue;
    settled.push({ externalId: group.externalId, version: group.membersVersion });
  }
  return settled;
}
