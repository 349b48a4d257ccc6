import { type Expression, type SqlBool, sql } from 'kysely';
import type { JsonObject } from '../core/model.js';
import type { Db } from './database.js';

/** A pushed SCIM User as stored: `resource` is every attribute the client sent but id, meta and password. */
export interface StoredScimUser {
  readonly id: string;
  readonly userName: string;
  readonly externalId: string | null;
  readonly active: boolean;
  readonly resource: JsonObject;
  /** The fingerprint its account has once applied (ScimUsersTable.fingerprint); null when not known. */
  readonly fingerprint: string | null;
  /** Bumped on every write: the resource's ETag (RFC 7644 §3.14) is W/"<version>". */
  readonly version: string;
  readonly created: Date;
  readonly lastModified: Date;
}

/** A pushed SCIM Group as stored; its members are read apart (groups may hold thousands). */
export interface StoredScimGroup {
  readonly id: string;
  readonly displayName: string;
  readonly externalId: string | null;
  readonly resource: JsonObject;
  readonly version: string;
  readonly created: Date;
  readonly lastModified: Date;
}

/** A group member as SCIM shows it: the user's id and userName (`value`, `display`). */
export interface StoredMember {
  readonly groupId: string;
  readonly userId: string;
  readonly userName: string;
}

export interface UserWrite {
  readonly userName: string;
  readonly externalId: string | null;
  readonly active: boolean;
  readonly resource: JsonObject;
}

/** A user as stored: the write and the fingerprint its account will have (see ScimUsersTable.fingerprint). */
export interface StoredUserWrite extends UserWrite {
  readonly fingerprint: string | null;
}

/** What a run compares a pushed user on before reading it whole. */
export interface ScimUserKey {
  readonly id: string;
  readonly userName: string;
  readonly active: boolean;
  readonly fingerprint: string | null;
}

/**
 * A push no run has applied yet (one row of scim_unapplied): a user or a group written, or
 * one membership added or removed (`resourceId` the group, `memberId` the user).
 */
export type UnappliedWrite =
  | { readonly seq: string; readonly resourceType: 'User' | 'Group'; readonly resourceId: string }
  | { readonly seq: string; readonly resourceType: 'Member'; readonly resourceId: string; readonly memberId: string };

export interface GroupWrite {
  readonly displayName: string;
  readonly externalId: string | null;
  readonly resource: JsonObject;
}

/** A filter compiled to SQL over one of the tables (src/scim/scim.filter.ts builds it). */
export type ScimPredicate = Expression<SqlBool>;

/** Another user of this integration already has the userName (case-insensitively): SCIM 409 uniqueness. */
export class UserNameTakenError extends Error {
  override name = 'UserNameTakenError';
}

const USER_NAME_UNIQUE = 'scim_users_user_name_key';

function isUserNameTaken(error: unknown): boolean {
  const e = error as { code?: string; constraint?: string };
  return e?.code === '23505' && e.constraint === USER_NAME_UNIQUE;
}

/**
 * What IdPs pushed to scim integrations (the integration's snapshot, read by runs). Every
 * query is scoped by integration id, so one integration's ids are unknown to another's.
 */
export class ScimRepository {
  constructor(private readonly db: Db) {}

  /** Runs `body` in a transaction with a repository bound to it (read-modify-write of PATCH). */
  transaction<T>(body: (repo: ScimRepository) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => body(new ScimRepository(trx)));
  }

  /** Stores a new user. Throws UserNameTakenError when the userName is taken in this integration. */
  async createUser(integrationId: string, user: StoredUserWrite): Promise<StoredScimUser> {
    try {
      const row = await this.db
        .insertInto('scim_users')
        .values({ integration_id: integrationId, user_name: user.userName, external_id: user.externalId, active: user.active, resource: JSON.stringify(user.resource), fingerprint: user.fingerprint })
        .returning(USER_COLUMNS)
        .executeTakeFirstOrThrow();
      return toUser(row);
    } catch (error) {
      if (isUserNameTaken(error)) throw new UserNameTakenError(user.userName);
      throw error;
    }
  }

  /** The user; with `forUpdate`, locked until the transaction ends. */
  async findUser(integrationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<StoredScimUser | undefined> {
    let query = this.db.selectFrom('scim_users').select(USER_COLUMNS).where('integration_id', '=', integrationId).where('id', '=', id);
    if (options.forUpdate) query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toUser(row);
  }

  /** Replaces the user's attributes; undefined if it does not exist. Throws UserNameTakenError. */
  async replaceUser(integrationId: string, id: string, user: StoredUserWrite): Promise<StoredScimUser | undefined> {
    try {
      const row = await this.db
        .updateTable('scim_users')
        .set({
          user_name: user.userName,
          external_id: user.externalId,
          active: user.active,
          resource: JSON.stringify(user.resource),
          fingerprint: user.fingerprint,
          version: sql`version + 1`,
          updated_at: sql`now()`,
        } as never)
        .where('integration_id', '=', integrationId)
        .where('id', '=', id)
        .returning(USER_COLUMNS)
        .executeTakeFirst();
      return row && toUser(row);
    } catch (error) {
      if (isUserNameTaken(error)) throw new UserNameTakenError(user.userName);
      throw error;
    }
  }

  /**
   * Deletes the user and its memberships; false if it did not exist. The groups it leaves get
   * a new version, as any member change gives them, so runs re-read their members.
   */
  async deleteUser(integrationId: string, id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('scim_groups')
        .set({ version: sql`version + 1`, updated_at: sql`now()` } as never)
        .where('id', 'in', trx.selectFrom('scim_group_members').select('group_id').where('user_id', '=', id))
        .where('integration_id', '=', integrationId)
        .execute();
      const result = await trx.deleteFrom('scim_users').where('integration_id', '=', integrationId).where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }

  /** One page of the integration's users matching `where`, oldest first, and how many match in all. */
  async listUsers(integrationId: string, where: ScimPredicate | undefined, page: { offset: number; limit: number }): Promise<{ total: number; users: StoredScimUser[] }> {
    const base = this.db.selectFrom('scim_users').where('integration_id', '=', integrationId).$if(where !== undefined, (q) => q.where(where!));
    const [count, rows] = await Promise.all([
      base.select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow(),
      page.limit === 0 ? [] : base.select(USER_COLUMNS).orderBy('created_at').orderBy('id').offset(page.offset).limit(page.limit).execute(),
    ]);
    return { total: Number(count.n), users: rows.map(toUser) };
  }

  /** Of these ids, those that are not users of this integration. */
  async missingUsers(integrationId: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const found = await this.db.selectFrom('scim_users').select('id').where('integration_id', '=', integrationId).where('id', 'in', [...ids]).execute();
    const present = new Set(found.map((r) => r.id));
    return ids.filter((id) => !present.has(id));
  }

  async createGroup(integrationId: string, group: GroupWrite): Promise<StoredScimGroup> {
    const row = await this.db
      .insertInto('scim_groups')
      .values({ integration_id: integrationId, display_name: group.displayName, external_id: group.externalId, resource: JSON.stringify(group.resource) })
      .returning(GROUP_COLUMNS)
      .executeTakeFirstOrThrow();
    return toGroup(row);
  }

  async findGroup(integrationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<StoredScimGroup | undefined> {
    let query = this.db.selectFrom('scim_groups').select(GROUP_COLUMNS).where('integration_id', '=', integrationId).where('id', '=', id);
    if (options.forUpdate) query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toGroup(row);
  }

  async replaceGroup(integrationId: string, id: string, group: GroupWrite): Promise<StoredScimGroup | undefined> {
    const row = await this.db
      .updateTable('scim_groups')
      .set({
        display_name: group.displayName,
        external_id: group.externalId,
        resource: JSON.stringify(group.resource),
        version: sql`version + 1`,
        updated_at: sql`now()`,
      } as never)
      .where('integration_id', '=', integrationId)
      .where('id', '=', id)
      .returning(GROUP_COLUMNS)
      .executeTakeFirst();
    return row && toGroup(row);
  }

  /** Marks a group changed (a member change alone): new version and lastModified. */
  async touchGroup(groupId: string): Promise<StoredScimGroup> {
    const row = await this.db
      .updateTable('scim_groups')
      .set({ version: sql`version + 1`, updated_at: sql`now()` } as never)
      .where('id', '=', groupId)
      .returning(GROUP_COLUMNS)
      .executeTakeFirstOrThrow();
    return toGroup(row);
  }

  async deleteGroup(integrationId: string, id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('scim_groups').where('integration_id', '=', integrationId).where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listGroups(integrationId: string, where: ScimPredicate | undefined, page: { offset: number; limit: number }): Promise<{ total: number; groups: StoredScimGroup[] }> {
    const base = this.db.selectFrom('scim_groups').where('integration_id', '=', integrationId).$if(where !== undefined, (q) => q.where(where!));
    const [count, rows] = await Promise.all([
      base.select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow(),
      page.limit === 0 ? [] : base.select(GROUP_COLUMNS).orderBy('created_at').orderBy('id').offset(page.offset).limit(page.limit).execute(),
    ]);
    return { total: Number(count.n), groups: rows.map(toGroup) };
  }

  /** The members of these groups, with their userNames, in a stable order. */
  async membersOf(groupIds: readonly string[]): Promise<StoredMember[]> {
    if (groupIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('scim_group_members as m')
      .innerJoin('scim_users as u', 'u.id', 'm.user_id')
      .select(['m.group_id', 'm.user_id', 'u.user_name'])
      .where('m.group_id', 'in', [...groupIds])
      .orderBy('u.created_at')
      .orderBy('u.id')
      .execute();
    return rows.map((r) => ({ groupId: r.group_id, userId: r.user_id, userName: r.user_name }));
  }

  /** The groups each of these users is a member of (user id -> groups, by displayName), for a User's `groups`. */
  async groupsOf(userIds: readonly string[]): Promise<Map<string, Array<{ id: string; displayName: string }>>> {
    const byUser = new Map<string, Array<{ id: string; displayName: string }>>();
    if (userIds.length === 0) return byUser;
    const rows = await this.db
      .selectFrom('scim_group_members as m')
      .innerJoin('scim_groups as g', 'g.id', 'm.group_id')
      .select(['m.user_id', 'g.id', 'g.display_name'])
      .where('m.user_id', 'in', [...userIds])
      .orderBy('g.created_at')
      .orderBy('g.id')
      .execute();
    for (const r of rows) {
      let list = byUser.get(r.user_id);
      if (!list) byUser.set(r.user_id, (list = []));
      list.push({ id: r.id, displayName: r.display_name });
    }
    return byUser;
  }

  async addMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    if (userIds.length === 0) return;
    await this.db
      .insertInto('scim_group_members')
      .values([...new Set(userIds)].map((userId) => ({ group_id: groupId, user_id: userId })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  /** Removes these members, or every member when `userIds` is undefined. */
  async removeMembers(groupId: string, userIds?: readonly string[]): Promise<void> {
    if (userIds?.length === 0) return;
    await this.db
      .deleteFrom('scim_group_members')
      .where('group_id', '=', groupId)
      .$if(userIds !== undefined, (q) => q.where('user_id', 'in', [...userIds!]))
      .execute();
  }

  /** Every pushed user's id, userName, active flag and fingerprint: what a run compares before reading whole. */
  async userKeys(integrationId: string): Promise<ScimUserKey[]> {
    const rows = await this.db.selectFrom('scim_users').select(['id', 'user_name', 'active', 'fingerprint']).where('integration_id', '=', integrationId).execute();
    return rows.map((r) => ({ id: r.id, userName: r.user_name, active: r.active, fingerprint: r.fingerprint }));
  }

  /** These users, whole. */
  async usersById(integrationId: string, ids: readonly string[]): Promise<StoredScimUser[]> {
    const out: StoredScimUser[] = [];
    for (let i = 0; i < ids.length; i += 1_000) {
      const rows = await this.db.selectFrom('scim_users').select(USER_COLUMNS).where('integration_id', '=', integrationId).where('id', 'in', ids.slice(i, i + 1_000)).execute();
      out.push(...rows.map(toUser));
    }
    return out;
  }

  /**
   * Stores fingerprints a run computed for users stored without one (or with one an older
   * mapping made), each only if the user has not been written since (same version): a push
   * in between keeps its own.
   */
  async repairFingerprints(users: ReadonlyArray<{ id: string; version: string; fingerprint: string }>): Promise<void> {
    if (users.length === 0) return;
    await sql`
      update scim_users s set fingerprint = t.fingerprint
      from unnest(${users.map((u) => u.id)}::uuid[], ${users.map((u) => u.version)}::bigint[], ${users.map((u) => u.fingerprint)}::text[]) as t(id, version, fingerprint)
      where s.id = t.id and s.version = t.version
    `.execute(this.db);
  }

  /** Every pushed group, whole (members apart). */
  async allGroups(integrationId: string): Promise<StoredScimGroup[]> {
    const rows = await this.db.selectFrom('scim_groups').select(GROUP_COLUMNS).where('integration_id', '=', integrationId).execute();
    return rows.map(toGroup);
  }

  /** The memberships of these groups (or, with `by: 'user'`, of these users), as pairs. */
  async memberPairs(ids: readonly string[], by: 'group' | 'user'): Promise<Array<{ groupId: string; userId: string }>> {
    const out: Array<{ groupId: string; userId: string }> = [];
    for (let i = 0; i < ids.length; i += 1_000) {
      const rows = await this.db
        .selectFrom('scim_group_members')
        .select(['group_id', 'user_id'])
        .where(by === 'group' ? 'group_id' : 'user_id', 'in', ids.slice(i, i + 1_000))
        .execute();
      out.push(...rows.map((r) => ({ groupId: r.group_id, userId: r.user_id })));
    }
    return out;
  }

  /** These groups, whole (members apart); ids that are not groups of the integration are left out. */
  async groupsById(integrationId: string, ids: readonly string[]): Promise<StoredScimGroup[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('scim_groups').select(GROUP_COLUMNS).where('integration_id', '=', integrationId).where(sql<boolean>`id = any(${ids}::uuid[])`).execute();
    return rows.map(toGroup);
  }

  /**
   * The oldest `limit` writes not yet applied (scim_unapplied, filled by triggers in each
   * write's own transaction), in the order they were recorded.
   */
  async unapplied(integrationId: string, limit: number): Promise<UnappliedWrite[]> {
    const rows = await this.db
      .selectFrom('scim_unapplied')
      .select(['seq', 'resource_type', 'resource_id', 'member_id'])
      .where('integration_id', '=', integrationId)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((r) =>
      r.resource_type === 'Member'
        ? { seq: String(r.seq), resourceType: 'Member', resourceId: r.resource_id, memberId: r.member_id! }
        : { seq: String(r.seq), resourceType: r.resource_type, resourceId: r.resource_id },
    );
  }

  /**
   * Forgets writes a run applied: exactly these rows, never "every row up to a seq", since a
   * transaction that took a lower seq may commit after the run read the table.
   */
  async settle(seqs: readonly string[]): Promise<void> {
    for (let i = 0; i < seqs.length; i += 50_000) {
      await this.db.deleteFrom('scim_unapplied').where(sql<boolean>`seq = any(${seqs.slice(i, i + 50_000)}::bigint[])`).execute();
    }
  }

  /** Of these (group, user) pairs, those that are memberships now. */
  async existingPairs(pairs: ReadonlyArray<{ groupId: string; userId: string }>): Promise<Array<{ groupId: string; userId: string }>> {
    if (pairs.length === 0) return [];
    const { rows } = await sql<{ group_id: string; user_id: string }>`
      select m.group_id, m.user_id from scim_group_members m
      join unnest(${pairs.map((p) => p.groupId)}::uuid[], ${pairs.map((p) => p.userId)}::uuid[]) as t(group_id, user_id)
        on m.group_id = t.group_id and m.user_id = t.user_id
    `.execute(this.db);
    return rows.map((r) => ({ groupId: r.group_id, userId: r.user_id }));
  }

  /**
   * Everything pushed to the integration, for a run to read as its snapshot: all users, all
   * groups and all memberships, in one repeatable-read transaction so the three agree.
   */
  async readAll(integrationId: string): Promise<{ users: StoredScimUser[]; groups: StoredScimGroup[]; members: Array<{ groupId: string; userId: string }> }> {
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => {
        const users = await trx.selectFrom('scim_users').select(USER_COLUMNS).where('integration_id', '=', integrationId).execute();
        const groups = await trx.selectFrom('scim_groups').select(GROUP_COLUMNS).where('integration_id', '=', integrationId).execute();
        const members = await trx
          .selectFrom('scim_group_members as m')
          .innerJoin('scim_groups as g', 'g.id', 'm.group_id')
          .select(['m.group_id', 'm.user_id'])
          .where('g.integration_id', '=', integrationId)
          .execute();
        return { users: users.map(toUser), groups: groups.map(toGroup), members: members.map((m) => ({ groupId: m.group_id, userId: m.user_id })) };
      });
  }
}

const USER_COLUMNS = ['id', 'user_name', 'external_id', 'active', 'resource', 'fingerprint', 'version', 'created_at', 'updated_at'] as const;
const GROUP_COLUMNS = ['id', 'display_name', 'external_id', 'resource', 'version', 'created_at', 'updated_at'] as const;

function toUser(row: {
  id: string;
  user_name: string;
  external_id: string | null;
  active: boolean;
  resource: JsonObject;
  fingerprint: string | null;
  version: string;
  created_at: Date;
  updated_at: Date;
}): StoredScimUser {
  return {
    id: row.id,
    userName: row.user_name,
    externalId: row.external_id,
    active: row.active,
    resource: row.resource,
    fingerprint: row.fingerprint,
    version: String(row.version),
    created: row.created_at,
    lastModified: row.updated_at,
  };
}

function toGroup(row: { id: string; display_name: string; external_id: string | null; resource: JsonObject; version: string; created_at: Date; updated_at: Date }): StoredScimGroup {
  return {
    id: row.id,
    displayName: row.display_name,
    externalId: row.external_id,
    resource: row.resource,
    version: String(row.version),
    created: row.created_at,
    lastModified: row.updated_at,
  };
}
