import type { FastifyInstance, FastifyReply } from 'fastify';
import { DirectoryRepository } from '../db/directory.repository.js';
import { isUuid } from '../db/run.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError } from '../errors.js';
import { personOfAccount } from '../directory/person-view.js';
import type { AdminApiDeps } from './admin-api.routes.js';
import { changeFields, when } from './console-format.js';
import { capabilitiesOfRequest, from, locate, principalOfRequest, scopeOf } from './access-control.js';

/** Rows per page of a directory listing. */
const PAGE = 50;


type Listing = { Params: { slug: string }; Querystring: { q?: string; page?: string } };

/** The page number asked for (1-based; anything else is the first page) and the search text. */
function listingQuery(query: { q?: string; page?: string }): { q: string; page: number; offset: number } {
  const page = /^\d{1,6}$/.test(query.page ?? '') ? Math.max(1, Number(query.page)) : 1;
  return { q: (query.q ?? '').trim().slice(0, 200), page, offset: (page - 1) * PAGE };
}

/**
 * The console's directory pages: tenants, a tenant's users and groups (searched and paged in
 * Postgres: a page of a 100k-account tenant reads one page), who is in a group, and a user's
 * page (their accounts across tenants, groups, lock, and what happened to each, when). The
 * same reads as the admin API's `/tenants/{slug}/users`, `/groups/{id}/members` and
 * `/accounts/{id}`. Registered inside the console's plugin (sign-in, headers, templates).
 */
export function registerDirectoryPages(pages: FastifyInstance, deps: AdminApiDeps): void {
  const directory = () => new DirectoryRepository(deps.db);
  const view = (reply: FastifyReply, template: string, data: Record<string, unknown>, status = 200) =>
    reply.code(status).header('cache-control', 'no-store').view(`admin/${template}`, { when, changeFields, can: capabilitiesOfRequest(reply.request), ...data });
  const notFound = (reply: FastifyReply, message: string) =>
    view(reply, 'message', { title: 'Not found', message, error: true, back: { href: '/admin/tenants', text: 'All tenants' } }, 404);
  const tenantOf = async (slug: string) => new TenantRepository(deps.db).findBySlug(slug);

  pages.get('/admin/tenants', { config: { access: { role: 'viewer', action: 'tenant.list' } } }, async (request, reply) => {
    const scope = scopeOf(request);
    const tenants = (await new TenantRepository(deps.db).list()).filter((t) => !scope || t.id === scope);
    return view(reply, 'tenants', { title: 'Tenants', tenants });
  });

  pages.get<Listing>('/admin/tenants/:slug/users', { config: { access: { role: 'viewer', action: 'tenant.users', target: from('params', 'slug', locate.tenant) } } }, async (request, reply) => {
    const tenant = await tenantOf(request.params.slug);
    if (!tenant) return notFound(reply, `No tenant "${request.params.slug}".`);
    const { q, page, offset } = listingQuery(request.query);
    const rows = await directory().pageTenantUsers(tenant.id, { limit: PAGE + 1, offset, search: q || undefined });
    return view(reply, 'users', { title: `Users of ${tenant.name}`, tenant, q, page, users: rows.slice(0, PAGE), more: rows.length > PAGE });
  });

  pages.get<Listing>('/admin/tenants/:slug/groups', { config: { access: { role: 'viewer', action: 'tenant.groups', target: from('params', 'slug', locate.tenant) } } }, async (request, reply) => {
    const tenant = await tenantOf(request.params.slug);
    if (!tenant) return notFound(reply, `No tenant "${request.params.slug}".`);
    const { q, page, offset } = listingQuery(request.query);
    const rows = await directory().pageTenantGroups(tenant.id, { limit: PAGE + 1, offset, search: q || undefined });
    return view(reply, 'groups', { title: `Groups of ${tenant.name}`, tenant, q, page, groups: rows.slice(0, PAGE), more: rows.length > PAGE });
  });

  pages.get<{ Params: { id: string }; Querystring: { q?: string; page?: string } }>('/admin/groups/:id', { config: { access: { role: 'viewer', action: 'group.members', target: from('params', 'id', locate.group) } } }, async (request, reply) => {
    const group = isUuid(request.params.id) ? await directory().findGroup(request.params.id) : undefined;
    if (!group) return notFound(reply, `No group ${request.params.id}.`);
    const tenant = await new TenantRepository(deps.db).findById(group.tenantId);
    const { q, page, offset } = listingQuery(request.query);
    const rows = await directory().pageTenantUsers(group.tenantId, { limit: PAGE + 1, offset, search: q || undefined, inGroup: group.id });
    return view(reply, 'group', { title: `Group ${group.name}`, group, tenant, q, page, members: rows.slice(0, PAGE), more: rows.length > PAGE });
  });

  pages.get<{ Params: { id: string } }>('/admin/accounts/:id', { config: { access: { role: 'viewer', action: 'account.read', target: from('params', 'id', locate.account) } } }, async (request, reply) => {
    try {
      const whole = await personOfAccount(deps.db, request.params.id);
      // A scoped token sees the person's accounts in its own tenant only.
      const own = principalOfRequest(request).tenantSlug;
      const person = own ? { ...whole, accounts: whole.accounts.filter((a) => a.tenant === own) } : whole;
      const first = person.accounts[0]!;
      return view(reply, 'account', { title: first.userName, person });
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(reply, `No account ${request.params.id}.`);
      throw error;
    }
  });
}
