import { sql } from 'kysely';
import type { DirectoryGroup, DirectoryUser, LocalGroup, LocalState, LocalUser } from '../core/model.js';
import type { Membership } from '../core/plan.js';
import type { Db } from './database.js';

/** Which integration, in which tenant, a write belongs to, and the run that makes it. */
export interface WriteScope {
  readonly tenantId: string;
  readonly integrationId: string;
  readonly runId: string;
}

export interface TenantUserView {
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}

export interface TenantGroupView {
  name: string;
  members: string[];
}

/**
 * The tenant's directory state: global users, tenant access, groups, memberships, locks.
 * Every write is one set-based statement per batch (unnest of column arrays), keyed by
 * (integration, external id) so repeating it converges instead of duplicating.
 */
export class DirectoryRepository {
  constructor(private readonly db: Db) {}

  async loadLocalState(integrationId: string): Promise<LocalState> {
    const [userRows, groupRows, memberRows, lockedRows] = await Promise.all([
      this.db
        .selectFrom('tenant_access')
        .select(['external_id', 'user_name', 'email', 'given_name', 'family_name', 'display_name', 'active', 'fingerprint'])
        .where('integration_id', '=', integrationId)
        .execute(),
      this.db
        .selectFrom('groups')
        .select(['external_id', 'name', 'description', 'fingerprint'])
        .where('integration_id', '=', integrationId)
        .execute(),
      this.db
        .selectFrom('group_memberships as gm')
        .innerJoin('groups as g', 'g.id', 'gm.group_id')
        .innerJoin('tenant_access as ta', (join) =>
          join.onRef('ta.user_id', '=', 'gm.user_id').onRef('ta.tenant_id', '=', 'g.tenant_id'),
        )
        .select(['g.external_id as group_external_id', 'ta.external_id as user_external_id'])
        .where('g.integration_id', '=', integrationId)
        .where('ta.integration_id', '=', integrationId)
        .execute(),
      this.db
        .selectFrom('locks as l')
        .select('l.external_id')
        .where('l.integration_id', '=', integrationId)
        .where('l.external_id', 'is not', null)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('tenant_access as ta')
                .select('ta.id')
                .whereRef('ta.integration_id', '=', 'l.integration_id')
                .whereRef('ta.external_id', '=', 'l.external_id'),
            ),
          ),
        )
        .execute(),
    ]);
    const users = new Map<string, LocalUser>();
    for (const r of userRows) {
      users.set(r.external_id, {
        externalId: r.external_id,
        userName: r.user_name,
        email: r.email,
        givenName: r.given_name,
        familyName: r.family_name,
        displayName: r.display_name,
        active: r.active,
        fingerprint: r.fingerprint,
      });
    }
    const groups = new Map<string, LocalGroup>();
    for (const r of groupRows) {
      groups.set(r.external_id, {
        externalId: r.external_id,
        name: r.name,
        description: r.description,
        fingerprint: r.fingerprint,
      });
    }
    const memberships = new Map<string, Set<string>>();
    for (const r of memberRows) {
      let members = memberships.get(r.group_external_id);
      if (!members) memberships.set(r.group_external_id, (members = new Set()));
      members.add(r.user_external_id);
    }
    const lockedOut = new Set(lockedRows.map((r) => r.external_id as string));
    return { users, groups, memberships, lockedOut };
  }

  /**
   * Grants (or restores) tenant access and lifts the user's lock. The global user is matched
   * case-insensitively by userName, so a user that already exists (an SSO login, another
   * tenant) is adopted, never duplicated. Serves creates and reprovisions alike.
   */
  async grantAccess(scope: WriteScope, users: readonly DirectoryUser[]): Promise<void> {
    if (users.length === 0) return;
    const c = userColumns(users);
    // A login is one person: when the IdP gives it to a new account (the old one deleted), this
    // integration's access row for that person moves to the new IdP id instead of clashing.
    await sql`
      update tenant_access ta set external_id = i.external_id, updated_at = now()
      from unnest(${c.externalId}::text[], ${c.userName}::text[]) as i(external_id, user_name)
      join users u on u.user_name_key = lower(i.user_name)
      where ta.tenant_id = ${scope.tenantId}::uuid and ta.integration_id = ${scope.integrationId}::uuid
        and ta.user_id = u.id and ta.external_id <> i.external_id
        and not exists (
          select 1 from tenant_access t2
          where t2.integration_id = ${scope.integrationId}::uuid and t2.external_id = i.external_id)
    `.execute(this.db);
    await sql`
      with input as (
        select * from unnest(${c.externalId}::text[], ${c.userName}::text[], ${c.email}::text[],
          ${c.givenName}::text[], ${c.familyName}::text[], ${c.displayName}::text[], ${c.active}::boolean[],
          ${c.status}::text[], ${c.attributes}::jsonb[], ${c.fingerprint}::text[])
          as t(external_id, user_name, email, given_name, family_name, display_name, active, idp_status,
               attributes, fingerprint)
      ), global_users as (
        insert into users (user_name) select user_name from input
        on conflict (user_name_key) do update set updated_at = users.updated_at
        returning id, user_name_key
      ), access as (
        insert into tenant_access (tenant_id, user_id, integration_id, external_id, user_name, email, given_name,
          family_name, display_name, active, idp_status, attributes, fingerprint)
        select ${scope.tenantId}::uuid, g.id, ${scope.integrationId}::uuid, i.external_id, i.user_name, i.email,
          i.given_name, i.family_name, i.display_name, i.active, i.idp_status, i.attributes, i.fingerprint
        from input i join global_users g on g.user_name_key = lower(i.user_name)
        on conflict (integration_id, external_id) do update set
          user_id = excluded.user_id, user_name = excluded.user_name, email = excluded.email,
          given_name = excluded.given_name, family_name = excluded.family_name,
          display_name = excluded.display_name, active = excluded.active, idp_status = excluded.idp_status,
          attributes = excluded.attributes, fingerprint = excluded.fingerprint, deprovisioned_at = null,
          updated_at = now()
        returning user_id, external_id
      )
      -- By user, and by IdP id: delete mode may have removed the global user the lock names.
      delete from locks l where l.tenant_id = ${scope.tenantId}::uuid and (
        l.user_id in (select user_id from access)
        or (l.integration_id = ${scope.integrationId}::uuid and l.external_id in (select external_id from access)))
    `.execute(this.db);
  }

  /** Refreshes attributes of users the tenant already has; `active` is left alone. */
  async updateUsers(scope: WriteScope, users: readonly DirectoryUser[]): Promise<void> {
    if (users.length === 0) return;
    const c = userColumns(users);
    await sql`
      with input as (
        select * from unnest(${c.externalId}::text[], ${c.userName}::text[], ${c.email}::text[],
          ${c.givenName}::text[], ${c.familyName}::text[], ${c.displayName}::text[], ${c.status}::text[],
          ${c.attributes}::jsonb[], ${c.fingerprint}::text[])
          as t(external_id, user_name, email, given_name, family_name, display_name, idp_status, attributes, fingerprint)
      ), updated as (
        update tenant_access ta set user_name = i.user_name, email = i.email, given_name = i.given_name,
          family_name = i.family_name, display_name = i.display_name, idp_status = i.idp_status,
          attributes = i.attributes, fingerprint = i.fingerprint, updated_at = now()
        from input i
        where ta.integration_id = ${scope.integrationId}::uuid and ta.external_id = i.external_id
        returning ta.user_id, i.user_name
      )
      -- A changed login renames the global user, unless that name already belongs to someone else.
      update users u set user_name = up.user_name, updated_at = now()
      from updated up
      where u.id = up.user_id and u.user_name <> up.user_name
        and not exists (select 1 from users o where o.user_name_key = lower(up.user_name) and o.id <> u.id)
    `.execute(this.db);
  }

  /**
   * Suspend mode: access kept but inactive, memberships kept, and a lock recorded so the
   * host app can end sessions. Users the IdP still lists get their attributes refreshed too.
   */
  async suspendUsers(
    scope: WriteScope,
    deprovisions: readonly { externalId: string; reason: string; user: DirectoryUser | null }[],
  ): Promise<void> {
    if (deprovisions.length === 0) return;
    await this.updateUsers(scope, deprovisions.flatMap((d) => (d.user ? [d.user] : [])));
    await sql`
      with input as (
        select * from unnest(${deprovisions.map((d) => d.externalId)}::text[], ${deprovisions.map((d) => d.reason)}::text[])
          as t(external_id, reason)
      ), suspended as (
        update tenant_access ta set active = false, deprovisioned_at = coalesce(ta.deprovisioned_at, now()), updated_at = now()
        from input i
        where ta.integration_id = ${scope.integrationId}::uuid and ta.external_id = i.external_id
        returning ta.tenant_id, ta.user_id, ta.external_id, ta.user_name, i.reason
      )
      insert into locks (tenant_id, user_id, integration_id, external_id, user_name, reason, run_id)
      select tenant_id, user_id, ${scope.integrationId}::uuid, external_id, user_name, reason, ${scope.runId}::uuid from suspended
      on conflict (tenant_id, user_id) do nothing
    `.execute(this.db);
  }

  /**
   * remove-access and delete modes: the tenant access and every membership in the tenant's
   * groups go, a lock is recorded; in delete mode the global user goes too once no tenant
   * has access left (the lock keeps their id so the host app can still end their sessions).
   */
  async removeAccess(
    scope: WriteScope,
    deprovisions: readonly { externalId: string; reason: string }[],
    deleteOrphanedUsers: boolean,
  ): Promise<void> {
    if (deprovisions.length === 0) return;
    const { rows } = await sql<{ user_id: string }>`
      with input as (
        select * from unnest(${deprovisions.map((d) => d.externalId)}::text[], ${deprovisions.map((d) => d.reason)}::text[])
          as t(external_id, reason)
      ), removed as (
        delete from tenant_access ta using input i
        where ta.integration_id = ${scope.integrationId}::uuid and ta.external_id = i.external_id
        returning ta.tenant_id, ta.user_id, ta.external_id, ta.user_name, i.reason
      ), memberships as (
        delete from group_memberships gm using groups g, removed r
        where g.id = gm.group_id and g.tenant_id = r.tenant_id and gm.user_id = r.user_id
      ), locked as (
        insert into locks (tenant_id, user_id, integration_id, external_id, user_name, reason, run_id)
        select tenant_id, user_id, ${scope.integrationId}::uuid, external_id, user_name, reason, ${scope.runId}::uuid from removed
        on conflict (tenant_id, user_id) do nothing
      )
      select user_id from removed
    `.execute(this.db);
    if (!deleteOrphanedUsers || rows.length === 0) return;
    await sql`
      delete from users u where u.id = any(${rows.map((r) => r.user_id)}::uuid[])
        and not exists (select 1 from tenant_access ta where ta.user_id = u.id)
    `.execute(this.db);
  }

  /** Membership versions of the integration's groups read within `maxAgeMs` (older ones are read again). */
  async loadMemberVersions(integrationId: string, maxAgeMs: number): Promise<Map<string, string>> {
    const rows = await this.db
      .selectFrom('groups')
      .select(['external_id', 'members_version'])
      .where('integration_id', '=', integrationId)
      .where('members_version', 'is not', null)
      .where('members_read_at', '>', sql<Date>`now() - ${maxAgeMs} * interval '1 millisecond'`)
      .execute();
    return new Map(rows.map((r) => [r.external_id, r.members_version as string]));
  }

  /** Records the membership versions a run read and fully applied. */
  async recordMemberVersions(integrationId: string, groups: readonly { externalId: string; version: string }[]): Promise<void> {
    if (groups.length === 0) return;
    await sql`
      update groups g set members_version = t.version, members_read_at = now()
      from unnest(${groups.map((x) => x.externalId)}::text[], ${groups.map((x) => x.version)}::text[]) as t(external_id, version)
      where g.integration_id = ${integrationId}::uuid and g.external_id = t.external_id
    `.execute(this.db);
  }

  /**
   * Refreshes the planner's statistics after a large write: until autovacuum gets to it,
   * Postgres would plan the next run's reads for the empty tables of before (nested loops
   * over hundreds of thousands of rows: minutes instead of seconds).
   */
  async refreshStatistics(): Promise<void> {
    await sql`analyze users, tenant_access, groups, group_memberships`.execute(this.db);
  }

  /** Active tenant access across all of the tenant's integrations (the safety threshold's base). */
  async countActiveUsers(tenantId: string): Promise<number> {
    const row = await this.db
      .selectFrom('tenant_access')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('active', '=', true)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async upsertGroups(scope: WriteScope, groups: readonly DirectoryGroup[]): Promise<void> {
    if (groups.length === 0) return;
    await sql`
      insert into groups (tenant_id, integration_id, external_id, name, description, attributes, fingerprint)
      select ${scope.tenantId}::uuid, ${scope.integrationId}::uuid, t.external_id, t.name, t.description, t.attributes, t.fingerprint
      from unnest(${groups.map((g) => g.externalId)}::text[], ${groups.map((g) => g.name)}::text[],
        ${groups.map((g) => g.description)}::text[], ${groups.map((g) => JSON.stringify(g.attributes))}::jsonb[],
        ${groups.map((g) => g.fingerprint)}::text[]) as t(external_id, name, description, attributes, fingerprint)
      on conflict (integration_id, external_id) do update set name = excluded.name, description = excluded.description,
        attributes = excluded.attributes, fingerprint = excluded.fingerprint, updated_at = now()
    `.execute(this.db);
  }

  async deleteGroups(scope: WriteScope, externalIds: readonly string[]): Promise<void> {
    if (externalIds.length === 0) return;
    await this.db
      .deleteFrom('groups')
      .where('integration_id', '=', scope.integrationId)
      .where('external_id', '=', sql<string>`any(${[...externalIds]}::text[])`)
      .execute();
  }

  async addMemberships(scope: WriteScope, memberships: readonly Membership[]): Promise<void> {
    if (memberships.length === 0) return;
    await sql`
      insert into group_memberships (group_id, user_id)
      select g.id, ta.user_id
      from unnest(${memberships.map((m) => m.groupExternalId)}::text[], ${memberships.map((m) => m.userExternalId)}::text[])
        as m(group_external_id, user_external_id)
      join groups g on g.integration_id = ${scope.integrationId}::uuid and g.external_id = m.group_external_id
      join tenant_access ta on ta.integration_id = ${scope.integrationId}::uuid and ta.external_id = m.user_external_id
      on conflict do nothing
    `.execute(this.db);
  }

  async removeMemberships(scope: WriteScope, memberships: readonly Membership[]): Promise<void> {
    if (memberships.length === 0) return;
    await sql`
      delete from group_memberships gm
      using unnest(${memberships.map((m) => m.groupExternalId)}::text[], ${memberships.map((m) => m.userExternalId)}::text[])
        as m(group_external_id, user_external_id),
        groups g, tenant_access ta
      where g.integration_id = ${scope.integrationId}::uuid and g.external_id = m.group_external_id
        and ta.integration_id = ${scope.integrationId}::uuid and ta.external_id = m.user_external_id
        and gm.group_id = g.id and gm.user_id = ta.user_id
    `.execute(this.db);
  }

  /** The tenant's users as SPEC's `dirsync users` prints them, sorted by userName. */
  async listTenantUsers(tenantId: string): Promise<TenantUserView[]> {
    const rows = await this.db
      .selectFrom('tenant_access as ta')
      .leftJoin('locks as l', (join) => join.onRef('l.tenant_id', '=', 'ta.tenant_id').onRef('l.user_id', '=', 'ta.user_id'))
      .select([
        'ta.user_name',
        'ta.email',
        'ta.given_name',
        'ta.family_name',
        'ta.display_name',
        'ta.active',
        sql<boolean>`l.user_id is not null`.as('locked'),
        sql<string[]>`coalesce((
          select array_agg(g.name order by g.name) from group_memberships gm
          join groups g on g.id = gm.group_id
          where gm.user_id = ta.user_id and g.tenant_id = ta.tenant_id), '{}')`.as('groups'),
      ])
      .where('ta.tenant_id', '=', tenantId)
      .orderBy(sql`lower(ta.user_name)`)
      .execute();
    return rows.map((r) => ({
      userName: r.user_name,
      email: r.email,
      givenName: r.given_name,
      familyName: r.family_name,
      displayName: r.display_name,
      active: r.active,
      locked: r.locked,
      groups: r.groups,
    }));
  }

  async listTenantGroups(tenantId: string): Promise<TenantGroupView[]> {
    const rows = await this.db
      .selectFrom('groups as g')
      .select([
        'g.name',
        sql<string[]>`coalesce((
          select array_agg(u.user_name order by lower(u.user_name)) from group_memberships gm
          join users u on u.id = gm.user_id where gm.group_id = g.id), '{}')`.as('members'),
      ])
      .where('g.tenant_id', '=', tenantId)
      .orderBy('g.name')
      .execute();
    return rows.map((r) => ({ name: r.name, members: r.members }));
  }
}

function userColumns(users: readonly DirectoryUser[]) {
  return {
    externalId: users.map((u) => u.externalId),
    userName: users.map((u) => u.userName),
    email: users.map((u) => u.email),
    givenName: users.map((u) => u.givenName),
    familyName: users.map((u) => u.familyName),
    displayName: users.map((u) => u.displayName),
    active: users.map((u) => u.active),
    status: users.map((u) => u.status),
    attributes: users.map((u) => JSON.stringify(u.attributes)),
    fingerprint: users.map((u) => u.fingerprint),
  };
}
