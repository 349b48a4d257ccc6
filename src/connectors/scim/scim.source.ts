import { SnapshotBuilder } from '../../core/snapshot.js';
import { type DirectoryUser, type LocalState, type LocalUser, type Snapshot, accountAsRead } from '../../core/model.js';
import { type DirectoryRepository, membershipMap } from '../../db/directory.repository.js';
import type { ScimRepository, ScimUserKey, UnappliedWrite } from '../../db/scim.repository.js';
import { type ReadHints, type ReadStats, type SnapshotSource, emptyReadStats } from '../connector.js';
import { toDirectoryGroup, toDirectoryUser } from './scim.mapping.js';

/**
 * A scim integration's "IdP": what the IdP pushed, as stored by the SCIM endpoint. A run reads
 * it as a pull reads Okta or authentik, so a push gets every guarantee a pulled change has
 * (identity, adoption, locks, deprovision modes, thresholds, change log).
 *
 * Given the accounts (`hints.users`), it reads whole only the users that may have changed: a
 * user whose stored fingerprint, active flag and userName equal its account's is taken from the
 * account (the plan finds nothing to do for it), as is an inactive user without one (nothing to
 * do either). Groups whose version equals the one the tenant's members were read at keep their
 * members from the tenant (`unreadMembers`), as for Okta.
 */
export class ScimSnapshotSource implements SnapshotSource {
  readonly stats: ReadStats = emptyReadStats();

  constructor(
    private readonly store: ScimRepository,
    private readonly integrationId: string,
  ) {}

  async readSnapshot(_signal?: AbortSignal, hints?: ReadHints): Promise<Snapshot> {
    if (!hints?.users) return this.readAll();
    const accounts = hints.users;
    const builder = new SnapshotBuilder();
    const keys = await this.store.userKeys(this.integrationId);
    const changed: string[] = [];
    for (const key of keys) {
      const account = accounts.get(key.id);
      if (account ? unchanged(key, account) : !key.active) builder.addUser(account ? accountAsRead(account) : inactive(key));
      else changed.push(key.id);
    }
    const repairs: Array<{ id: string; version: string; fingerprint: string }> = [];
    for (const user of await this.store.usersById(this.integrationId, changed)) {
      builder.addUserFrom(user, (u) => {
        const mapped = toDirectoryUser(u);
        if (u.fingerprint !== mapped.fingerprint) repairs.push({ id: u.id, version: u.version, fingerprint: mapped.fingerprint });
        return mapped;
      });
    }
    // Users stored without a fingerprint (or by an older mapping) are compared cheaply from now on.
    await this.store.repairFingerprints(repairs);
    const groups = await this.store.allGroups(this.integrationId);
    const reread: string[] = [];
    for (const group of groups) {
      builder.addGroupFrom(group, (g) => ({ ...toDirectoryGroup(g), membersVersion: g.version }));
      if (hints.membersVersions.get(group.id) === group.version) builder.markMembersUnread(group.id);
      else reread.push(group.id);
    }
    const members = await this.store.memberPairs(reread, 'group');
    for (const { groupId, userId } of members) builder.addMember(groupId, userId);
    this.stats.requests += repairs.length > 0 ? 5 : 4;
    this.stats.records += keys.length + changed.length + groups.length + members.length;
    this.stats.usersReread = (this.stats.usersReread ?? 0) + changed.length;
    return builder.build();
  }

  /**
   * A targeted read (SPEC "Run": `targeted`): the pushed state of what these writes name, and
   * the tenant's state of the same subjects, narrowed so that the planner, diffing the two,
   * plans exactly what it would plan for them over the whole scope, reading nothing of users,
   * groups and memberships nobody wrote:
   *
   * - a named user: its pushed record (absent when deleted), its account, lock and the other
   *   accounts with its login (conflicts, adoption), and its memberships on both sides;
   * - a named membership: whether it exists on each side;
   * - a group either names: its attributes on both sides, with only the memberships above;
   *   a group one side lacks (created, or deleted) with all its members on the side that has it;
   * - members that are not named users ("bystanders") come from their accounts, unchanged, so
   *   that they count as there and nothing is planned for them.
   *
   * No group carries a members version: its members were not all read (see recordMemberVersions).
   */
  async readSubjects(writes: readonly UnappliedWrite[], tenant: DirectoryRepository, tenantId: string): Promise<{ local: LocalState; snapshot: Snapshot }> {
    const users = unique(writes.flatMap((w) => (w.resourceType === 'User' ? [w.resourceId] : [])));
    const first = await this.readNarrowed(writes, users, tenant, tenantId);
    if (first.unaccounted.length === 0) return first;
    // A member with no account here (never taken, or its account adopted elsewhere) may be
    // granted one now, as a full run would: it is read as a named user, all its memberships too.
    return this.readNarrowed(writes, [...users, ...first.unaccounted], tenant, tenantId);
  }

  private async readNarrowed(
    writes: readonly UnappliedWrite[],
    users: readonly string[],
    tenant: DirectoryRepository,
    tenantId: string,
  ): Promise<{ local: LocalState; snapshot: Snapshot; unaccounted: string[] }> {
    const id = this.integrationId;
    const named = new Set(users);
    const pairs = uniquePairs(writes.flatMap((w) => (w.resourceType === 'Member' ? [{ groupId: w.resourceId, userId: w.memberId }] : [])));
    const [pushedOfUsers, localOfUsers, pushedPairs, localPairs] = await Promise.all([
      this.store.memberPairs(users, 'user'),
      tenant.membershipPairs(id, { by: 'user', externalIds: users }),
      this.store.existingPairs(pairs),
      tenant.existingPairs(id, pairs.map((p) => ({ group: p.groupId, user: p.userId }))),
    ]);
    const candidates = unique([
      ...writes.flatMap((w) => (w.resourceType === 'User' ? [] : [w.resourceId])),
      ...pushedOfUsers.map((p) => p.groupId),
      ...localOfUsers.map((p) => p.group),
    ]);
    const [pushedGroups, localGroups] = await Promise.all([this.store.groupsById(id, candidates), tenant.groupsOf(id, candidates)]);
    const pushedById = new Map(pushedGroups.map((g) => [g.id, g]));
    const created = candidates.filter((g) => pushedById.has(g) && !localGroups.has(g));
    const deleted = candidates.filter((g) => !pushedById.has(g) && localGroups.has(g));
    const [pushedOfCreated, localOfDeleted] = await Promise.all([
      this.store.memberPairs(created, 'group'),
      tenant.membershipPairs(id, { by: 'group', externalIds: deleted }),
    ]);
    const bystanders = unique([
      ...pairs.map((p) => p.userId),
      ...pushedOfCreated.map((p) => p.userId),
      ...localOfDeleted.map((p) => p.user),
    ]).filter((u) => !named.has(u));
    const [pushedUsers, accounts, lockedOut] = await Promise.all([
      this.store.usersById(id, users),
      tenant.accountsOf(id, [...users, ...bystanders]),
      tenant.lockedOutOf(id, users),
    ]);
    const others = await tenant.othersOf(tenantId, id, pushedUsers.map((u) => u.userName));

    const local: LocalState = {
      users: accounts,
      groups: localGroups,
      memberships: membershipMap([...localOfUsers, ...localPairs, ...localOfDeleted]),
      lockedOut,
      others,
    };
    const builder = new SnapshotBuilder();
    for (const user of pushedUsers) builder.addUserFrom(user, toDirectoryUser);
    const unaccounted: string[] = [];
    for (const userId of bystanders) {
      const account = accounts.get(userId);
      if (account) builder.addUser(accountAsRead(account));
      else unaccounted.push(userId);
    }
    for (const group of pushedGroups) builder.addGroupFrom(group, toDirectoryGroup);
    for (const { groupId, userId } of [...pushedOfUsers, ...pushedPairs, ...pushedOfCreated]) builder.addMember(groupId, userId);
    this.stats.requests += 10;
    this.stats.records += pushedUsers.length + pushedGroups.length + pushedOfUsers.length + pushedPairs.length + pushedOfCreated.length;
    this.stats.usersReread = (this.stats.usersReread ?? 0) + pushedUsers.length;
    return { local, snapshot: builder.build(), unaccounted };
  }

  /** The groups of users entering the scope, for groups whose members were not re-read. */
  async readGroupsOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
    const byUser = new Map<string, string[]>();
    for (const { groupId, userId } of await this.store.memberPairs(userIds, 'user')) {
      let list = byUser.get(userId);
      if (!list) byUser.set(userId, (list = []));
      list.push(groupId);
    }
    this.stats.requests += 1;
    return byUser;
  }

  private async readAll(): Promise<Snapshot> {
    const pushed = await this.store.readAll(this.integrationId);
    this.stats.requests += 1;
    this.stats.records += pushed.users.length + pushed.groups.length + pushed.members.length;
    const builder = new SnapshotBuilder();
    for (const user of pushed.users) builder.addUserFrom(user, toDirectoryUser);
    for (const group of pushed.groups) builder.addGroupFrom(group, (g) => ({ ...toDirectoryGroup(g), membersVersion: g.version }));
    for (const { groupId, userId } of pushed.members) builder.addMember(groupId, userId);
    return builder.build();
  }
}

function unchanged(key: ScimUserKey, account: LocalUser): boolean {
  return key.fingerprint !== null && key.fingerprint === account.fingerprint && key.active === account.active && key.userName === account.userName;
}

/** An inactive pushed user without an account: nothing is done for it, but its userName still counts for clashes. */
function inactive(key: ScimUserKey): DirectoryUser {
  return {
    externalId: key.id,
    userName: key.userName,
    email: null,
    givenName: null,
    familyName: null,
    displayName: null,
    active: false,
    status: 'inactive',
    attributes: {},
    fingerprint: key.fingerprint ?? '',
  };
}

function unique(ids: readonly string[]): string[] {
  return [...new Set(ids)];
}

function uniquePairs(pairs: ReadonlyArray<{ groupId: string; userId: string }>): Array<{ groupId: string; userId: string }> {
  return [...new Map(pairs.map((p) => [`${p.groupId} ${p.userId}`, p])).values()];
}
