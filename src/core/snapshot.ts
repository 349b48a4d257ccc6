import type { DirectoryGroup, DirectoryUser, LocalState, Snapshot } from './model.js';

/** The IdP data cannot be reconciled as it stands; the run fails and changes nothing. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/**
 * Collects what a connector reads, page by page, into a Snapshot and checks the invariants
 * the planner relies on. A record seen twice (pages shift while the IdP changes) keeps its
 * last version; two different IdP users with one userName (case-insensitively) would be one
 * person locally, so that is an error naming both.
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
      const key = user.userName.toLowerCase();
      const other = byName.get(key);
      if (other !== undefined) {
        throw new SnapshotError(
          `IdP users ${other} and ${user.externalId} have the same userName "${user.userName}" (compared case-insensitively); rename one in the IdP`,
        );
      }
      byName.set(key, user.externalId);
    }
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
