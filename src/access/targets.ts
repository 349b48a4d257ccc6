import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import { EndpointRepository } from '../db/endpoint.repository.js';
import { IntegrationRepository } from '../db/integration.repository.js';
import { RunRepository, isUuid } from '../db/run.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError } from '../errors.js';

/** What an action is aimed at: for the audit log, and the tenant it belongs to (null: none, or every tenant). */
export interface Target {
  readonly type: string;
  readonly id: string | null;
  readonly tenantId: string | null;
}

export function notFoundFor(target: Target): NotFoundError {
  return new NotFoundError(MISSING[target.type]?.(target.id ?? '') ?? `${target.type} ${target.id} does not exist`);
}

// One message per kind of target, for a missing one and one outside the token's tenant alike.
const MISSING: Record<string, (id: string) => string> = {
  integration: (id) => `integration ${id} does not exist: \`dirsync integration list\` shows the ids`,
  run: (id) => `run ${id} does not exist`,
  tenant: (slug) => `tenant "${slug}" does not exist`,
  group: (id) => `group ${id} does not exist: a tenant's groups list their ids`,
  account: (id) => `account ${id} does not exist: a tenant's users list their account ids`,
  endpoint: (id) => `endpoint ${id} does not exist: \`dirsync endpoint list\` shows the ids`,
};

const missing = (type: string, id: string) => notFoundFor({ type, id, tenantId: null });

/** Targets found from the route's parameters, body or query. */
export const locate = {
  integration: (id: string) => async (db: Db): Promise<Target> => {
    const found = isUuid(id) ? await new IntegrationRepository(db).find(id) : undefined;
    if (!found) throw missing('integration', id);
    return { type: 'integration', id: found.id, tenantId: found.tenantId };
  },
  run: (id: string) => async (db: Db): Promise<Target> => {
    const run = await new RunRepository(db).find(id);
    const integration = run && (await new IntegrationRepository(db).find(run.integrationId));
    if (!run || !integration) throw missing('run', id);
    return { type: 'run', id: run.id, tenantId: integration.tenantId };
  },
  tenant: (slug: string) => async (db: Db): Promise<Target> => {
    const tenant = await new TenantRepository(db).findBySlug(slug);
    if (!tenant) throw missing('tenant', slug);
    return { type: 'tenant', id: tenant.slug, tenantId: tenant.id };
  },
  group: (id: string) => async (db: Db): Promise<Target> => {
    const group = isUuid(id) ? await new DirectoryRepository(db).findGroup(id) : undefined;
    if (!group) throw missing('group', id);
    return { type: 'group', id: group.id, tenantId: group.tenantId };
  },
  account: (id: string) => async (db: Db): Promise<Target> => {
    const tenantId = isUuid(id) ? await new DirectoryRepository(db).tenantOfAccount(id) : undefined;
    if (!tenantId) throw missing('account', id);
    return { type: 'account', id, tenantId };
  },
  endpoint: (id: string) => async (db: Db): Promise<Target> => {
    const found = isUuid(id) ? await new EndpointRepository(db).find(id) : undefined;
    if (!found) throw missing('endpoint', id);
    return { type: 'endpoint', id: found.id, tenantId: found.tenantId };
  },
};

