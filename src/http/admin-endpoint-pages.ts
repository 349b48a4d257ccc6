import type { FastifyInstance, FastifyReply } from 'fastify';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { EndpointService } from '../events/endpoint.service.js';
import { EVENT_TYPES } from '../events/event.js';
import type { AdminApiDeps } from './admin-api.routes.js';
import { apiWording } from './api-wording.js';
import { redirectShowingOnce, takeShownOnce } from './shown-once.js';
import { when } from './console-format.js';
import { type Locator, capabilitiesOfRequest, from, locate, noteFailure, principalOfRequest, scopeOf } from './access-control.js';

// The create form's tenant: blank means every tenant (which a scoped token may not choose).
// An unknown one is the form's mistake, shown on the form, except to a scoped token, for
// which it looks like any other tenant's: absent.
const formTenant: Locator = async (db, request) => {
  const tenant = (request.body as CreateForm | undefined)?.tenant?.trim();
  if (!tenant) return { type: 'endpoint', id: null, tenantId: null };
  return locate.tenant(tenant)(db).catch((error: unknown) => {
    if (scopeOf(request)) throw error;
    return undefined;
  });
};

/** The create form as posted: `types` is one value or several (one per ticked box). */
interface CreateForm {
  url?: string;
  tenant?: string;
  types?: string | string[];
}

/** An action's form: `confirm=yes` from its confirmation page; `after` for a replay. */
interface ActionForm {
  confirm?: string;
  after?: string;
}

type Action = { Params: { id: string }; Body: ActionForm | undefined };

const DELIVERIES = 50;
const MAX_DELIVERIES = 1000;

// Notices after a redirect are picked by key, so no request text is ever shown back.
const NOTICES = new Map([
  ['deleted', 'The endpoint was deleted, with its delivery history.'],
  ['replayed', 'The endpoint will be sent every event after that cursor again; the worker picks it up within seconds.'],
]);

const secretPage = (id: string) => `/admin/endpoints/${encodeURIComponent(id)}/secret`;


/**
 * /admin/endpoints: the host app's event endpoints and their deliveries. Every read and
 * change goes through EndpointService, as the admin API and the CLI do; its UserErrors are
 * shown on the page. Registered inside the console's plugin, so its sign-in and same-origin
 * check cover these routes. Rotate, replay and delete ask for confirmation first: a post
 * without `confirm=yes` only shows what would happen.
 */
export function registerEndpointPages(admin: FastifyInstance, deps: AdminApiDeps): void {
  const endpoints = () => new EndpointService(deps.db, deps.config);
  const view = (reply: FastifyReply, status: number, template: string, data: Record<string, unknown>) =>
    reply.code(status).header('cache-control', 'no-store').view(`admin/${template}`, { when, can: capabilitiesOfRequest(reply.request), ...data });
  const notFound = (reply: FastifyReply, id: string) =>
    view(reply, 404, 'message', { title: 'Endpoint not found', message: `No endpoint ${id}.`, error: true, back: { href: '/admin/endpoints', text: 'All endpoints' } });
  const noticeText = (key: string | undefined) => (key === undefined ? undefined : NOTICES.get(key));

  const listPage = async (reply: FastifyReply, options: { status?: number; form?: CreateForm; error?: string; notice?: string } = {}) => {
    const service = endpoints();
    const own = principalOfRequest(reply.request).tenantSlug;
    const all = (await service.list()).filter((e) => !own || e.tenant === own);
    const last = await Promise.all(all.map(async (e) => (await service.deliveries(e.id, 1))[0]));
    const tenants = (await new TenantRepository(deps.db).list()).filter((t) => !own || t.slug === own);
    const form = options.form ?? {};
    const ticked = new Set([form.types ?? []].flat());
    return view(reply, options.status ?? 200, 'endpoints', {
      title: 'Event endpoints',
      notice: noticeText(options.notice),
      rows: all.map((e, i) => ({ e, last: last[i] })),
      error: options.error,
      form,
      tenants: tenants.map((t) => t.slug),
      types: EVENT_TYPES.map((name) => ({ name, ticked: ticked.has(name) })),
    });
  };

  const detailPage = async (reply: FastifyReply, id: string, options: { status?: number; error?: string; notice?: string; limit?: number } = {}) => {
    const service = endpoints();
    const e = await service.show(id);
    const limit = options.limit ?? DELIVERIES;
    const deliveries = await service.deliveries(id, limit);
    const more = deliveries.length === limit && limit < MAX_DELIVERIES ? Math.min(limit * 4, MAX_DELIVERIES) : null;
    return view(reply, options.status ?? 200, 'endpoint', { title: 'Event endpoint', e, deliveries, more, notice: noticeText(options.notice), error: options.error });
  };

  /** Without `confirm=yes`: the confirmation page (404 for an unknown endpoint). With it: `run`, its UserErrors shown on the endpoint's page. */
  const confirmed = async (reply: FastifyReply, id: string, body: ActionForm | undefined, ask: Record<string, unknown>, run: () => Promise<unknown>) => {
    try {
      if (body?.confirm !== 'yes') return view(reply, 200, 'endpoint-confirm', { title: 'Confirm', e: await endpoints().show(id), ...ask });
      return await run();
    } catch (error) {
      if (error instanceof Error) noteFailure(reply.request, error.message);
      if (error instanceof NotFoundError) return notFound(reply, id);
      if (error instanceof UserError) return detailPage(reply, id, { status: 400, error: apiWording(error.message) });
      throw error;
    }
  };

  const byId = from('params', 'id', locate.endpoint);
  admin.get<{ Querystring: { done?: string } }>('/admin/endpoints', { config: { access: { role: 'viewer', action: 'endpoint.list' } } }, async (request, reply) => listPage(reply, { notice: request.query.done }));

  // The secret is shown on this answer only, as the CLI prints it once.
  admin.post<{ Body: CreateForm | undefined }>('/admin/endpoints', { config: { access: { role: 'admin', action: 'endpoint.create', target: formTenant } } }, async (request, reply) => {
    const form = request.body ?? {};
    const types = [form.types ?? []].flat().filter(Boolean);
    try {
      const created = await endpoints().create({
        url: form.url ?? '',
        ...(form.tenant?.trim() && { tenant: form.tenant.trim() }),
        ...(types.length > 0 && { types: types.join(',') }),
      });
      return redirectShowingOnce(reply, deps.config.encryptionKey, secretPage(created.id), { title: 'Endpoint created', secret: created.secret, created });
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      noteFailure(request, error.message);
      return listPage(reply, { status: 400, form, error: apiWording(error.message) });
    }
  });

  // Where a create or rotation redirects (POST-redirect-GET): the secret shows on the first
  // load only, so a reload neither creates a second endpoint nor rotates again.
  admin.get<{ Params: { id: string } }>('/admin/endpoints/:id/secret', { config: { access: { role: 'admin', action: 'endpoint.read', target: byId } } }, async (request, reply) => {
    const { id } = request.params;
    const shown = takeShownOnce<Record<string, unknown>>(request, reply, deps.config.encryptionKey);
    if (shown) return view(reply, 200, 'endpoint-secret', { ...shown, id });
    return view(reply, 200, 'message', {
      title: 'Signing secret',
      message: 'The signing secret was shown once, when it was issued, and dirsync cannot show it again. If it was not copied, rotate the secret on the endpoint\'s page to issue a new one.',
      back: { href: `/admin/endpoints/${encodeURIComponent(id)}`, text: 'Go to the endpoint' },
    });
  });

  admin.get<{ Params: { id: string }; Querystring: { limit?: string; done?: string } }>('/admin/endpoints/:id', { config: { access: { role: 'viewer', action: 'endpoint.read', target: byId } } }, async (request, reply) => {
    const limit = Number(request.query.limit);
    try {
      return await detailPage(reply, request.params.id, {
        notice: request.query.done,
        ...(Number.isInteger(limit) && limit >= 1 && limit <= MAX_DELIVERIES && { limit }),
      });
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(reply, request.params.id);
      throw error;
    }
  });

  admin.post<Action>('/admin/endpoints/:id/rotate-secret', { config: { access: { role: 'admin', action: 'endpoint.rotate-secret', target: byId, confirmed: true } } }, async (request, reply) => {
    const { id } = request.params;
    return confirmed(reply, id, request.body, { action: 'rotate-secret', button: 'Rotate secret', graceful: deps.config.webhookSecretGraceMs > 0 }, async () => {
      const rotated = await endpoints().rotateSecret(id);
      return redirectShowingOnce(reply, deps.config.encryptionKey, secretPage(id), { title: 'New signing secret', secret: rotated.secret, rotated: { until: rotated.previousSecretValidUntil } });
    });
  });

  admin.post<Action>('/admin/endpoints/:id/replay', { config: { access: { role: 'admin', action: 'endpoint.replay', target: byId, confirmed: true } } }, async (request, reply) => {
    const { id } = request.params;
    const after = request.body?.after?.trim() ?? '';
    return confirmed(reply, id, request.body, { action: 'replay', button: 'Replay', after }, async () => {
      await endpoints().replay(id, after);
      return reply.redirect(`/admin/endpoints/${encodeURIComponent(id)}?done=replayed`);
    });
  });

  admin.post<Action>('/admin/endpoints/:id/delete', { config: { access: { role: 'admin', action: 'endpoint.delete', target: byId, confirmed: true } } }, async (request, reply) => {
    const { id } = request.params;
    return confirmed(reply, id, request.body, { action: 'delete', button: 'Delete endpoint' }, async () => {
      await endpoints().delete(id);
      return reply.redirect('/admin/endpoints?done=deleted');
    });
  });
}
