import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Targeted runs for pushes (SPEC "Run": `targeted`, named users or groups: a push).
 *
 * `runs.mode` records what a run read: `full` (the whole scope), `incremental` or `targeted`.
 *
 * `scim_unapplied` names what was pushed since a run last applied it: a user, a group (its
 * attributes, its creation or deletion) or one membership (group and member), one row per
 * write, added by triggers in the transaction of the write itself, so no writer can forget
 * one and none is seen before its write commits. A targeted run reads these rows, reads and
 * applies those resources alone, then deletes exactly the rows it read (never "up to a seq":
 * a write that commits late with a lower seq must still be seen). The triggers skip a delete
 * cascading from the integration's own deletion.
 */
export async function up(db: Db): Promise<void> {
  await db.schema.alterTable('runs').addColumn('mode', 'text', (c) => c.notNull().defaultTo('full')).execute();
  await sql`alter table runs add constraint runs_mode_check check (mode in ('full', 'incremental', 'targeted'))`.execute(db);

  await sql`
    create table scim_unapplied (
      seq bigserial primary key,
      integration_id uuid not null references integrations (id) on delete cascade,
      resource_type text not null check (resource_type in ('User', 'Group', 'Member')),
      resource_id uuid not null,
      member_id uuid,
      constraint scim_unapplied_member check ((resource_type = 'Member') = (member_id is not null))
    )
  `.execute(db);
  await sql`create index scim_unapplied_integration_idx on scim_unapplied (integration_id, seq)`.execute(db);

  // Users and groups: every insert and delete, and every update but a run's fingerprint repair
  // (users) or a member change's version bump (groups), which are no change of their own.
  await sql`
    create function scim_mark_unapplied() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        insert into scim_unapplied (integration_id, resource_type, resource_id)
          select old.integration_id, tg_argv[0], old.id
          where exists (select 1 from integrations where id = old.integration_id);
        return old;
      end if;
      insert into scim_unapplied (integration_id, resource_type, resource_id) values (new.integration_id, tg_argv[0], new.id);
      return new;
    end $$
  `.execute(db);
  await sql`create trigger scim_users_unapplied_write after insert or delete on scim_users for each row execute function scim_mark_unapplied('User')`.execute(db);
  await sql`
    create trigger scim_users_unapplied_update after update on scim_users
    for each row when (old.version is distinct from new.version) execute function scim_mark_unapplied('User')
  `.execute(db);
  await sql`create trigger scim_groups_unapplied_write after insert or delete on scim_groups for each row execute function scim_mark_unapplied('Group')`.execute(db);
  await sql`
    create trigger scim_groups_unapplied_update after update on scim_groups
    for each row when ((old.display_name, old.external_id, old.resource) is distinct from (new.display_name, new.external_id, new.resource))
    execute function scim_mark_unapplied('Group')
  `.execute(db);

  // Members: each (group, user) pair added or removed, once per statement (a group's members
  // replaced is one insert). A pair removed because its group is deleted is not named: the
  // group's own deletion is (its row is gone by then), and with it every membership it had.
  for (const [event, table] of [
    ['insert', 'new'],
    ['delete', 'old'],
  ] as const) {
    await sql`
      create function ${sql.raw(`scim_mark_members_${event}`)}() returns trigger language plpgsql as $$
      begin
        insert into scim_unapplied (integration_id, resource_type, resource_id, member_id)
          select g.integration_id, 'Member', m.group_id, m.user_id
          from ${sql.raw(`${table}_members`)} m join scim_groups g on g.id = m.group_id
          where exists (select 1 from integrations where id = g.integration_id);
        return null;
      end $$
    `.execute(db);
    await sql`
      create trigger ${sql.raw(`scim_group_members_unapplied_${event}`)} after ${sql.raw(event)} on scim_group_members
      referencing ${sql.raw(table)} table as ${sql.raw(`${table}_members`)}
      for each statement execute function ${sql.raw(`scim_mark_members_${event}`)}()
    `.execute(db);
  }

  // What was pushed before this migration and is not (or not known to be) applied is named
  // once, so that the first targeted run takes it: users and memberships that differ, groups.
  await sql`
    insert into scim_unapplied (integration_id, resource_type, resource_id, member_id)
    select s.integration_id, 'User', s.id, null::uuid from scim_users s
    where not exists (select 1 from accounts a where a.integration_id = s.integration_id and a.external_id = s.id::text
                        and a.fingerprint = s.fingerprint and a.active = s.active and a.user_name = s.user_name)
    union all
    select a.integration_id, 'User', a.external_id::uuid, null from accounts a join integrations i on i.id = a.integration_id
    where i.provider = 'scim' and not exists (select 1 from scim_users s where s.integration_id = a.integration_id and s.id::text = a.external_id)
    union all
    select g.integration_id, 'Group', g.id, null from scim_groups g
    union all
    select g.integration_id, 'Group', g.external_id::uuid, null from groups g join integrations i on i.id = g.integration_id
    where i.provider = 'scim' and not exists (select 1 from scim_groups s where s.integration_id = g.integration_id and s.id::text = g.external_id)
    union all
    (select sg.integration_id, 'Member', m.group_id, m.user_id from scim_group_members m join scim_groups sg on sg.id = m.group_id
     except
     select g.integration_id, 'Member', g.external_id::uuid, a.external_id::uuid from group_memberships gm
     join groups g on g.id = gm.group_id join accounts a on a.id = gm.account_id join integrations i on i.id = g.integration_id
     where i.provider = 'scim')
    union all
    (select g.integration_id, 'Member', g.external_id::uuid, a.external_id::uuid from group_memberships gm
     join groups g on g.id = gm.group_id join accounts a on a.id = gm.account_id join integrations i on i.id = g.integration_id
     where i.provider = 'scim'
     except
     select sg.integration_id, 'Member', m.group_id, m.user_id from scim_group_members m join scim_groups sg on sg.id = m.group_id)
  `.execute(db);
}

export async function down(db: Db): Promise<void> {
  for (const table of ['scim_users', 'scim_groups']) {
    await sql`drop trigger ${sql.raw(`${table}_unapplied_write`)} on ${sql.table(table)}`.execute(db);
    await sql`drop trigger ${sql.raw(`${table}_unapplied_update`)} on ${sql.table(table)}`.execute(db);
  }
  for (const event of ['insert', 'delete']) {
    await sql`drop trigger ${sql.raw(`scim_group_members_unapplied_${event}`)} on scim_group_members`.execute(db);
    await sql`drop function ${sql.raw(`scim_mark_members_${event}`)}()`.execute(db);
  }
  await sql`drop function scim_mark_unapplied()`.execute(db);
  await sql`drop table scim_unapplied`.execute(db);
  await db.schema.alterTable('runs').dropColumn('mode').execute();
}
