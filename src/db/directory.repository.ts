import { sql } from 'kysely';
import { type DirectoryGroup, type DirectoryUser, type LocalGroup, type LocalState, type LocalUser, type OtherAccount, userNameKey } from '../core/model.js';
import type { Membership, UserGrant } from '../core/plan.js';
import type { TenantCounts } from '../core/safety.js';
import { INPUT_TARGETS, accountByIdpId } from './account-probe.js';
import type { Db } from './database.js';
import { type NewRunChange, changeRows } from './run.repository.js';
import { type IdRange, inRange } from './staging.repository.js';

/** Which integration, in which tenant, a write belongs to, and the run that makes it. */
export interface WriteScope {
  readonly tenantId: string;
  readonly integrationId: string;
  readonly runId: string;
}

/** A tenant account as SPEC's `dirsync users` prints it. */
export interface TenantUserView {
  /** The account's id (one per IdP identity). */
  id: string;
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}

/** A group as SPEC's `dirsync groups` prints it: members are its accounts' userNames. */
export interface TenantGroupView {
  id: string;
  name: string;
  members: string[];
}

/** The SQL condition "`column` is one of these ids", or "is in this range". */
function idFilter(column: string, only: readonly string[] | IdRange) {
  return Array.isArray(only) ? sql<boolean>`${sql.ref(column)} = any(${only}::text[])` : inRange(column, only as IdRange);
}

// The key people and accounts are matched by: see userNameKey in src/core/model.ts.
const KEY = (column: string) => sql.raw(`lower(normalize(${column}, NFC))`);

/** Whether the account `a` is locked: a lock names it, or names its IdP identity (the lock outlives the account). */
const LOCKED = sql<boolean>`exists (select 1 from locks l where l.account_id = a.id
  or (l.integration_id = a.integration_id and l.external_id = a.external_id))`;

/**
 * The tenant's directory state (SPEC "Identity: accounts and people"): tenant accounts keyed
 * by (integration, IdP id) with that IdP's attributes, the people they link to by normalized
 * userName, groups, memberships on accounts, and locks per IdP identity. Every write is one
 * set-based statement per batch (unnest of column arrays), keyed by (integration, IdP id), so
 * repeating it converges instead of duplicating.
 */
export class DirectoryRepository {
  constructor(private readonly db: Db) {}

  /**
   * Deletes an integration's accounts (their memberships and their tenant's locks on their
   * people with them), then the people (users) they linked who have no account left in any
   * tenant: a person exists only through accounts (SPEC "Identity"). For deleting an
   * integration with its accounts (the demo's reset). Returns how many of each went.
   */
  async deleteAccountsOf(integrationId: string): Promise<{ accounts: number; people: number }> {
    const gone = await this.db.deleteFrom('accounts').where('integration_id', '=', integrationId).returning(['user_id', 'tenant_id']).execute();
    const linked = [...new Set(gone.map((a) => a.user_id).filter((id): id is string => id !== null))];
    if (linked.length === 0) return { accounts: gone.length, people: 0 };
    const tenantId = gone[0]!.tenant_id;
    await this.db
      .deleteFrom('locks')
      .where('tenant_id', '=', tenantId)
      .where('user_id', 'in', linked)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('accounts').select('accounts.id').whereRef('accounts.user_id', '=', 'locks.user_id').whereRef('accounts.tenant_id', '=', 'locks.tenant_id'))))
      .execute();
    const people = await this.db
      .deleteFrom('users')
      .where('id', 'in', linked)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('accounts').select('accounts.id').whereRef('accounts.user_id', '=', 'users.id'))))
      .executeTakeFirst();
    return { accounts: gone.length, people: Number(people.numDeletedRows) };
  }

  /** The integration's whole local state, as the planner diffs a full read against. */
  async loadLocalState(integrationId: string, tenantId: string): Promise<LocalState> {
    const [users, groups, members, lockedOut, others] = await Promise.all([
      this.accountsOf(integrationId),
      this.groupsOf(integrationId),
      this.membersByGroup(integrationId),
      this.lockedOutOf(integrationId),
      this.othersOf(tenantId, integrationId),
    ]);
    // Members as their accounts' own id strings: a large tenant's memberships are most of its
    // strings (5M at 1M users), and each row brings a fresh copy of the id.
    const memberships = new Map<string, Set<string>>();
    for (const { group, members: ids } of members) memberships.set(group, new Set(ids.map((id) => users.get(id)?.externalId ?? id)));
    return { users, groups, memberships, lockedOut, others };
  }

  /**
   * The integration's memberships, one row per group with its members' IdP ids: a few thousand
   * rows with arrays, rather than a row object per membership (half a million at 100k users).
   */
  private async membersByGroup(integrationId: string, users?: IdRange): Promise<Array<{ group: string; members: string[] }>> {
    const { rows } = await sql<{ group: string; members: string[] }>`
      select g.external_id as "group", array_agg(a.external_id) as members
      from group_memberships gm
      join groups g on g.id = gm.group_id
      join accounts a on a.id = gm.account_id
      where g.integration_id = ${integrationId}::uuid and a.integration_id = ${integrationId}::uuid
        and ${users ? inRange('a.external_id', users) : sql<boolean>`true`}
      group by g.external_id
    `.execute(this.db);
    return rows;
  }

  /**
   * The part of the integration's state a staged plan needs for the users in `range`
   * (src/runs/staged-plan.ts): their accounts, their memberships (in every group), their
   * locks, and the tenant's other accounts with the logins of the users `read` (the staged
   * users in the range) that have no account of this integration under that login. Groups are not loaded:
   * the caller has them all (`groupsOf`).
   */
  async loadLocalChunk(integrationId: string, tenantId: string, range: IdRange, read: ReadonlyArray<{ externalId: string; userName: string }>): Promise<Omit<LocalState, 'groups'>> {
    const [users, members, lockedOut] = await Promise.all([this.accountsOf(integrationId, range), this.membersByGroup(integrationId, range), this.lockedOutOf(integrationId, range)]);
    // Other accounts matter only to a user without an account of its own under the same login
    // (plan(): adoption or conflict); in a resync that is nearly nobody, so few are looked up.
    const userNames = read.filter((u) => {
      const own = users.get(u.externalId);
      return !own || userNameKey(own.userName) !== userNameKey(u.userName);
    }).map((u) => u.userName);
    const others = userNames.length > 0 ? await this.othersOf(tenantId, integrationId, userNames) : new Map<string, OtherAccount>();
    const memberships = new Map<string, Set<string>>();
    for (const { group, members: ids } of members) memberships.set(group, new Set(ids.map((id) => users.get(id)?.externalId ?? id)));
    return { users, memberships, lockedOut, others };
  }

  /** How many members (accounts of the integration) each of these groups has, by IdP id; a group without any is absent. */
  async memberCounts(integrationId: string, groupIds: readonly string[]): Promise<Map<string, number>> {
    if (groupIds.length === 0) return new Map();
    const { rows } = await sql<{ group: string; n: number }>`
      select g.external_id as "group", count(*)::int as n
      from group_memberships gm
      join groups g on g.id = gm.group_id
      join accounts a on a.id = gm.account_id
      where g.integration_id = ${integrationId}::uuid and a.integration_id = ${integrationId}::uuid and g.external_id = any(${groupIds}::text[])
      group by g.external_id
    `.execute(this.db);
    return new Map(rows.map((r) => [r.group, r.n]));
  }

  /** The integration's active accounts and groups, counted. */
  async countIntegration(integrationId: string): Promise<{ activeUsers: number; groups: number }> {
    const { rows } = await sql<{ active_users: number; groups: number }>`
      select (select count(*) from accounts where integration_id = ${integrationId}::uuid and active)::int as active_users,
             (select count(*) from groups where integration_id = ${integrationId}::uuid)::int as groups
    `.execute(this.db);
    return { activeUsers: rows[0]!.active_users, groups: rows[0]!.groups };
  }

  /** The integration's accounts (of these IdP ids, or of the ids in this range, only, when given), by IdP id. */
  async accountsOf(integrationId: string, only?: readonly string[] | IdRange): Promise<Map<string, LocalUser>> {
    const rows = await this.db
      .selectFrom('accounts')
      .select(['external_id', 'user_name', 'email', 'given_name', 'family_name', 'display_name', 'active', 'fingerprint'])
      .where('integration_id', '=', integrationId)
      .$if(only !== undefined, (q) => q.where(idFilter('external_id', only!)))
      .execute();
    const users = new Map<string, LocalUser>();
    for (const r of rows) {
      users.set(r.external_id as string, {
        externalId: r.external_id as string,
        userName: r.user_name,
        email: r.email,
        givenName: r.given_name,
        familyName: r.family_name,
        displayName: r.display_name,
        active: r.active,
        fingerprint: r.fingerprint,
      });
    }
    return users;
  }

  /** The integration's groups (of these IdP ids only, when given), by IdP id. */
  async groupsOf(integrationId: string, externalIds?: readonly string[]): Promise<Map<string, LocalGroup>> {
    const rows = await this.db
      .selectFrom('groups')
      .select(['external_id', 'name', 'description', 'fingerprint'])
      .where('integration_id', '=', integrationId)
      .$if(externalIds !== undefined, (q) => q.where(sql<boolean>`external_id = any(${externalIds}::text[])`))
      .execute();
    return new Map(rows.map((r) => [r.external_id, { externalId: r.external_id, name: r.name, description: r.description, fingerprint: r.fingerprint }]));
  }

  /**
   * The integration's memberships as (group, user) IdP-id pairs: all, or only those of these
   * groups (`by: 'group'`) or of these users (`by: 'user'`).
   */
  async membershipPairs(integrationId: string, only?: { by: 'group' | 'user'; externalIds: readonly string[] }): Promise<Array<{ group: string; user: string }>> {
    const rows = await this.db
      .selectFrom('group_memberships as gm')
      .innerJoin('groups as g', 'g.id', 'gm.group_id')
      .innerJoin('accounts as a', 'a.id', 'gm.account_id')
      .select(['g.external_id as group_external_id', 'a.external_id as user_external_id'])
      .where('g.integration_id', '=', integrationId)
      .where('a.integration_id', '=', integrationId)
      .$if(only !== undefined, (q) => q.where(sql<boolean>`${sql.ref(only!.by === 'group' ? 'g.external_id' : 'a.external_id')} = any(${only!.externalIds}::text[])`))
      .execute();
    return rows.map((r) => ({ group: r.group_external_id, user: r.user_external_id as string }));
  }

  /** Of these (group, user) IdP-id pairs, those that are memberships in the tenant now. */
  async existingPairs(integrationId: string, pairs: ReadonlyArray<{ group: string; user: string }>): Promise<Array<{ group: string; user: string }>> {
    if (pairs.length === 0) return [];
    const { rows } = await sql<{ group: string; user: string }>`
      select g.external_id as "group", a.external_id as "user"
      from unnest(${pairs.map((p) => p.group)}::text[], ${pairs.map((p) => p.user)}::text[]) as t(group_id, user_id)
      join groups g on g.integration_id = ${integrationId}::uuid and g.external_id = t.group_id
      join accounts a on a.integration_id = ${integrationId}::uuid and a.external_id = t.user_id
      join group_memberships gm on gm.group_id = g.id and gm.account_id = a.id
    `.execute(this.db);
    return rows;
  }

  /** IdP ids (of these, or of this range, only, when given) whose account this integration removed and that are still locked. */
  async lockedOutOf(integrationId: string, only?: readonly string[] | IdRange): Promise<Set<string>> {
    const rows = await this.db
      .selectFrom('locks as l')
      .select('l.external_id')
      .where('l.integration_id', '=', integrationId)
      .where('l.external_id', 'is not', null)
      .$if(only !== undefined, (q) => q.where(idFilter('l.external_id', only!)))
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('accounts as a')
              .select('a.id')
              .whereRef('a.integration_id', '=', 'l.integration_id')
              .whereRef('a.external_id', '=', 'l.external_id'),
          ),
        ),
      )
      .execute();
    return new Set(rows.map((r) => r.external_id as string));
  }

  /**
   * The tenant's accounts other integrations own or nobody does, by normalized userName (of
   * these userNames only, when given): per login one account, another enabled integration's
   * first (a conflict), else the one to adopt: the active one, then the most recently updated.
   */
  async othersOf(tenantId: string, integrationId: string, userNames?: readonly string[]): Promise<Map<string, OtherAccount>> {
    const rows = await this.db
      .selectFrom('accounts as a')
      .leftJoin('integrations as i', 'i.id', 'a.integration_id')
      .distinctOn('a.user_name_key')
      .select(['a.id', 'a.user_name_key', 'a.integration_id', sql<boolean>`coalesce(i.enabled, false)`.as('owner_enabled')])
      .where('a.tenant_id', '=', tenantId)
      .where(sql<boolean>`a.integration_id is distinct from ${integrationId}::uuid`)
      .$if(userNames !== undefined, (q) => q.where(sql<boolean>`a.user_name_key = any(${userNames?.map(userNameKey)}::text[])`))
      // A locked account is a deprovisioned identity: a new identity with its login starts
      // fresh rather than lifting that lock (SPEC: a reused login inherits nothing).
      .where(sql<boolean>`(i.enabled or not ${LOCKED})`)
      .orderBy('a.user_name_key')
      .orderBy(sql`coalesce(i.enabled, false)`, 'desc')
      .orderBy('a.active', 'desc')
      .orderBy('a.updated_at', 'desc')
      .execute();
    return new Map(rows.map((r) => [r.user_name_key, { accountId: r.id, ownedByEnabled: r.owner_enabled ? r.integration_id : null }]));
  }

  /**
   * Grants (or restores) access: a new account for each IdP identity, or the account it adopts
   * (nobody enabled owns it, and it is not locked), linked to the person of its userName (created if needed); the
   * identity's lock is lifted. An adopted account keeps no membership of another integration's
   * groups: it holds only what its new IdP identity has. Serves creates and reprovisions alike.
   *
   * `refused`: the IdP ids refused because, by the time this batch runs, another enabled
   * integration of the tenant owns an account with that login (the planner saw none): a
   * per-record conflict, recorded as a warning, never retried as an outage.
   *
   * With `changes` (aligned with `users`: each grant's change-log row as apply-plan describes
   * it), each account granted is recorded as applied in the same statements, its detail given
   * the ids the write produced (`detail.ids`: accountId, personId, active, locked: false, as
   * RunRepository.recordApplied joins them); `recorded` says how many.
   */
  async grantAccess(scope: WriteScope, users: readonly UserGrant[], changes?: readonly NewRunChange[]): Promise<{ refused: string[]; recorded?: number }> {
    if (users.length === 0) return { refused: [], ...(changes && { recorded: 0 }) };
    // Grants in one tenant take turns, so two integrations cannot both claim one login at once.
    await sql`select pg_advisory_xact_lock(hashtextextended(${`dirsync.accounts:${scope.tenantId}`}, 0))`.execute(this.db);
    const record = (granted: string) =>
      changes
        ? sql`, recorded as (
        insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
        select ${scope.runId}::uuid, ${scope.tenantId}::uuid, ${scope.integrationId}::uuid, c.kind, c.external_id, c.subject,
          coalesce(c.detail, '{}'::jsonb) || jsonb_build_object('ids', jsonb_build_object('accountId', g.id, 'personId', g.user_id, 'active', g.active, 'locked', false)),
          'applied'
        from ${changeRows(changes, 'c')} join ${sql.raw(granted)} g on g.external_id = c.external_id
        order by c.n
        returning 1
      )`
        : sql``;
    const counted = changes ? sql`(select count(*) from recorded)` : sql`0`;
    const adopts = users.some((u) => u.adopts !== null);
    const { rows } = await sql<{ refused: string[] | null; recorded: string }>`
      with input as (${grantRows(users)}), refused as (
        -- Each login looked up by the (tenant, key) index (LATERAL ... LIMIT 1 keeps it a
        -- per-row probe): a join the planner may hash would read every account of the tenant
        -- in every batch, quadratic in an initial sync.
        select i.external_id from input i
        cross join lateral (select 1 from accounts o join integrations oi on oi.id = o.integration_id
                            where o.tenant_id = ${scope.tenantId}::uuid and o.user_name_key = ${KEY('i.user_name')}
                              and o.integration_id <> ${scope.integrationId}::uuid and oi.enabled
                              and not exists (select 1 from accounts mine
                                              where mine.integration_id = ${scope.integrationId}::uuid and mine.external_id = i.external_id)
                            limit 1) taken
      ), accepted as (
        select i.*, ${KEY('i.user_name')} as key from input i where i.external_id not in (select external_id from refused)
      ), people as (
        insert into users (user_name) select distinct on (key) user_name from accepted order by key, external_id
        on conflict (user_name_key) do update set updated_at = users.updated_at
        returning id, user_name_key
      ), adopted as (${
        // Without adoptions in the batch (nearly always), no statement at all: the planner may
        // hash every account of the integration to rule out rows that cannot match.
        adopts
          ? sql`
        -- Only an account nobody enabled owns: checked again here, as the owner may have changed.
        update accounts a set integration_id = ${scope.integrationId}::uuid, external_id = i.external_id
        from accepted i
        where a.id = i.adopts and a.tenant_id = ${scope.tenantId}::uuid
          and (a.integration_id is null or not exists (select 1 from integrations oi where oi.id = a.integration_id and oi.enabled))
          and not ${LOCKED}
          and not exists (select 1 from accounts mine
                          where mine.integration_id = ${scope.integrationId}::uuid and mine.external_id = i.external_id)
        returning a.id, a.external_id`
          : sql`select null::uuid as id, null::text as external_id where false`
      }), upserted as (
        insert into accounts (tenant_id, user_id, integration_id, external_id, user_name, email, given_name,
          family_name, display_name, active, idp_status, attributes, fingerprint)
        select ${scope.tenantId}::uuid, p.id, ${scope.integrationId}::uuid, i.external_id, i.user_name, i.email,
          i.given_name, i.family_name, i.display_name, i.active, i.idp_status, i.attributes, i.fingerprint
        from accepted i join people p on p.user_name_key = i.key
        where i.external_id not in (select external_id from adopted)
        on conflict (integration_id, external_id) do update set
          user_id = excluded.user_id, user_name = excluded.user_name, email = excluded.email,
          given_name = excluded.given_name, family_name = excluded.family_name,
          display_name = excluded.display_name, active = excluded.active, idp_status = excluded.idp_status,
          attributes = excluded.attributes, fingerprint = excluded.fingerprint, deprovisioned_at = null,
          updated_at = now()
        returning id, external_id, user_id, active
      ), unlocked as (
        delete from locks l
        where l.integration_id = ${scope.integrationId}::uuid and l.external_id in (select external_id from accepted)
      )${record('upserted')}
      select (select array_agg(external_id) from refused) as refused, ${counted} as recorded
    `.execute(this.db);
    const refused = rows[0]?.refused ?? [];
    let recorded = Number(rows[0]?.recorded ?? 0);
    if (!adopts) return { refused, ...(changes && { recorded }) };
    const adopting = users.filter((u) => u.adopts !== null);
    // The adopted accounts take the identity's attributes now that they are this integration's
    // (a data-modifying CTE cannot update a row twice); their other integrations' memberships
    // and their own lock go.
    const adopted = await sql<{ recorded: string }>`
      with input as (${grantRows(adopting)}), adopted as (
        update accounts a set user_id = p.id, user_name = i.user_name, email = i.email, given_name = i.given_name,
          family_name = i.family_name, display_name = i.display_name, active = i.active, idp_status = i.idp_status,
          attributes = i.attributes, fingerprint = i.fingerprint, deprovisioned_at = null, updated_at = now()
        from input i join users p on p.user_name_key = ${KEY('i.user_name')}
        where a.id = i.adopts and a.integration_id = ${scope.integrationId}::uuid and a.external_id = i.external_id
        returning a.id, a.external_id, a.user_id, a.active
      ), foreign_memberships as (
        delete from group_memberships gm using groups g
        where gm.account_id in (select id from adopted) and g.id = gm.group_id
          and g.integration_id is distinct from ${scope.integrationId}::uuid
      ), unlocked as (
        delete from locks l where l.account_id in (select id from adopted)
      )${record('adopted')}
      select ${counted} as recorded
    `.execute(this.db);
    recorded += Number(adopted.rows[0]?.recorded ?? 0);
    return { refused, ...(changes && { recorded }) };
  }

  /**
   * Refreshes attributes of accounts the integration owns; `active` is left alone. A changed
   * login relinks the account to the person of the new login (created if needed): the person
   * of the old login is never renamed, so nothing one tenant's IdP does renames another's.
   */
  async updateUsers(scope: WriteScope, users: readonly DirectoryUser[]): Promise<void> {
    if (users.length === 0) return;
    const c = userColumns(users);
    await sql`
      with input as (
        select * from unnest(${c.externalId}::text[], ${c.userName}::text[], ${c.email}::text[],
          ${c.givenName}::text[], ${c.familyName}::text[], ${c.displayName}::text[], ${c.status}::text[],
          ${c.attributes}::jsonb[], ${c.fingerprint}::text[])
          as t(external_id, user_name, email, given_name, family_name, display_name, idp_status, attributes, fingerprint)
      ), renamed as (
        select i.user_name, ${KEY('i.user_name')} as key from input i
        cross join lateral ${accountByIdpId(scope.integrationId, sql.ref('i.external_id'), 'a.user_name_key')} a
        where a.user_name_key <> ${KEY('i.user_name')}
      ), people as (
        insert into users (user_name) select distinct on (key) user_name from renamed order by key, user_name
        on conflict (user_name_key) do update set updated_at = users.updated_at
        returning id, user_name_key
      )
      update accounts a set user_name = i.user_name, email = i.email, given_name = i.given_name,
        family_name = i.family_name, display_name = i.display_name, idp_status = i.idp_status,
        attributes = i.attributes, fingerprint = i.fingerprint, user_id = coalesce(p.id, a.user_id), updated_at = now()
      from input i left join people p on p.user_name_key = ${KEY('i.user_name')}
      where a.integration_id = ${scope.integrationId}::uuid and a.external_id = i.external_id and ${INPUT_TARGETS}
    `.execute(this.db);
  }

  /**
   * Suspend mode: the account is kept but inactive, and a lock is recorded for its identity so
   * the host app can end sessions. Users the IdP still lists get their attributes refreshed
   * too; memberships are left to mirror the IdP.
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
        update accounts a set active = false, deprovisioned_at = coalesce(a.deprovisioned_at, now()), updated_at = now()
        from input i
        where a.integration_id = ${scope.integrationId}::uuid and a.external_id = i.external_id and ${INPUT_TARGETS}
        returning a.id, a.tenant_id, a.user_id, a.external_id, a.user_name, i.reason
      )
      insert into locks (tenant_id, user_id, account_id, integration_id, external_id, user_name, reason, run_id)
      select tenant_id, user_id, id, ${scope.integrationId}::uuid, external_id, user_name, reason, ${scope.runId}::uuid from suspended
      on conflict (integration_id, external_id) do nothing
    `.execute(this.db);
  }

  /**
   * remove-access and delete modes: the account goes (its memberships with it), a lock is
   * recorded for its identity; in delete mode the person goes too once no account links to
   * them (the lock keeps their id so the host app can still end their sessions).
   */
  async removeAccess(
    scope: WriteScope,
    deprovisions: readonly { externalId: string; reason: string }[],
    deleteOrphanedPeople: boolean,
  ): Promise<void> {
    if (deprovisions.length === 0) return;
    const { rows } = await sql<{ user_id: string }>`
      with input as (
        select * from unnest(${deprovisions.map((d) => d.externalId)}::text[], ${deprovisions.map((d) => d.reason)}::text[])
          as t(external_id, reason)
      ), removed as (
        delete from accounts a using input i
        where a.integration_id = ${scope.integrationId}::uuid and a.external_id = i.external_id and ${INPUT_TARGETS}
        returning a.tenant_id, a.user_id, a.external_id, a.user_name, i.reason
      ), locked as (
        insert into locks (tenant_id, user_id, integration_id, external_id, user_name, reason, run_id)
        select tenant_id, user_id, ${scope.integrationId}::uuid, external_id, user_name, reason, ${scope.runId}::uuid from removed
        on conflict (integration_id, external_id) do nothing
      )
      select user_id from removed
    `.execute(this.db);
    if (!deleteOrphanedPeople || rows.length === 0) return;
    await sql`
      delete from users u where u.id = any(${rows.map((r) => r.user_id)}::uuid[])
        and not exists (select 1 from accounts a where a.user_id = u.id)
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
   * Postgres would plan the next reads (the next run's, or a staged run's later chunks) for
   * the empty tables of before (nested loops over hundreds of thousands of rows: minutes
   * instead of seconds). A table another session vacuums or analyzes is skipped rather than
   * waited for (SKIP_LOCKED); a role that does not own a table gets Postgres's warning, not an error.
   */
  async refreshStatistics(): Promise<void> {
    await sql`analyze (skip_locked) users, accounts, groups, group_memberships`.execute(this.db);
  }

  /** Active accounts and groups each integration owns, for the console's integration list. */
  async countsByIntegration(): Promise<Map<string, { users: number; groups: number }>> {
    const { rows } = await sql<{ integration_id: string; users: string; groups: string }>`
      select i.id as integration_id,
        (select count(*) from accounts a where a.integration_id = i.id and a.active) as users,
        (select count(*) from groups g where g.integration_id = i.id) as groups
      from integrations i
    `.execute(this.db);
    return new Map(rows.map((r) => [r.integration_id, { users: Number(r.users), groups: Number(r.groups) }]));
  }

  /** The tenant's counts before a run: the bases of the safety thresholds. */
  async countTenant(tenantId: string): Promise<TenantCounts> {
    const { rows } = await sql<{ active_users: string; groups: string; memberships: string }>`
      select (select count(*) from accounts where tenant_id = ${tenantId}::uuid and active) as active_users,
        (select count(*) from groups where tenant_id = ${tenantId}::uuid) as groups,
        (select count(*) from group_memberships gm join groups g on g.id = gm.group_id where g.tenant_id = ${tenantId}::uuid) as memberships
    `.execute(this.db);
    const r = rows[0]!;
    return { activeUsers: Number(r.active_users), groups: Number(r.groups), memberships: Number(r.memberships) };
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

  /**
   * Adds memberships and records each as applied, in one statement: the change-log row (kind
   * `membership.added`, external_id `group/user`, subject `userName in groupName`, detail as
   * apply-plan's describe writes it: `{group, user, of: {account: {userName}, group: {name}}}`)
   * is built here from the ids and names alone, with the ids the insert joined (`detail.ids`:
   * groupId, accountId, personId). Building it in SQL rather than sending each row's JSON is
   * what makes an initial sync's 5 of 6 changes cheap. A membership whose group or account is
   * not there is neither added nor recorded. Returns how many were recorded.
   *
   * The group and account rows are locked `FOR KEY SHARE` in the join, as foreign keys would
   * lock them, but in one pass rather than a check query per row (migration
   * 2026-12-02T0000-membership-references): a concurrent delete of either waits until this
   * commits (and its trigger then deletes the membership), or, committed first, leaves the row
   * out of the join, so no membership outlives its group or account.
   */
  async addMemberships(scope: WriteScope, memberships: readonly Membership[]): Promise<number> {
    if (memberships.length === 0) return 0;
    const result = await sql`
      with r as materialized (
        select m.n, m.group_external_id, m.user_external_id, m.user_name, m.group_name,
          g.id as group_id, a.id as account_id, a.user_id as person_id
        from unnest(${memberships.map((m) => m.groupExternalId)}::text[], ${memberships.map((m) => m.userExternalId)}::text[],
          ${memberships.map((m) => m.userName)}::text[], ${memberships.map((m) => m.groupName)}::text[])
          with ordinality as m(group_external_id, user_external_id, user_name, group_name, n)
        join groups g on g.integration_id = ${scope.integrationId}::uuid and g.external_id = m.group_external_id
        cross join lateral ${accountByIdpId(scope.integrationId, sql.ref('m.user_external_id'), 'a.id, a.user_id', { lock: 'key share' })} a
        for key share of g
      ), added as (
        insert into group_memberships (group_id, account_id)
        select group_id, account_id from r
        on conflict do nothing
      )
      insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
      select ${scope.runId}::uuid, ${scope.tenantId}::uuid, ${scope.integrationId}::uuid, 'membership.added',
        r.group_external_id || '/' || r.user_external_id, r.user_name || ' in ' || r.group_name,
        jsonb_build_object('group', r.group_external_id, 'user', r.user_external_id,
          'of', jsonb_build_object('account', jsonb_build_object('userName', r.user_name), 'group', jsonb_build_object('name', r.group_name)),
          'ids', jsonb_build_object('groupId', r.group_id, 'accountId', r.account_id, 'personId', r.person_id)),
        'applied'
      from r
      order by r.n
    `.execute(this.db);
    return Number(result.numAffectedRows ?? 0n);
  }

  async removeMemberships(scope: WriteScope, memberships: readonly Membership[]): Promise<void> {
    if (memberships.length === 0) return;
    await sql`
      delete from group_memberships gm
      using unnest(${memberships.map((m) => m.groupExternalId)}::text[], ${memberships.map((m) => m.userExternalId)}::text[])
          as m(group_external_id, user_external_id)
        join groups g on g.integration_id = ${scope.integrationId}::uuid and g.external_id = m.group_external_id
        cross join lateral ${accountByIdpId(scope.integrationId, sql.ref('m.user_external_id'), 'a.id')} a
      where gm.group_id = g.id and gm.account_id = a.id
    `.execute(this.db);
  }

  /** The tenant's accounts as SPEC's `dirsync users` prints them, sorted by userName. */
  async listTenantUsers(tenantId: string): Promise<TenantUserView[]> {
    return this.tenantUsers(tenantId, {});
  }

  /**
   * One page of the tenant's accounts, sorted as `listTenantUsers`: `limit` after `offset`,
   * those whose userName, email or display name contain `search` (case-insensitively) when
   * given. Paged in Postgres, so a page of a 100k-account tenant reads that page.
   */
  async pageTenantUsers(tenantId: string, page: DirectoryPage): Promise<TenantUserView[]> {
    return this.tenantUsers(tenantId, page);
  }

  /** The group (tenant and name) by id, or undefined. */
  /** The tenant an account belongs to, or undefined for an unknown account. */
  async tenantOfAccount(accountId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('accounts').select('tenant_id').where('id', '=', accountId).executeTakeFirst();
    return row?.tenant_id;
  }

  async findGroup(groupId: string): Promise<{ id: string; tenantId: string; name: string; description: string | null; integrationId: string } | undefined> {
    const row = await this.db
      .selectFrom('groups')
      .select(['id', 'tenant_id', 'name', 'description', 'integration_id'])
      .where('id', '=', groupId)
      .executeTakeFirst();
    return row && { id: row.id, tenantId: row.tenant_id, name: row.name, description: row.description, integrationId: row.integration_id };
  }

  private async tenantUsers(tenantId: string, page: Partial<DirectoryPage>): Promise<TenantUserView[]> {
    let query = this.db
      .selectFrom('accounts as a')
      .select([
        'a.id',
        'a.user_name',
        'a.email',
        'a.given_name',
        'a.family_name',
        'a.display_name',
        'a.active',
        LOCKED.as('locked'),
        sql<string[]>`coalesce((
          select array_agg(g.name order by lower(g.name), g.name) from group_memberships gm
          join groups g on g.id = gm.group_id where gm.account_id = a.id), '{}')`.as('groups'),
      ])
      .where('a.tenant_id', '=', tenantId)
      .orderBy('a.user_name_key')
      .orderBy('a.id');
    if (page.limit !== undefined || page.search || page.inGroup) {
      // The page's ids first: skipped rows then cost an index entry, not their groups and lock.
      let ids = this.db.selectFrom('accounts as p').select('p.id').where('p.tenant_id', '=', tenantId).orderBy('p.user_name_key').orderBy('p.id');
      if (page.inGroup) {
        const groupId = page.inGroup;
        ids = ids.where((eb) => eb.exists(eb.selectFrom('group_memberships as gm').select('gm.account_id').whereRef('gm.account_id', '=', 'p.id').where('gm.group_id', '=', groupId)));
      }
      if (page.search) {
        const pattern = containsPattern(page.search);
        ids = ids.where(sql<boolean>`(p.user_name_key like ${pattern} or lower(p.email) like ${pattern} or lower(p.display_name) like ${pattern})`);
      }
      if (page.limit !== undefined) ids = ids.limit(page.limit).offset(page.offset ?? 0);
      query = query.where('a.id', 'in', ids);
    }
    const rows = await query.execute();
    return rows.map((r) => ({
      id: r.id,
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

  /** The tenant's groups as SPEC's `dirsync groups` prints them, sorted by name, case-insensitively. */
  async listTenantGroups(tenantId: string): Promise<TenantGroupView[]> {
    return this.tenantGroups(tenantId, {});
  }

  /** One page of the tenant's groups, sorted as `listTenantGroups`, those whose name contains `search` when given. */
  async pageTenantGroups(tenantId: string, page: DirectoryPage): Promise<TenantGroupView[]> {
    return this.tenantGroups(tenantId, page);
  }

  private async tenantGroups(tenantId: string, page: Partial<DirectoryPage>): Promise<TenantGroupView[]> {
    let query = this.db
      .selectFrom('groups as g')
      .select([
        'g.id',
        'g.name',
        sql<string[]>`coalesce((
          select array_agg(a.user_name order by a.user_name_key, a.id) from group_memberships gm
          join accounts a on a.id = gm.account_id where gm.group_id = g.id), '{}')`.as('members'),
      ])
      .where('g.tenant_id', '=', tenantId)
      .orderBy(sql`lower(g.name)`)
      .orderBy('g.name')
      .orderBy('g.id');
    if (page.limit !== undefined || page.search) {
      // The page's ids first: skipped groups do not aggregate their members.
      let ids = this.db.selectFrom('groups as p').select('p.id').where('p.tenant_id', '=', tenantId).orderBy(sql`lower(p.name)`).orderBy('p.name').orderBy('p.id');
      if (page.search) ids = ids.where(sql<boolean>`lower(p.name) like ${containsPattern(page.search)}`);
      if (page.limit !== undefined) ids = ids.limit(page.limit).offset(page.offset ?? 0);
      query = query.where('g.id', 'in', ids);
    }
    const rows = await query.execute();
    return rows.map((r) => ({ id: r.id, name: r.name, members: r.members }));
  }
}

/** A page of a directory listing: `limit` rows after `offset`, filtered by `search` when given. */
export interface DirectoryPage {
  readonly limit: number;
  readonly offset: number;
  readonly search?: string | undefined;
  /** Accounts only: the members of this group (its id). */
  readonly inGroup?: string | undefined;
}

/** A LIKE pattern matching text that contains `search`, case-insensitively (its own % and _ taken literally). */
function containsPattern(search: string): string {
  return `%${search.normalize('NFC').toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Grants as rows (external_id, user_name, ..., fingerprint, adopts), for a `with input as (...)`. */
function grantRows(users: readonly UserGrant[]) {
  const c = userColumns(users);
  return sql`
    select * from unnest(${c.externalId}::text[], ${c.userName}::text[], ${c.email}::text[],
      ${c.givenName}::text[], ${c.familyName}::text[], ${c.displayName}::text[], ${c.active}::boolean[],
      ${c.status}::text[], ${c.attributes}::jsonb[], ${c.fingerprint}::text[], ${users.map((u) => u.adopts)}::uuid[])
      as t(external_id, user_name, email, given_name, family_name, display_name, active, idp_status,
           attributes, fingerprint, adopts)`;
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

/** Memberships as the planner takes them: group IdP id -> member IdP ids. */
export function membershipMap(pairs: Iterable<{ group: string; user: string }>): Map<string, Set<string>> {
  const memberships = new Map<string, Set<string>>();
  for (const { group, user } of pairs) {
    let members = memberships.get(group);
    if (!members) memberships.set(group, (members = new Set()));
    members.add(user);
  }
  return memberships;
}
