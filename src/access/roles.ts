import type { Role } from '../db/schema.js';

export type { Role };

/** The roles, weakest first: each may do what the ones before it may. */
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/**
 * Who is acting: the bootstrap admin (DIRSYNC_ADMIN_TOKEN), a token from `dirsync token
 * create`, or the CLI (which acts on the database directly, as whoever may read DATABASE_URL).
 */
export interface Principal {
  /** For the audit log: `bootstrap admin`, `token:<name>` or `cli:<os user>`. */
  readonly actor: string;
  readonly tokenId: string | null;
  readonly role: Role;
  /** The one tenant a scoped token sees, or null for every tenant. */
  readonly tenantId: string | null;
  readonly tenantSlug: string | null;
}

/** Whether `role` may do what `needed` may. */
export function allows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** Why a principal is refused: one sentence naming the role (and scope) needed, or undefined when allowed. */
export function refusal(principal: Principal, needed: Role, options: { allTenants?: boolean } = {}): string | undefined {
  const all = options.allTenants === true;
  if (allows(principal.role, needed) && (!all || principal.tenantId === null)) return undefined;
  const whose = all ? ' for all tenants (not one scoped to a tenant)' : '';
  const article = needed === 'viewer' ? 'a' : 'an';
  const has = `${principal.role}${principal.tenantSlug ? ` for tenant ${principal.tenantSlug}` : ''}`;
  return `this needs ${article} ${needed} token${whose}, and this one is ${has}`;
}

/** Whether the principal may see something of tenant `tenantId` (null: belongs to no tenant, or to all). */
export function seesTenant(principal: Principal, tenantId: string | null): boolean {
  return principal.tenantId === null || principal.tenantId === tenantId;
}

/** What the console shows a principal: which buttons and pages. */
export interface Capabilities {
  readonly role: Role;
  readonly tenant: string | null;
  /** Sync, dry runs, approve and reject, connection tests. */
  readonly operate: boolean;
  /** Integrations, credentials, endpoints, tokens. */
  readonly administer: boolean;
  /** bull-board: unscoped tokens only (it shows every tenant's jobs). */
  readonly queue: boolean;
  /** The audit log page: admins. */
  readonly audit: boolean;
}

export function capabilitiesOf(principal: Principal): Capabilities {
  return {
    role: principal.role,
    tenant: principal.tenantSlug,
    operate: allows(principal.role, 'operator'),
    administer: allows(principal.role, 'admin'),
    queue: principal.tenantId === null,
    audit: allows(principal.role, 'admin'),
  };
}
