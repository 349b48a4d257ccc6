import type { Db } from '../db/database.js';
import { type Tenant, TenantRepository } from '../db/tenant.repository.js';
import { ConflictError, UserError } from '../errors.js';

/** A tenant's slug: lowercase letters, digits and inner dashes, 1 to 63 characters (a DNS label). */
const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The longest display name taken. */
const MAX_NAME = 200;

/** Creating tenants, the one way the CLI and the admin API do it. */
export class TenantService {
  private readonly tenants: TenantRepository;

  constructor(db: Db) {
    this.tenants = new TenantRepository(db);
  }

  /**
   * Creates a tenant; `name` defaults to the slug. Throws UserError for a bad slug or name (a
   * control character, more than 200 characters) and ConflictError when the slug is taken.
   */
  async create(slug: string, name?: string): Promise<Tenant> {
    if (!SLUG.test(slug)) throw new UserError(`tenant slug "${slug.slice(0, 80)}" is not valid: use lowercase letters, digits and dashes, such as acme-corp`);
    const display = name?.trim() || slug;
    if (display.length > MAX_NAME) throw new UserError(`--name is longer than ${MAX_NAME} characters`);
    if (/[\u0000-\u001f\u007f]/.test(display)) throw new UserError('--name holds a control character (such as a NUL or a line break)');
    const created = await this.tenants.create(slug, display);
    if (!created) throw new ConflictError(`tenant "${slug}" already exists`);
    return created;
  }
}
