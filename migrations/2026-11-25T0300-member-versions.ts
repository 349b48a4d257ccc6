import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * The IdP's version of a group's membership (Okta's lastMembershipUpdated) when dirsync last
 * read and applied all of its members: a later run skips re-reading members that did not change.
 */
export async function up(db: Db): Promise<void> {
  await db.schema.alterTable('groups').addColumn('members_version', 'text').addColumn('members_read_at', 'timestamptz').execute();
}

export async function down(db: Db): Promise<void> {
  await db.schema.alterTable('groups').dropColumn('members_version').dropColumn('members_read_at').execute();
}
