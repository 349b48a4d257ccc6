import {
  type ChangeFeedRead,
  type ReadStats,
  type SnapshotSource,
  type SubjectNames,
  type SubjectRead,
  type TargetedSource,
  emptyReadStats,
} from '../../src/connectors/connector.js';
import type { DirectoryGroup, DirectoryUser, Snapshot } from '../../src/core/model.js';
import { SnapshotBuilder, type SnapshotSink } from '../../src/core/snapshot.js';

/**
 * An IdP held in memory, read as a connector reads a real one: a whole-scope read (full runs)
 * and a read of named subjects (targeted runs) with exactly the semantics SubjectRead documents.
 * Every user and group it holds is in scope. A read captures the directory as it is when it
 * starts; `pause` hooks hold a read after it captured, so tests can interleave runs at will.
 *
 * It also keeps a change feed (an incremental run's `readChanges`) of what tests declare with
 * `changed`: changing the maps directly is not in the feed, as a change made outside the IdP's
 * API is not in a real one.
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

  /** Changes declared with `changed`, oldest first: `at` is Date.now() when declared. */
  readonly feed: Array<{ at: number; userIds: readonly string[]; groupIds: readonly string[] }> = [];

  put(user: DirectoryUser): void {
    this.users.set(user.externalId, user);
  }

  putGroup(group: DirectoryGroup, members: readonly string[] = []): void {
    this.groups.set(group.externalId, group);
    this.members.set(group.externalId, new Set(members));
  }

  /** Appends a change naming these users and groups to the feed (what an event of the IdP's log would name). */
  changed(names: { userIds?: readonly string[]; groupIds?: readonly string[] }): void {
    this.feed.push({ at: Date.now(), userIds: names.userIds ?? [], groupIds: names.groupIds ?? [] });
  }

  /** A connector reading this IdP; `observer` watches (and may hold) that connector's reads alone. */
  connector(observer?: ReadObserver): SnapshotSource & TargetedSource {
    return new MemoryConnector(this, observer);
  }
}

/** A read of the whole scope, or of named subjects. */
export type ReadKind = 'full' | 'targeted';

/**
 * Watches one connector's reads, so that a test giving each run its own connector knows which
 * run read what, when, and can hold that run alone. Both hooks are awaited.
 */
export interface ReadObserver {
  /** A read was asked for and has not captured the directory yet: the IdP may still change under it. */
  beforeCapture?(kind: ReadKind, names: SubjectNames | undefined): Promise<void> | void;
  /** The read captured the directory (called synchronously at that moment, then awaited, before the IdP-wide pauses). */
  captured?(kind: ReadKind, names: SubjectNames | undefined): Promise<void> | void;
}

/** A feed cursor: the index in `MemoryIdp.feed` the next read starts at. */
function feedCursor(index: number): string {
  return `feed:${index}`;
}

class MemoryConnector implements SnapshotSource, TargetedSource {
  readonly stats: ReadStats = emptyReadStats();

  constructor(
    private readonly idp: MemoryIdp,
    private readonly observer: ReadObserver | undefined,
  ) {}

  async readSnapshot(): Promise<Snapshot> {
    const builder = new SnapshotBuilder();
    await this.readInto(builder);
    return builder.build();
  }

  /** A full read into any sink, as the Okta connector's: runs stage it (src/runs/staged-read.ts). */
  async readInto(sink: SnapshotSink): Promise<void> {
    await this.observer?.beforeCapture?.('full', undefined);
    for (const user of this.idp.users.values()) sink.addUserFrom(user, (u) => u);
    for (const group of this.idp.groups.values()) sink.addGroupFrom(group, (g) => g);
    for (const [groupId, members] of this.idp.members) for (const userId of members) sink.addMember(groupId, userId);
    this.stats.requests += 1;
    this.idp.onCaptured?.('full');
    await this.observer?.captured?.('full', undefined);
    const pause = this.idp.pauseFullRead;
    this.idp.pauseFullRead = undefined;
    await pause;
  }

  async readGroupsOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
    return new Map(userIds.map((id) => [id, [...this.idp.members].filter(([, m]) => m.has(id)).map(([g]) => g)]));
  }

  async readSubjects(names: SubjectNames): Promise<SubjectRead> {
    await this.observer?.beforeCapture?.('targeted', names);
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
    await this.observer?.captured?.('targeted', names);
    const pause = this.idp.pauseTargetedRead;
    this.idp.pauseTargetedRead = undefined;
    await pause;
    return { snapshot, userIds, unknownLogins, groupsOf, groupIds: [...names.groupIds] };
  }

  /** Every change declared at or after `at` (the same millisecond included: reading a change twice is harmless, missing one is not). */
  feedCursorAt(at: Date): string {
    const first = this.idp.feed.findIndex((c) => c.at >= at.getTime());
    return feedCursor(first === -1 ? this.idp.feed.length : first);
  }

  async readChanges(cursor: string): Promise<ChangeFeedRead> {
    const match = /^feed:(\d+)$/.exec(cursor);
    if (!match) return { kind: 'unavailable', reason: `not a cursor of this feed: ${cursor}` };
    const changes = this.idp.feed.slice(Number(match[1]));
    this.stats.requests += 1;
    return {
      kind: 'changes',
      names: {
        userIds: [...new Set(changes.flatMap((c) => c.userIds))],
        logins: [],
        groupIds: [...new Set(changes.flatMap((c) => c.groupIds))],
      },
      unnarrowable: [],
      events: changes.length,
      cursor: feedCursor(this.idp.feed.length),
    };
  }
}
