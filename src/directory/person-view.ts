import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { EventRepository } from '../db/event.repository.js';
import { isUuid } from '../db/run.repository.js';
import { NotFoundError } from '../errors.js';
import type { DirsyncEvent } from '../events/event.js';

/** One of a person's accounts: which tenant and integration, its state, groups, lock and what happened to it. */
export interface AccountView {
  readonly id: string;
  readonly tenant: string;
  /** Null once its integration was deleted (the account stays, unowned). */
  readonly integrationId: string | null;
  readonly provider: string | null;
  /** The IdP's id for it. */
  readonly externalId: string | null;
  readonly userName: string;
  readonly email: string | null;
  readonly givenName: string | null;
  readonly familyName: string | null;
  readonly displayName: string | null;
  readonly active: boolean;
  readonly locked: boolean;
  /** The lock that keeps the person out of this tenant, if any (reason idp-status or out-of-scope). */
  readonly lock: { readonly id: string; readonly reason: string; readonly since: string } | null;
  readonly groups: readonly string[];
  readonly createdAt: string;
  /** Newest first: the events of this account's IdP identity (at most 100). */
  readonly history: readonly DirsyncEvent[];
}

/**
 * A person (SPEC "Identity: accounts and people": one per normalized userName) with every
 * account they hold, across tenants: what the console's user page and
 * `GET /api/v1/accounts/{id}` show for an account.
 */
export interface PersonView {
  readonly person: { readonly id: string; readonly userName: string };
  /** The account asked about first, then the person's others, by tenant. */
  readonly accounts: readonly AccountView[];
}

/** The person holding account `accountId`, with all their accounts. Throws NotFoundError for an unknown account. */
export async function personOfAccount(db: Db, accountId: string, historyLimit = 100): Promise<PersonView> {
  const missing = new NotFoundError(`account ${accountId} does not exist: a tenant's users list their account ids`);
  if (!isUuid(accountId)) throw missing;
  const { rows } = await sql<{
    id: string;
    person_id: string;
    person_user_name: string;
    slug: string;
    integration_id: string | null;
    provider: string | null;
    external_id: string | null;
    user_name: string;
    email: string | null;
    given_name: string | null;
    family_name: string | null;
    display_name: string | null;
    active: boolean;
    lock_id: string | null;
    lock_reason: string | null;
    lock_since: Date | null;
    groups: string[];
    created_at: Date;
  }>`
    select a.id, p.id as person_id, p.user_name as person_user_name, t.slug, a.integration_id, i.provider, a.external_id,
      a.user_name, a.email, a.given_name, a.family_name, a.display_name, a.active,
      l.id::text as lock_id, l.reason as lock_reason, l.created_at as lock_since,
      coalesce((select array_agg(g.name order by lower(g.name), g.name) from group_memberships gm
                join groups g on g.id = gm.group_id where gm.account_id = a.id), '{}') as groups,
      a.created_at
    from accounts a
    join users p on p.id = a.user_id
    join tenants t on t.id = a.tenant_id
    left join integrations i on i.id = a.integration_id
    left join lateral (
      select l.id, l.reason, l.created_at from locks l
      where l.account_id = a.id or (l.integration_id = a.integration_id and l.external_id = a.external_id)
      order by l.created_at limit 1
    ) l on true
    where a.user_id = (select user_id from accounts where id = ${accountId}::uuid)
    order by a.id = ${accountId}::uuid desc, t.slug, a.created_at
  `.execute(db);
  const first = rows[0];
  if (!first) throw missing;
  const events = new EventRepository(db);
  const accounts = await Promise.all(
    rows.map(async (r): Promise<AccountView> => ({
      id: r.id,
      tenant: r.slug,
      integrationId: r.integration_id,
      provider: r.provider,
      externalId: r.external_id,
      userName: r.user_name,
      email: r.email,
      givenName: r.given_name,
      familyName: r.family_name,
      displayName: r.display_name,
      active: r.active,
      locked: r.lock_id !== null,
      lock: r.lock_id ? { id: r.lock_id, reason: r.lock_reason!, since: r.lock_since!.toISOString() } : null,
      groups: r.groups,
      createdAt: r.created_at.toISOString(),
      history: r.integration_id && r.external_id ? await events.ofSubject(r.integration_id, r.external_id, historyLimit) : [],
    })),
  );
  return { person: { id: first.person_id, userName: first.person_user_name }, accounts };
}
