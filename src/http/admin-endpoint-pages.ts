import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DeliveryView } from '../db/endpoint.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { EndpointService, type EndpointView } from '../events/endpoint.service.js';
import { EVENT_TYPES } from '../events/event.js';
import type { AdminApiDeps } from './admin-api.routes.js';
import { h, page, when } from './admin-html.js';
import { apiWording } from './api-wording.js';

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

/**
 * /admin/endpoints: the host app's event endpoints and their deliveries. Every read and
 * change goes through EndpointService, as the admin API and the CLI do; its UserErrors are
 * shown on the page. Registered inside the console's plugin, so its sign-in and same-origin
 * check cover these routes. Rotate, replay and delete ask for confirmation first: a post
 * without `confirm=yes` only shows what would happen.
 */
export function registerEndpointPages(admin: FastifyInstance, deps: AdminApiDeps): void {
  const endpoints = () => new EndpointService(deps.db, deps.config);

  const listPage = async (reply: FastifyReply, options: { status?: number; form?: CreateForm; error?: string; notice?: string } = {}) => {
    const service = endpoints();
    const all = await service.list();
    const last = await Promise.all(all.map(async (e) => (await service.deliveries(e.id, 1))[0]));
    const tenants = await new TenantRepository(deps.db).list();
    const rows = all.map((e, i) => endpointRow(e, last[i])).join('');
    return html(
      reply,
      options.status ?? 200,
      'Event endpoints',
      `${notice(options.notice)}<p class="muted">Where dirsync POSTs every event, signed per Standard Webhooks (README, "Consuming dirsync events").</p>
${
  all.length === 0
    ? '<p>No endpoints yet.</p>'
    : `<table><thead><tr><th>URL</th><th>Tenant</th><th>Types</th><th>State</th><th>Delivered through</th><th>Last delivery</th></tr></thead><tbody>${rows}</tbody></table>`
}
<h2 id="create">Add an endpoint</h2>${options.error ? `<p class="error" role="alert">${h(options.error)}</p>` : ''}${createForm(options.form ?? {}, tenants.map((t) => t.slug))}`,
    );
  };

  const detailPage = async (reply: FastifyReply, id: string, options: { status?: number; error?: string; notice?: string; limit?: number } = {}) => {
    const service = endpoints();
    const endpoint = await service.show(id);
    const limit = options.limit ?? DELIVERIES;
    const deliveries = await service.deliveries(id, limit);
    const more = deliveries.length === limit && limit < MAX_DELIVERIES ? Math.min(limit * 4, MAX_DELIVERIES) : null;
    return html(
      reply,
      options.status ?? 200,
      'Event endpoint',
      `${notice(options.notice)}${options.error ? `<p class="error" role="alert">${h(options.error)}</p>` : ''}${details(endpoint)}
<div><form method="post" action="/admin/endpoints/${h(id)}/rotate-secret" class="inline"><button type="submit">Rotate secret</button></form>
<form method="post" action="/admin/endpoints/${h(id)}/replay" class="inline"><label>Replay after cursor <input name="after" required placeholder="0.0 replays everything" size="22"></label> <button type="submit">Replay</button></form>
<form method="post" action="/admin/endpoints/${h(id)}/delete" class="inline"><button type="submit">Delete</button></form></div>
<h2>Deliveries</h2>${deliveryTable(deliveries)}
${more ? `<p class="muted">The ${deliveries.length} most recent. <a href="/admin/endpoints/${h(id)}?limit=${more}">Show up to ${more}</a></p>` : ''}
<p><a href="/admin/endpoints">All endpoints</a></p>`,
    );
  };

  /** Without `confirm=yes`: the confirmation page (404 for an unknown endpoint). With it: `run`, its UserErrors shown on the endpoint's page. */
  const confirmed = async (reply: FastifyReply, id: string, body: ActionForm | undefined, ask: (e: EndpointView) => string, run: () => Promise<unknown>) => {
    try {
      if (body?.confirm !== 'yes') return html(reply, 200, 'Confirm', ask(await endpoints().show(id)));
      return await run();
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(reply, id);
      if (error instanceof UserError) return detailPage(reply, id, { status: 400, error: apiWording(error.message) });
      throw error;
    }
  };

  admin.get<{ Querystring: { done?: string } }>('/admin/endpoints', async (request, reply) => listPage(reply, { notice: request.query.done }));

  // The secret is shown on this answer only, as the CLI prints it once.
  admin.post<{ Body: CreateForm | undefined }>('/admin/endpoints', async (request, reply) => {
    const form = request.body ?? {};
    const types = [form.types ?? []].flat().filter(Boolean);
    try {
      const created = await endpoints().create({
        url: form.url ?? '',
        ...(form.tenant?.trim() && { tenant: form.tenant.trim() }),
        ...(types.length > 0 && { types: types.join(',') }),
      });
      return secretPage(
        reply,
        'Endpoint created',
        created.id,
        created.secret,
        `<p>Deliveries to <code>${h(created.url)}</code> (${h(created.tenant ? `tenant ${created.tenant}` : 'all tenants')}, ${h(created.types ? created.types.join(', ') : 'all event types')}) are signed with this secret. It receives the events committed from now on; <em>Replay</em> on its page sends earlier ones.</p>`,
      );
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      return listPage(reply, { status: 400, form, error: apiWording(error.message) });
    }
  });

  admin.get<{ Params: { id: string }; Querystring: { limit?: string; done?: string } }>('/admin/endpoints/:id', async (request, reply) => {
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

  admin.post<Action>('/admin/endpoints/:id/rotate-secret', async (request, reply) => {
    const { id } = request.params;
    return confirmed(
      reply,
      id,
      request.body,
      (e) =>
        confirmation(
          e,
          'rotate-secret',
          `Issue a new signing secret for <code>${h(e.url)}</code>? The new secret is shown once, on the next page. ${
            deps.config.webhookSecretGraceMs > 0
              ? 'The old one keeps signing for the grace period (DIRSYNC_WEBHOOK_SECRET_GRACE): deliveries carry signatures by both until the receiver has the new one.'
              : 'The old one stops signing at once (DIRSYNC_WEBHOOK_SECRET_GRACE is 0).'
          }`,
          'Rotate secret',
        ),
      async () => {
        const rotated = await endpoints().rotateSecret(id);
        const until = rotated.previousSecretValidUntil;
        return secretPage(
          reply,
          'New signing secret',
          id,
          rotated.secret,
          `<p class="muted">${until ? `The old secret keeps working until ${h(until)} (the grace period): deliveries carry a signature by each until then.` : 'The old secret no longer signs.'}</p>`,
        );
      },
    );
  });

  admin.post<Action>('/admin/endpoints/:id/replay', async (request, reply) => {
    const { id } = request.params;
    const after = request.body?.after?.trim() ?? '';
    return confirmed(
      reply,
      id,
      request.body,
      (e) =>
        confirmation(
          e,
          'replay',
          `Send <code>${h(e.url)}</code> every event after cursor <code>${h(after)}</code> again? Events it already received come again, with the same <code>webhook-id</code>. It is delivered through <code>${h(e.cursor)}</code> now${
            e.enabled ? '' : '; the disabled endpoint is enabled again'
          }.`,
          'Replay',
          `<input type="hidden" name="after" value="${h(after)}">`,
        ),
      async () => {
        await endpoints().replay(id, after);
        return reply.redirect(`/admin/endpoints/${encodeURIComponent(id)}?done=replayed`);
      },
    );
  });

  admin.post<Action>('/admin/endpoints/:id/delete', async (request, reply) => {
    const { id } = request.params;
    return confirmed(
      reply,
      id,
      request.body,
      (e) => confirmation(e, 'delete', `Delete the endpoint <code>${h(e.url)}</code> and its delivery history? It receives no more events.`, 'Delete endpoint'),
      async () => {
        await endpoints().delete(id);
        return reply.redirect('/admin/endpoints?done=deleted');
      },
    );
  });
}

function html(reply: FastifyReply, status: number, title: string, body: string) {
  return reply.code(status).type('text/html').send(page(title, body));
}

function notFound(reply: FastifyReply, id: string) {
  return html(reply, 404, 'Endpoint not found', `<p>No endpoint ${h(id)}. <a href="/admin/endpoints">All endpoints</a></p>`);
}

function notice(key: string | undefined): string {
  const text = key === undefined ? undefined : NOTICES.get(key);
  return text ? `<p class="banner" role="status">${h(text)}</p>` : '';
}

/** A page carrying a signing secret: never cached, and it says the secret will not be shown again. */
function secretPage(reply: FastifyReply, title: string, id: string, secret: string, body: string) {
  return reply
    .header('cache-control', 'no-store')
    .type('text/html')
    .send(
      page(
        title,
        `<div class="banner" role="status"><strong>Copy the signing secret now:</strong> it is shown only this once, and dirsync cannot show it again.</div>
<table><tr><th>Signing secret</th><td><code id="secret">${h(secret)}</code></td></tr></table>${body}
<p class="muted">Verify deliveries with a Standard Webhooks library (README, "Consuming dirsync events").</p>
<p><a href="/admin/endpoints/${h(id)}">Go to the endpoint</a> · <a href="/admin/endpoints">All endpoints</a></p>`,
      ),
    );
}

function confirmation(e: EndpointView, action: string, question: string, button: string, fields = ''): string {
  return `<div class="banner"><p>${question}</p>
<form method="post" action="/admin/endpoints/${h(e.id)}/${h(action)}" class="inline"><input type="hidden" name="confirm" value="yes">${fields}<button type="submit">${h(button)}</button></form>
<a href="/admin/endpoints/${h(e.id)}">Cancel</a></div>`;
}

function state(e: EndpointView): string {
  const failing = e.failingSince ? `<div class="error">failing since ${h(when(e.failingSince))}</div>` : '';
  return e.enabled
    ? `<span class="status delivered">enabled</span>${failing}`
    : `<span class="status failed">disabled</span>${e.disabledReason ? `: ${h(e.disabledReason)}` : ''}${failing}`;
}

function endpointRow(e: EndpointView, last: DeliveryView | undefined): string {
  const lastDelivery = last
    ? `<span class="status ${h(last.status)}">${h(last.status)}</span>${last.lastStatusCode !== null ? ` ${h(last.lastStatusCode)}` : ''} <span class="muted">${h(when(last.updatedAt))}</span>`
    : '<span class="muted">none yet</span>';
  return `<tr><td><a href="/admin/endpoints/${h(e.id)}">${h(e.url)}</a></td><td>${e.tenant ? h(e.tenant) : '<span class="muted">all tenants</span>'}</td>
<td>${e.types ? h(e.types.join(', ')) : '<span class="muted">all</span>'}</td><td>${state(e)}</td><td><code>${h(e.cursor)}</code></td><td>${lastDelivery}</td></tr>`;
}

function details(e: EndpointView): string {
  const rows: Array<[string, string]> = [
    ['URL', `<code>${h(e.url)}</code>`],
    ['Id', `<code>${h(e.id)}</code>`],
    ['Tenant', e.tenant ? h(e.tenant) : 'all tenants'],
    ['Types', e.types ? h(e.types.join(', ')) : 'all'],
    ['State', state(e)],
    ['Delivered through', `<code>${h(e.cursor)}</code>`],
    ...(e.previousSecretValidUntil ? [['Old secret', `also signs until ${h(when(e.previousSecretValidUntil))}`] as [string, string]] : []),
    ['Created', h(when(e.createdAt))],
  ];
  return `<table>${rows.map(([name, value]) => `<tr><th>${h(name)}</th><td>${value}</td></tr>`).join('')}</table>`;
}

function deliveryTable(deliveries: DeliveryView[]): string {
  if (deliveries.length === 0) return '<p class="muted">No deliveries yet.</p>';
  return `<table id="deliveries"><thead><tr><th>Event</th><th>Type</th><th>Status</th><th>Attempts</th><th>Last status</th><th>Last error</th><th>Response</th><th>Next attempt</th><th>Updated</th></tr></thead><tbody>${deliveries
    .map(
      (d) => `<tr><td><code>${h(d.cursor)}</code></td><td>${h(d.type)}</td><td><span class="status ${h(d.status)}">${h(d.status)}</span></td><td>${h(d.attempts)}</td>
<td>${h(d.lastStatusCode ?? '')}</td><td class="error">${h(d.lastError ?? '')}</td><td class="muted">${h(d.responseExcerpt ?? '')}</td><td>${d.nextAttemptAt ? h(when(d.nextAttemptAt)) : ''}</td><td class="muted">${h(when(d.updatedAt))}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

function createForm(form: CreateForm, tenants: string[]): string {
  const ticked = new Set([form.types ?? []].flat());
  return `<form method="post" action="/admin/endpoints">
<p><label>URL <input type="url" name="url" required size="60" placeholder="https://app.example.com/dirsync-events" value="${h(form.url)}"></label></p>
<p><label>Tenant <input name="tenant" list="tenant-slugs" placeholder="all tenants" value="${h(form.tenant)}"></label>
<datalist id="tenant-slugs">${tenants.map((t) => `<option value="${h(t)}">`).join('')}</datalist> <span class="muted">empty: every tenant's events</span></p>
<fieldset><legend>Event types <span class="muted">(none ticked: all)</span></legend>${EVENT_TYPES.map(
    (t) => `<label><input type="checkbox" name="types" value="${h(t)}"${ticked.has(t) ? ' checked' : ''}> ${h(t)}</label> `,
  ).join('')}</fieldset>
<p><button type="submit">Create endpoint</button></p></form>`;
}
