import { type ReadStats, type SnapshotSource, type SubjectNames, type SubjectRead, type TargetedSource, emptyReadStats } from '../../src/connectors/connector.js';
import type { DirectoryGroup, DirectoryUser, Snapshot } from '../../src/core/model.js';
import { SnapshotBuilder } from '../../src/core/snapshot.js';

/**
 * An IdP held in memory, read as a connector reads a real one: a whole-scope read (full runs)
 * and a read of named subjects (targeted runs) with exactly the semantics SubjectRead documents.
 * Every user and group it holds is in scope. A read captures the directory as it is when it
 * starts; `pause` hooks hold a read after it captured, so tests can interleave runs at will.
 */
export class MemoryIdp {
  readonly users = new Map<string, DirectoryUser>();
  readonly groups = new Map<string, DirectoryGroup>();
  readonly members = new Map<string, Set<string>>();
  /** Awaited by the next full read after it captured the directory (then cleared). */
  pauseFullRead: Promise<void> | undefined;
  /** Awaited by the next targeted read after it captured the directory (then cleared). */
  pauseTargetedRead: Promise<void> | undefined;
  /** Called when a read has captured the directory (before any pause). */
  onCaptured: ((kind: 'full' | 'targeted') => void) | undefined;

  put(user: DirectoryUser): void {
    this.users.set(user.externalId, user);
  }

  putGroup(group: DirectoryGroup, members: readonly string[] = []): void {
    this.groups.set(group.externalId, group);
    this.members.set(group.externalId, new Set(members));
  }

  connector(): SnapshotSource & TargetedSource {
    return new MemoryConnector(this);
  }
}

class MemoryConnector implements SnapshotSource, TargetedSource {
  readonly stats: ReadStats = emptyReadStats();

  constructor(private readonly idp: MemoryIdp) {}

  async readSnapshot(): Promise<Snapshot> {
    const builder = new SnapshotBuilder();
    for (const user of this.idp.users.values()) builder.addUser(user);
    for (const group of this.idp.groups.values()) builder.addGroup(group);
    for (const [groupId, members] of this.idp.members) for (const userId of members) builder.addMember(groupId, userId);
    const snapshot = builder.build();
    this.stats.requests += 1;
    this.idp.onCaptured?.('full');
    const pause = this.idp.pauseFullRead;
    this.idp.pauseFullRead = undefined;
    await pause;
    return snapshot;
  }

  async readSubjects(names: SubjectNames): Promise<SubjectRead> {
    const byLogin = new Map([...this.idp.users.values()].map((u) => [u.userName.toLowerCase(), u.externalId]));
    const unknownLogins = names.logins.filter((l) => !byLogin.has(l.toLowerCase()));
    const userIds = [...new Set([...names.userIds, ...names.logins.flatMap((l) => byLogin.get(l.toLowerCase()) ?? [])])];
    const builder = new SnapshotBuilder();
    const groupsOf = new Map<string, string[]>();
    for (const id of userIds) {
      const user = this.idp.users.get(id);
      if (!user) continue;
      builder.addUser(user);
      groupsOf.set(id, [...this.idp.members].filter(([, m]) => m.has(id)).map(([g]) => g));
    }
    for (const groupId of names.groupIds) {
      const group = this.idp.groups.get(groupId);
      if (!group) continue;
      builder.addGroup(group);
      for (const userId of this.idp.members.get(groupId) ?? []) {
        const member = this.idp.users.get(userId);
        if (!member) continue;
        builder.addUser(member);
        builder.addMember(groupId, userId);
      }
    }
    const snapshot = builder.build();
    this.stats.requests += userIds.length * 2 + names.groupIds.length * 2;
    this.idp.onCaptured?.('targeted');
    const pause = this.idp.pauseTargetedRead;
    this.idp.pauseTargetedRead = undefined;
    await pause;
    return { snapshot, userIds, unknownLogins, groupsOf, groupIds: [...names.groupIds] };
  }
}
