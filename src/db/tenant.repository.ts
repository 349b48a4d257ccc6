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

  async list(): Promise<Tenant[]> {
    return this.db.selectFrom('tenants').select(['id', 'slug', 'name']).orderBy('slug').execute();
  }
}
