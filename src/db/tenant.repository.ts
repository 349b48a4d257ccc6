import type { Db } from './database.js';

export interface Tenant {
  id: string;
  slug: string;
  name: string;
}

export class TenantRepository {
  constructor(private readonly db: Db) {}

  /** Returns undefined when the slug is taken. */
  async create(slug: string, name: string): Promise<Tenant | undefined> {
    return this.db
      .insertInto('tenants')
      .values({ slug, name })
      .onConflict((oc) => oc.column('slug').doNothing())
      .returning(['id', 'slug', 'name'])
      .executeTakeFirst();
  }

  async findBySlug(slug: string): Promise<Tenant | undefined> {
    return this.db.selectFrom('tenants').select(['id', 'slug', 'name']).where('slug', '=', slug).executeTakeFirst();
  }

  async findById(id: string): Promise<Tenant | undefined> {
    return this.db.selectFrom('tenants').select(['id', 'slug', 'name']).where('id', '=', id).executeTakeFirst();
  }

  /**
   * Empties a tenant's directory, keeping the tenant, its event endpoints and its events: its
   * accounts, locks and groups go (delete its integrations first, with deleteIntegration, so
   * their removal is recorded), and so do the people (users) those accounts linked who have no
   * account left in any tenant, since a person exists only through accounts (SPEC "Identity").
   * For the demo's reset; not exposed as a command. Returns how many accounts and people went.
   */
  async clearDirectory(tenantId: string): Promise<{ accounts: number; people: number }> {
    return this.db.transaction().execute(async (trx) => {
      const gone = await trx.deleteFrom('accounts').where('tenant_id', '=', tenantId).returning('user_id').execute();
      await trx.deleteFrom('locks').where('tenant_id', '=', tenantId).execute();
      await trx.deleteFrom('groups').where('tenant_id', '=', tenantId).execute();
      const linked = [...new Set(gone.map((a) => a.user_id).filter((id): id is string => id !== null))];
      const people =
        linked.length === 0
          ? 0
          : Number(
              (
                await trx
                  .deleteFrom('users')
                  .where('id', 'in', linked)
                  .where(({ not, exists, selectFrom }) => not(exists(selectFrom('accounts').select('accounts.id').whereRef('accounts.user_id', '=', 'users.id'))))
                  .executeTakeFirst()
              ).numDeletedRows,
            );
      return { accounts: gone.length, people };
    });
  }

  async list(): Promise<Tenant[]> {
    return this.db.selectFrom('tenants').select(['id', 'slug', 'name']).orderBy('slug').execute();
  }
}
