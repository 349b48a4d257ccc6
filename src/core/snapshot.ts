import type { DirectoryGroup, DirectoryUser, LocalState, Snapshot } from './model.js';

/** The IdP data cannot be reconciled as it stands; the run fails and changes nothing. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/**
 * A required text field of an IdP record: a non-blank string, or a SnapshotError saying what
 * came instead, e.g. `requireText(12345, 'Okta user 00u1', 'profile.login')` throws
 * "Okta user 00u1 has a profile.login that is a number (12345), not a string".
 */
export function requireText(value: unknown, record: string, field: string): string {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (value === undefined || value === null || typeof value === 'string') throw new SnapshotError(`${record} has no ${field}`);
  const kind = Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value} (${String(value)})`;
  throw new SnapshotError(`${record} has ${/^[aeio]/i.test(field) ? 'an' : 'a'} ${field} that is ${kind}, not a string`);
}

/** An optional text field of an IdP record: numbers and booleans become their text; anything else that is not a string is absent. */
export function optionalText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

/**
 * The longest userName accepted, in code points. userNames are unique through a btree index
 * on lower(user_name), whose entries cannot exceed 2704 bytes; at 4 bytes a code point at
 * most, 512 always fit, and IdPs cap logins far lower (Okta 100, authentik 150).
 */
export const MAX_USER_NAME_LENGTH = 512;

/**
 * Collects what a connector reads, page by page, into a Snapshot and checks the invariants
 * the planner and the database rely on. A record seen twice (pages shift while the IdP
 * changes) keeps its last version; two different IdP users with one userName
 * (case-insensitively) would be one person locally, so that is an error naming both, as are
 * a userName too long to index and text Postgres cannot store (NUL, lone surrogates).
 */
export class SnapshotBuilder {
  private readonly users = new Map<string, DirectoryUser>();
  private readonly groups = new Map<string, DirectoryGroup>();
  private readonly members = new Map<string, Set<string>>();
  private readonly unread = new Set<string>();

  addUser(user: DirectoryUser): void {
    this.users.set(user.externalId, user);
  }

  hasUser(externalId: string): boolean {
    return this.users.has(externalId);
  }

  addGroup(group: DirectoryGroup): void {
    this.groups.set(group.externalId, group);
    if (!this.members.has(group.externalId)) this.members.set(group.externalId, new Set());
  }

  group(externalId: string): DirectoryGroup | undefined {
    return this.groups.get(externalId);
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  /** The group's members were not read: its version matched what the tenant holds. */
  markMembersUnread(groupExternalId: string): void {
    this.unread.add(groupExternalId);
  }

  addMember(groupExternalId: string, userExternalId: string): void {
    let set = this.members.get(groupExternalId);
    if (!set) this.members.set(groupExternalId, (set = new Set()));
    set.add(userExternalId);
  }

  build(): Snapshot {
    const byName = new Map<string, string>();
    for (const user of this.users.values()) {
      checkStorable(user, `IdP user ${user.externalId}`);
      const length = [...user.userName].length;
      if (length > MAX_USER_NAME_LENGTH) {
        throw new SnapshotError(
          `IdP user ${user.externalId} has a userName of ${length} characters; at most ${MAX_USER_NAME_LENGTH} fit the index that keeps userNames unique: shorten it in the IdP`,
        );
      }
      const key = userNameKey(user.userName);
      const other = byName.get(key);
      if (other !== undefined) {
        throw new SnapshotError(
          `IdP users ${other} and ${user.externalId} have the same userName "${user.userName}" (compared case-insensitively); rename one in the IdP`,
        );
      }
      byName.set(key, user.externalId);
    }
    for (const group of this.groups.values()) checkStorable(group, `IdP group ${group.externalId}`);
    const memberships = new Map<string, ReadonlySet<string>>();
    for (const groupId of this.groups.keys()) {
      // Members outside the scope are not the tenant's users: drop them here, once.
      const inScope = new Set([...(this.members.get(groupId) ?? [])].filter((id) => this.users.has(id)));
      memberships.set(groupId, inScope);
    }
    const unreadMembers = new Set([...this.unread].filter((g) => this.groups.has(g)));
    return unreadMembers.size > 0 ? { users: this.users, groups: this.groups, memberships, unreadMembers } : { users: this.users, groups: this.groups, memberships };
  }
}

/**
 * The userName as Postgres's lower() folds it, which is what the users table keeps unique:
 * code point by code point, so a final capital sigma folds to σ (toLowerCase gives ς by
 * context) and İ to i (toLowerCase gives i + a combining dot). Two userNames Postgres folds
 * alike but toLowerCase does not would reach the database as one user and fail the apply.
 */
function userNameKey(userName: string): string {
  let key = '';
  for (const c of userName) key += c === '\u0130' ? 'i' : c.toLowerCase();
  return key;
}

// NUL, and a lone surrogate (which Postgres would store as U+FFFD, so two names could merge).
const UNSTORABLE = /[\0\p{Cs}]/u;

/** Postgres cannot store every string exactly: name the first field that holds what it cannot, so the run fails before writing. */
function checkStorable(record: object, what: string): void {
  const found = unstorable(record, '');
  if (!found) return;
  const kind = found.char === '\0' ? 'a NUL character' : 'a lone surrogate (text that is not valid Unicode)';
  throw new SnapshotError(`${what} has ${kind} in ${found.path}, which Postgres cannot store: remove it in the IdP`);
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
  for (const groupId of unread) {
    memberships.set(groupId, new Set([...(local.memberships.get(groupId) ?? [])].filter((u) => snapshot.users.has(u))));
  }
  for (const [userId, groups] of groupsOf ?? []) {
    if (!snapshot.users.has(userId)) continue;
    for (const groupId of groups) if (unread.has(groupId)) (memberships.get(groupId) as Set<string>).add(userId);
  }
  return { users: snapshot.users, groups: snapshot.groups, memberships };
}
