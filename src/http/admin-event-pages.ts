import type { FastifyInstance } from 'fastify';
import { EventRepository } from '../db/event.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { type DirsyncEvent, formatCursor } from '../events/event.js';
import { readCursor } from '../events/feed.js';
import { UserError } from '../errors.js';
import type { AdminApiDeps } from './admin-api.routes.js';
import { from, locate, scopeOf } from './access-control.js';
import { changeFields, when } from './console-format.js';

/** Events a page of /admin/events shows. */
const PAGE = 50;


/** One event as a row: who or what it is about, and what it says, in words. */
function eventRow(e: DirsyncEvent) {
  const data = e.data as {
    account?: { id?: string | null; userName?: string; externalId?: string };
    group?: { id?: string | null; name?: string; externalId?: string };
    changes?: unknown;
    reason?: string;
    mode?: string;
  };
  const account = data.account ? { id: data.account.id ?? null, name: data.account.userName ?? data.account.externalId ?? '' } : null;
  const group = data.group ? { id: data.group.id ?? null, name: data.group.name ?? data.group.externalId ?? '' } : null;
  const what = [
    ...changeFields(data.changes).map((f) => `${f.name}: ${f.previous ?? '∅'} → ${f.next ?? '∅'}`),
    ...(data.reason ? [`reason: ${data.reason}`] : []),
    ...(data.mode ? [`mode: ${data.mode}`] : []),
  ];
  return { id: e.id, type: e.type, tenant: e.tenant, when: when(e.occurredAt), runId: e.runId, cursor: e.cursor, account, group, what };
}

/**
 * /admin/events: the event feed the host app reads (`dirsync events`, `GET /api/v1/events`),
 * newest first, of one tenant or all, paged backwards by cursor. Each event's cursor is shown,
 * as it is what `dirsync endpoint replay --after` and `dirsync events --after` take.
 * Registered inside the console's plugin (sign-in, headers, templates).
 */
export function registerEventPages(pages: FastifyInstance, deps: AdminApiDeps): void {
  // As GET /api/v1/events: a tenant-scoped token reads its own tenant's events, and another tenant is absent (404).
  const access = { role: 'viewer', action: 'event.list', target: from('query', 'tenant', locate.tenant) } as const;
  pages.get<{ Querystring: { tenant?: string; before?: string } }>('/admin/events', { config: { access } }, async (request, reply) => {
    const scope = scopeOf(request);
    const tenants = (await new TenantRepository(deps.db).list()).filter((t) => scope === undefined || t.id === scope);
    const slug = request.query.tenant?.trim() || undefined;
    const tenant = slug === undefined ? undefined : tenants.find((t) => t.slug === slug);
    const render = (status: number, data: Record<string, unknown>) =>
      reply.code(status).header('cache-control', 'no-store').view('admin/events', { title: 'Events', tenants: tenants.map((t) => t.slug), tenant: slug ?? '', ...data });
    if (slug !== undefined && !tenant) return render(404, { error: `There is no tenant "${slug.slice(0, 100)}".`, rows: [] });
    let before;
    try {
      before = readCursor(request.query.before);
    } catch (error) {
      if (error instanceof UserError) return render(400, { error: error.message, rows: [] });
      throw error;
    }
    const tenantId = tenant?.id ?? scope;
    const page = await new EventRepository(deps.db).before({ ...(before && { before }), ...(tenantId && { tenantId }), limit: PAGE });
    const older = page.next ? `/admin/events?${new URLSearchParams({ ...(slug && { tenant: slug }), before: formatCursor(page.next) })}` : null;
    return render(200, { rows: page.events.map(eventRow), older, paged: before !== undefined });
  });
}
