import type { DirectoryGroup, DirectoryUser, SkippedRecord } from '../core/model.js';
import { RecordError, type SnapshotSink, clashSkips, takeGroups, userProblem } from '../core/snapshot.js';
import type { Db } from '../db/database.js';
import { StagingRepository } from '../db/staging.repository.js';

/** Users and members a staged read writes at a time. */
const FLUSH_AT = 2_000;

/** Writes a staged read lets wait before the connector waits for them (StagedSnapshot.ready): a few pages' worth. */
const MAX_QUEUED_WRITES = 8;


/**
 * A full read written to Postgres as it comes (src/db/staging.repository.ts), for what a
 * SnapshotBuilder would hold whole: the users and the members. Groups, skipped records and
 * suspicions stay in memory (thousands, not millions). `planStaged` (src/runs/staged-plan.ts)
 * plans from it chunk by chunk.
 *
 * The same rules as SnapshotBuilder's: a record read twice keeps its last version; a record
 * that cannot be taken (userProblem, groupProblem, a mapping's RecordError, a userName clash)
 * is skipped with its reason; members outside the scope are dropped when planned.
 */
export interface StagedRead {
  /** The read's id (StagingRepository.begin), which keys its rows. */
  readonly readId: string;
  /** Users staged (taken): skipped ones are in `skipped`. */
  readonly users: number;
  readonly groups: ReadonlyMap<string, DirectoryGroup>;
  /** Records skipped, users and groups, with and without a readable id. */
  readonly skipped: readonly SkippedRecord[];
  readonly suspicious: readonly string[];
  /** Groups whose members were not read (their version was unchanged): the tenant's stand in. */
  readonly unreadMembers?: ReadonlySet<string>;
}

/**
 * A SnapshotSink that stages what it is given for the read `readId` (StagingRepository.begin). Writes go in the background,
 * one at a time and in order; `finish()` waits for them, finds clashes, and answers the read,
 * or throws the first write's error. `StagingRepository.clear` removes what it staged.
 */
export class StagedSnapshot implements SnapshotSink {
  private readonly staging: StagingRepository;
  private readonly pendingUsers = new Map<string, DirectoryUser>();
  /** Users staged (or waiting to be) whose last version was then skipped: to remove from staging. */
  private pendingUnstage: string[] = [];
  private memberGroups: string[] = [];
  private memberUsers: string[] = [];
  private readonly groups = new Map<string, DirectoryGroup>();
  private readonly unread = new Set<string>();
  private readonly skippedUsers = new Map<string, SkippedRecord>();
  private readonly skippedGroups = new Map<string, SkippedRecord>();
  private readonly unidentified: SkippedRecord[] = [];
  private readonly suspicions: string[] = [];
  /** The writes so far, chained: each starts when the one before ended. */
  private writing: Promise<void> = Promise.resolve();
  /** Writes queued and not yet done. */
  private queued = 0;
  private failed: unknown;

  constructor(
    db: Db,
    readonly readId: string,
  ) {
    this.staging = new StagingRepository(db);
  }

  addUserFrom<T>(raw: T, map: (raw: T) => DirectoryUser): void {
    let user: DirectoryUser;
    try {
      user = map(raw);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.skipUser({ kind: 'user', ...error.record, reason: error.message });
      return;
    }
    const problem = userProblem(user);
    if (problem?.externalId === null) {
      // Its id cannot be stored, so it was never staged.
      this.unidentified.push(problem);
      return;
    }
    if (problem) return this.skipUser(problem);
    this.skippedUsers.delete(user.externalId);
    this.pendingUsers.set(user.externalId, user);
    if (this.pendingUsers.size >= FLUSH_AT) this.flushUsers();
  }

  addGroupFrom<T>(raw: T, map: (raw: T) => DirectoryGroup): void {
    try {
      const group = map(raw);
      this.skippedGroups.delete(group.externalId);
      this.groups.set(group.externalId, group);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      const record: SkippedRecord = { kind: 'group', ...error.record, reason: error.message };
      if (record.externalId === null) this.unidentified.push(record);
      else {
        this.groups.delete(record.externalId);
        this.skippedGroups.set(record.externalId, record);
      }
    }
  }

  group(externalId: string): DirectoryGroup | undefined {
    return this.groups.get(externalId);
  }

  groupIds(): string[] {
    return [...this.groups.keys(), ...this.skippedGroups.keys()];
  }

  markMembersUnread(groupExternalId: string): void {
    this.unread.add(groupExternalId);
  }

  addMember(groupExternalId: string, userExternalId: string): void {
    this.memberGroups.push(groupExternalId);
    this.memberUsers.push(userExternalId);
    if (this.memberGroups.length >= FLUSH_AT) this.flushMembers();
  }

  suspect(reason: string): void {
    this.suspicions.push(reason);
  }

  /**
   * Stops writing: what is queued is dropped, and the write under way is waited for, so that
   * nothing lands once the caller clears the read (StagingRepository.clear).
   */
  async abort(): Promise<void> {
    this.failed ??= new Error('the staged read was aborted');
    await this.writing;
  }

  /**
   * Waits while more than MAX_QUEUED_WRITES writes are queued: Postgres slower than the IdP
   * slows the read, not the memory. Throws what a write threw (Postgres gone): the read stops
   * at once instead of reading on for nothing.
   */
  async ready(): Promise<void> {
    if (this.queued > MAX_QUEUED_WRITES) await this.writing;
    if (this.failed !== undefined) throw this.failed;
  }

  /**
   * Waits for every write, skips users whose userNames normalize alike (none of them is taken,
   * as SnapshotBuilder does), and answers the read. Throws what a write threw (Postgres gone).
   */
  async finish(): Promise<StagedRead> {
    this.flushUsers();
    this.flushMembers();
    await this.writing;
    if (this.failed !== undefined) throw this.failed;
    // Fresh rows, perhaps by the million, after others' were deleted: without fresh statistics
    // the planner may take the tables for empty and scan them whole for each chunk.
    await this.staging.analyze();
    const clashing = await this.staging.clashing(this.readId);
    if (clashing.length > 0) {
      for (const record of clashSkips(clashing)) this.skippedUsers.set(record.externalId!, record);
      await this.staging.unstageUsers(this.readId, clashing.map((u) => u.externalId));
    }
    const groups = takeGroups(this.groups.values(), this.skippedGroups, this.unidentified);
    const unreadMembers = new Set([...this.unread].filter((g) => groups.has(g)));
    const users = await this.staging.countUsers(this.readId);
    return {
      readId: this.readId,
      users,
      groups,
      skipped: [...this.skippedUsers.values(), ...this.skippedGroups.values(), ...this.unidentified],
      suspicious: [...this.suspicions],
      ...(unreadMembers.size > 0 ? { unreadMembers } : {}),
    };
  }

  private skipUser(record: SkippedRecord): void {
    if (record.externalId === null) {
      this.unidentified.push(record);
      return;
    }
    this.skippedUsers.set(record.externalId, record);
    // An earlier version of it may be staged, or waiting to be: the last version is what counts.
    this.pendingUsers.delete(record.externalId);
    this.pendingUnstage.push(record.externalId);
    if (this.pendingUnstage.length >= FLUSH_AT) this.flushUsers();
  }

  /** Writes what waits: first the removals of users whose last version is unreadable, then the users (so a good version after a bad one is kept). */
  private flushUsers(): void {
    if (this.pendingUnstage.length > 0) {
      const ids = this.pendingUnstage;
      this.pendingUnstage = [];
      this.write((s) => s.unstageUsers(this.readId, ids));
    }
    if (this.pendingUsers.size === 0) return;
    const users = [...this.pendingUsers.values()];
    this.pendingUsers.clear();
    this.write((s) => s.stageUsers(this.readId, users));
  }

  private flushMembers(): void {
    if (this.memberGroups.length === 0) return;
    const groups = this.memberGroups;
    const users = this.memberUsers;
    this.memberGroups = [];
    this.memberUsers = [];
    this.write((s) => s.stageMembers(this.readId, groups, users));
  }

  private write(step: (staging: StagingRepository) => Promise<void>): void {
    this.queued += 1;
    this.writing = this.writing.then(async () => {
      try {
        if (this.failed === undefined) await step(this.staging);
      } catch (error) {
        this.failed = error;
      } finally {
        this.queued -= 1;
      }
    });
  }
}
