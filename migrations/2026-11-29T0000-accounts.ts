import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * SPEC "Identity: accounts and people": the tenant account (one per IdP identity, keyed by
 * integration and IdP id) carries the memberships; the person (global user) is only a login
 * identity linked by normalized userName. Every row, attribute, membership, lock and run of
 * the old model is kept:
 * - `tenant_access` becomes `accounts`, with a uuid id (what `dirsync users` prints) and a
 *   normalized userName key; an account outlives the integration that owned it (unowned,
 *   adoptable) instead of vanishing with it.
 * - people's keys become NFC-normalized and case-folded; people that only now fold alike are
 *   merged into the oldest, their accounts and locks relinked to it.
 * - memberships move from the person to the tenant's account of that person (the old model
 *   allowed one per tenant, so the move is exact).
 * - locks get an id and the account they were recorded for; one identity, one lock.
 * - the change log gets a `state` (applied, planned, held, skipped) instead of `applied`
 *   plus flags; runs get the warnings of records they skipped.
 */
export async function up(db: Db): Promise<void> {
  // Every row that hangs on a person today is first tied to its account (unique per tenant and
  // person in the old model), so merging people below cannot move anything to the wrong account.
  await sql`alter table tenant_access add column account_id uuid not null default gen_random_uuid()`.execute(db);

  await sql`alter table group_memberships add column account_id uuid`.execute(db);
  await sql`
    update group_memberships gm set account_id = ta.account_id
    from groups g, tenant_access ta
    where g.id = gm.group_id and ta.tenant_id = g.tenant_id and ta.user_id = gm.user_id
  `.execute(db);
  // The old model removed a person's memberships with their access, so none should lack an
  // account; one that does has nobody in the tenant to hang on.
  await sql`delete from group_memberships where account_id is null`.execute(db);
  await sql`alter table group_memberships drop constraint group_memberships_pkey`.execute(db);
  await sql`drop index group_memberships_user_idx`.execute(db);
  await sql`alter table group_memberships drop column user_id`.execute(db);
  await sql`alter table group_memberships alter column account_id set not null`.execute(db);

  await sql`alter table locks drop constraint locks_pkey`.execute(db);
  await sql`alter table locks add column id bigserial primary key`.execute(db);
  await sql`alter table locks add column account_id uuid`.execute(db);
  await sql`
    update locks l set account_id = ta.account_id from tenant_access ta
    where ta.tenant_id = l.tenant_id and (
      (ta.integration_id = l.integration_id and ta.external_id = l.external_id)
      or (l.external_id is null and ta.user_id = l.user_id))
  `.execute(db);
  await sql`alter table tenant_access drop constraint tenant_access_tenant_user_key`.execute(db);

  // People: merge those the new key folds together into the oldest, then re-key.
  await sql`alter table users add column new_key text`.execute(db);
  await sql`update users set new_key = lower(normalize(user_name, NFC))`.execute(db);
  await sql`
    create temporary table person_merge on commit drop as
    select id, first_value(id) over (partition by new_key order by created_at, id) as keep from users
  `.execute(db);
  await sql`delete from person_merge where id = keep`.execute(db);
  await sql`update tenant_access ta set user_id = m.keep from person_merge m where ta.user_id = m.id`.execute(db);
  await sql`update locks l set user_id = m.keep from person_merge m where l.user_id = m.id`.execute(db);
  await sql`delete from users u using person_merge m where u.id = m.id`.execute(db);
  await sql`alter table users drop column user_name_key`.execute(db);
  await sql`alter table users drop column new_key`.execute(db);
  await sql`alter table users add column user_name_key text not null generated always as (lower(normalize(user_name, NFC))) stored`.execute(db);
  await sql`alter table users add constraint users_user_name_key_key unique (user_name_key)`.execute(db);

  // Accounts.
  await sql`alter table tenant_access rename to accounts`.execute(db);
  await sql`alter table accounts rename constraint tenant_access_integration_external_key to accounts_integration_external_key`.execute(db);
  await sql`alter table accounts drop constraint tenant_access_pkey`.execute(db);
  await sql`alter table accounts drop column id`.execute(db);
  await sql`alter table accounts rename column account_id to id`.execute(db);
  await sql`alter table accounts add constraint accounts_pkey primary key (id)`.execute(db);
  await sql`alter index tenant_access_user_idx rename to accounts_user_idx`.execute(db);
  await sql`alter table accounts alter column integration_id drop not null`.execute(db);
  await sql`alter table accounts alter column external_id drop not null`.execute(db);
  await sql`alter table accounts drop constraint tenant_access_integration_id_fkey`.execute(db);
  // An account outlives its integration: unowned, it is adopted by the next one that provisions it.
  await sql`alter table accounts add constraint accounts_integration_id_fkey foreign key (integration_id) references integrations (id) on delete set null`.execute(db);
  await sql`alter table accounts rename constraint tenant_access_tenant_id_fkey to accounts_tenant_id_fkey`.execute(db);
  await sql`alter table accounts rename constraint tenant_access_user_id_fkey to accounts_user_id_fkey`.execute(db);
  await sql`alter table accounts add column user_name_key text not null generated always as (lower(normalize(user_name, NFC))) stored`.execute(db);
  await sql`create index accounts_tenant_user_name_key_idx on accounts (tenant_id, user_name_key)`.execute(db);
  await sql`alter table accounts add constraint accounts_owned_has_external_id check (integration_id is null or external_id is not null)`.execute(db);

  // Memberships and locks reference their accounts.
  await sql`alter table group_memberships add constraint group_memberships_pkey primary key (group_id, account_id)`.execute(db);
  await sql`alter table group_memberships add constraint group_memberships_account_id_fkey foreign key (account_id) references accounts (id) on delete cascade`.execute(db);
  await sql`create index group_memberships_account_idx on group_memberships (account_id)`.execute(db);
  await sql`alter table locks add constraint locks_account_id_fkey foreign key (account_id) references accounts (id) on delete set null`.execute(db);
  await sql`drop index locks_integration_external_idx`.execute(db);
  // The old key was the person; should one identity hold two locks, the oldest stands.
  await sql`
    delete from locks l using locks o
    where o.integration_id = l.integration_id and o.external_id = l.external_id and o.id < l.id
  `.execute(db);
  await sql`create unique index locks_identity_key on locks (integration_id, external_id)`.execute(db);
  await sql`create index locks_tenant_user_idx on locks (tenant_id, user_id)`.execute(db);
  await sql`create index locks_account_idx on locks (account_id)`.execute(db);

  // Runs: warnings; the change log's state.
  await sql`alter table runs add column warnings jsonb not null default '[]'::jsonb`.execute(db);
  await sql`alter table run_changes add column state text`.execute(db);
  await sql`
    update run_changes c set state = case
      when c.applied then 'applied'
      when r.dry_run then 'planned'
      when coalesce(c.detail ->> 'skipped', '') not in ('', 'false') then 'skipped'
      else 'held' end
    from runs r where r.id = c.run_id
  `.execute(db);
  await sql`alter table run_changes alter column state set not null`.execute(db);
  await sql`alter table run_changes add constraint run_changes_state check (state in ('applied', 'planned', 'held', 'skipped'))`.execute(db);
  await sql`alter table run_changes drop column applied`.execute(db);
  await sql`create index run_changes_held_idx on run_changes (run_id) where state = 'held'`.execute(db);
}

/**
 * Back to the login-keyed model. Lossy where the new model holds more than the old can:
 * accounts without an integration are dropped, and of a person's accounts in one tenant only
 * the active (else the newest) one keeps its memberships.
 */
export async function down(db: Db): Promise<void> {
  await sql`drop index run_changes_held_idx`.execute(db);
  await sql`alter table run_changes add column applied boolean`.execute(db);
  await sql`update run_changes set applied = (state = 'applied')`.execute(db);
  await sql`alter table run_changes alter column applied set not null`.execute(db);
  await sql`alter table run_changes drop column state`.execute(db);
  await sql`alter table runs drop column warnings`.execute(db);

  await sql`drop index locks_account_idx`.execute(db);
  await sql`drop index locks_tenant_user_idx`.execute(db);
  await sql`drop index locks_identity_key`.execute(db);
  await sql`alter table locks drop column account_id`.execute(db);
  await sql`delete from locks l using locks o where o.tenant_id = l.tenant_id and o.user_id = l.user_id and o.id < l.id`.execute(db);
  await sql`alter table locks drop column id`.execute(db);
  await sql`alter table locks add constraint locks_pkey primary key (tenant_id, user_id)`.execute(db);
  await sql`create index locks_integration_external_idx on locks (integration_id, external_id)`.execute(db);

  await sql`delete from accounts where integration_id is null or external_id is null`.execute(db);
  await sql`
    delete from accounts a using accounts o
    where o.tenant_id = a.tenant_id and o.user_id = a.user_id and o.id <> a.id
      and (o.active, o.updated_at, o.id) > (a.active, a.updated_at, a.id)
  `.execute(db);
  await sql`alter table group_memberships add column user_id uuid`.execute(db);
  await sql`update group_memberships gm set user_id = a.user_id from accounts a where a.id = gm.account_id`.execute(db);
  await sql`alter table group_memberships drop constraint group_memberships_pkey`.execute(db);
  await sql`drop index group_memberships_account_idx`.execute(db);
  await sql`alter table group_memberships drop column account_id`.execute(db);
  await sql`alter table group_memberships alter column user_id set not null`.execute(db);
  await sql`alter table group_memberships add constraint group_memberships_pkey primary key (group_id, user_id)`.execute(db);
  await sql`alter table group_memberships add constraint group_memberships_user_id_fkey foreign key (user_id) references users (id) on delete cascade`.execute(db);
  await sql`create index group_memberships_user_idx on group_memberships (user_id)`.execute(db);

  await sql`alter table accounts drop constraint accounts_owned_has_external_id`.execute(db);
  await sql`drop index accounts_tenant_user_name_key_idx`.execute(db);
  await sql`alter table accounts drop column user_name_key`.execute(db);
  await sql`alter table accounts drop constraint accounts_integration_id_fkey`.execute(db);
  await sql`alter table accounts alter column integration_id set not null`.execute(db);
  await sql`alter table accounts alter column external_id set not null`.execute(db);
  await sql`alter table accounts add constraint tenant_access_integration_id_fkey foreign key (integration_id) references integrations (id) on delete cascade`.execute(db);
  await sql`alter table accounts drop constraint accounts_pkey`.execute(db);
  await sql`alter table accounts drop column id`.execute(db);
  await sql`alter table accounts add column id bigserial primary key`.execute(db);
  await sql`alter table accounts rename constraint accounts_pkey to tenant_access_pkey`.execute(db);
  await sql`alter table accounts rename constraint accounts_integration_external_key to tenant_access_integration_external_key`.execute(db);
  await sql`alter table accounts rename constraint accounts_tenant_id_fkey to tenant_access_tenant_id_fkey`.execute(db);
  await sql`alter table accounts rename constraint accounts_user_id_fkey to tenant_access_user_id_fkey`.execute(db);
  await sql`alter table accounts add constraint tenant_access_tenant_user_key unique (tenant_id, user_id)`.execute(db);
  await sql`alter index accounts_user_idx rename to tenant_access_user_idx`.execute(db);
  await sql`alter table accounts rename to tenant_access`.execute(db);

  await sql`alter table users drop constraint users_user_name_key_key`.execute(db);
  await sql`alter table users drop column user_name_key`.execute(db);
  await sql`alter table users add column user_name_key text not null generated always as (lower(user_name)) stored`.execute(db);
  await sql`alter table users add constraint users_user_name_key_key unique (user_name_key)`.execute(db);
}
