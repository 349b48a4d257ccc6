import { SnapshotBuilder } from '../../core/snapshot.js';
import type { DirectoryUser, LocalState, LocalUser, Snapshot } from '../../core/model.js';
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
      if (account ? unchanged(key, account) : !key.active) builder.addUser(account ? fromAccount(account) : inactive(key));
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
   * A targeted read (SPEC "Run": `targeted`): the pushed resources these writes name, and the
   * tenant's state of the same subjects, narrowed so that the planner, diffing the two, plans
   * exactly what it would plan for them over the whole scope:
   *
   * - named users: their pushed record (absent when deleted) and their account, locks and the
   *   other accounts with their login (for conflicts and adoption);
   * - named groups: whole, members included on both sides; members that are not named users
   *   ("bystanders") come from their accounts unchanged, so that they are kept and nothing is
   *   planned for them;
   * - the other groups named users are (or were) members of: only those users' memberships,
   *   and only groups both sides have (a group on one side only is itself a named write,
   *   applied by the run that reads it).
   *
   * Costs a handful of queries whatever the directory's size; reads nothing of users and
   * groups nobody wrote.
   */
  async readSubjects(writes: readonly UnappliedWrite[], tenant: DirectoryRepository, tenantId: string): Promise<{ local: LocalState; snapshot: Snapshot }> {
    const users = unique(writes.filter((w) => w.resourceType === 'User').map((w) => w.resourceId));
    const whole = new Set(writes.filter((w) => w.resourceType === 'Group').map((w) => w.resourceId));
    const groups = [...whole];
    const [pushedOfUsers, pushedOfGroups, localOfUsers, localOfGroups] = await Promise.all([
      this.store.memberPairs(users, 'user'),
      this.store.memberPairs(groups, 'group'),
      tenant.membershipPairs(this.integrationId, { by: 'user', externalIds: users }),
      tenant.membershipPairs(this.integrationId, { by: 'group', externalIds: groups }),
    ]);
    const named = new Set(users);
    const alsoOf = unique([...pushedOfUsers.map((p) => p.groupId), ...localOfUsers.map((p) => p.group)]).filter((g) => !whole.has(g));
    const bystanders = unique([...pushedOfGroups.map((p) => p.userId), ...localOfGroups.map((p) => p.user)]).filter((u) => !named.has(u));
    const [pushedUsers, pushedGroups, accounts, localGroups, lockedOut] = await Promise.all([
      this.store.usersById(this.integrationId, users),
      this.store.groupsById(this.integrationId, [...groups, ...alsoOf]),
      tenant.accountsOf(this.integrationId, [...users, ...bystanders]),
      tenant.groupsOf(this.integrationId, [...groups, ...alsoOf]),
      tenant.lockedOutOf(this.integrationId, users),
    ]);
    const others = await tenant.othersOf(tenantId, this.integrationId, pushedUsers.map((u) => u.userName));
    const pushedById = new Map(pushedGroups.map((g) => [g.id, g]));
    const partly = new Set(alsoOf.filter((g) => pushedById.has(g) && localGroups.has(g)));
    const kept = (group: string) => whole.has(group) || partly.has(group);

    const local: LocalState = {
      users: accounts,
      groups: new Map([...localGroups].filter(([id]) => kept(id))),
      memberships: membershipMap([...localOfGroups, ...localOfUsers.filter((p) => kept(p.group))]),
      lockedOut,
      others,
    };
    const builder = new SnapshotBuilder();
    for (const user of pushedUsers) builder.addUserFrom(user, toDirectoryUser);
    for (const id of bystanders) {
      const account = accounts.get(id);
      if (account) builder.addUser(fromAccount(account));
    }
    for (const group of pushedGroups) {
      // Only a group read whole carries the version its members were read at (recorded after the run).
      if (whole.has(group.id)) builder.addGroupFrom(group, (g) => ({ ...toDirectoryGroup(g), membersVersion: g.version }));
      else if (partly.has(group.id)) builder.addGroupFrom(group, toDirectoryGroup);
    }
    for (const { groupId, userId } of [...pushedOfGroups, ...pushedOfUsers]) if (kept(groupId)) builder.addMember(groupId, userId);
    this.stats.requests += 10;
    this.stats.records += pushedUsers.length + pushedGroups.length + pushedOfUsers.length + pushedOfGroups.length;
    this.stats.usersReread = (this.stats.usersReread ?? 0) + pushedUsers.length;
    return { local, snapshot: builder.build() };
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

/** The account as the pushed user it was applied from: equal fields and fingerprint, so nothing to plan. */
function fromAccount(account: LocalUser): DirectoryUser {
  return { ...account, status: account.active ? 'active' : 'inactive', attributes: {} };
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
