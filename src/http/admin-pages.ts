import { createHmac, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PLAN_KINDS, type PlanCounts, totalChanges } from '../core/plan.js';
import type { Integration } from '../db/integration.repository.js';
import { RunRepository, type RunChange, type RunSummary } from '../db/run.repository.js';
import { schedulerId } from '../queue/jobs.js';
import { describeSchedule } from '../integrations/schedule.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { changeState } from '../runs/change-state.js';
import { approveRun, requestRun } from '../runs/trigger.js';
import { type AdminApiDeps, adminTokenMatches, bearerOf } from './admin-api.routes.js';
import { registerEndpointPages } from './admin-endpoint-pages.js';
import { h, page } from './admin-html.js';

const COOKIE = 'dirsync_admin';

/** The session cookie: an HMAC of the admin token, so rotating the token ends every session. */
function sessionValue(adminToken: string): string {
  return createHmac('sha256', adminToken).update('dirsync admin session v1').digest('base64url');
}

function sessionValid(request: FastifyRequest, adminToken: string): boolean {
  const presented = request.cookies[COOKIE];
  if (!presented) return false;
  const expected = Buffer.from(sessionValue(adminToken));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function counts(c: PlanCounts | null): string {
  if (!c) return '<span class="muted">–</span>';
  const parts = PLAN_KINDS.filter((k) => c[k] > 0).map((k) => `${c[k]} ${k.replace(/([A-Z])/g, ' $1').toLowerCase()}`);
  return parts.length ? h(parts.join(', ')) : '<span class="muted">no changes</span>';
}

function status(run: Pick<RunSummary, 'status'>): string {
  return `<span class="status ${h(run.status)}">${h(run.status)}</span>`;
}

function seconds(run: RunSummary): number | null {
  return run.startedAt && run.finishedAt ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000 : null;
}

/** Bars of changes per run and a line of durations, oldest to newest, as inline SVG. */
function chart(runs: RunSummary[]): string {
  const data = [...runs].reverse().filter((r) => r.finishedAt);
  if (data.length === 0) return '';
  const W = 720;
  const H = 160;
  const step = W / data.length;
  const changes = data.map((r) => (r.counts ? totalChanges(r.counts) : 0));
  const durations = data.map((r) => seconds(r) ?? 0);
  const maxC = Math.max(1, ...changes);
  const maxD = Math.max(0.001, ...durations);
  const bars = changes
    .map((c, i) => `<rect x="${(i * step + 2).toFixed(1)}" y="${(H - 20 - (c / maxC) * (H - 40)).toFixed(1)}" width="${Math.max(1, step - 4).toFixed(1)}" height="${((c / maxC) * (H - 40)).toFixed(1)}" fill="#0969da88"><title>${c} changes</title></rect>`)
    .join('');
  const line = durations.map((d, i) => `${(i * step + step / 2).toFixed(1)},${(H - 20 - (d / maxD) * (H - 40)).toFixed(1)}`).join(' ');
  return `<figure><svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="Changes (bars) and durations (line) of the last ${data.length} runs">
<text x="0" y="12">changes (bars, max ${maxC}) · duration (line, max ${maxD.toFixed(2)} s)</text>${bars}
<polyline points="${line}" fill="none" stroke="#cf222e" stroke-width="2"/></svg></figure>`;
}

/**
 * /admin: server-rendered pages for the people who run dirsync, and bull-board at
 * /admin/queues, all behind the admin token (a login form sets a session cookie; a bearer
 * header works too). State-changing forms also require a same-origin request.
 */
export function registerAdminPages(app: FastifyInstance, deps: AdminApiDeps): void {
  const adminToken = deps.config.adminToken;

  app.register(async (admin) => {
    await admin.register(cookie);
    await admin.register(formbody);

    const guard = async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.url.startsWith('/admin/login')) return;
      if (!adminToken) return reply.code(503).type('text/html').send(page('Admin is off', '<p>Set DIRSYNC_ADMIN_TOKEN to turn the admin pages on.</p>'));
      if (sessionValid(request, adminToken) || adminTokenMatches(bearerOf(request), adminToken)) {
        if (request.method === 'POST' && !sameOrigin(request)) return reply.code(403).send('cross-site form posts are refused');
        return;
      }
      return reply.redirect(`/admin/login?next=${encodeURIComponent(request.url)}`);
    };
    admin.addHook('onRequest', guard);

    admin.get<{ Querystring: { next?: string; failed?: string } }>('/admin/login', async (request, reply) => {
      const next = safeNext(request.query.next);
      return reply.type('text/html').send(
        page(
          'Sign in',
          `${request.query.failed ? '<p class="error" role="alert">That is not the admin token.</p>' : ''}
<form method="post" action="/admin/login"><input type="hidden" name="next" value="${h(next)}">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form>`,
        ),
      );
    });

    admin.post<{ Body: { token?: string; next?: string } }>('/admin/login', async (request, reply) => {
      const next = safeNext(request.body?.next);
      if (!adminToken || !adminTokenMatches(request.body?.token, adminToken)) {
        return reply.redirect(`/admin/login?failed=1&next=${encodeURIComponent(next)}`);
      }
      reply.setCookie(COOKIE, sessionValue(adminToken), { path: '/admin', httpOnly: true, sameSite: 'strict', secure: request.protocol === 'https' });
      return reply.redirect(next);
    });

    admin.get('/admin', async (_request, reply) => {
      const service = new IntegrationService(deps.db, deps.config);
      const runs = new RunRepository(deps.db);
      const list = await service.list();
      const rows = await Promise.all(
        list.map(async (i) => {
          const [last] = await runs.listForIntegration(i.id, 1);
          return row(i, last, await nextRun(i));
        }),
      );
      return reply.type('text/html').send(
        page(
          'Integrations',
          list.length === 0
            ? '<p>No integrations yet: create one with <code>dirsync integration create</code>.</p>'
            : `<table><thead><tr><th>Tenant</th><th>Provider</th><th>Schedule</th><th>Next run</th><th>Last run</th><th>Changes</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
        ),
      );
    });

    admin.get<{ Params: { id: string } }>('/admin/integrations/:id', async (request, reply) => {
      const service = new IntegrationService(deps.db, deps.config);
      const integration = await service.get(request.params.id);
      const runs = await new RunRepository(deps.db).listForIntegration(integration.id, 50);
      const view = service.view(integration);
      const list = runs
        .map(
          (r) =>
            `<tr><td><a href="/admin/runs/${h(r.id)}">${h(r.queuedAt.replace('T', ' ').slice(0, 19))}</a></td><td>${h(r.trigger)} (${h(r.mode)})${r.dryRun ? ' (dry run)' : ''}</td><td>${status(r)}</td>
<td>${seconds(r)?.toFixed(2) ?? '–'} s</td><td>${counts(r.counts)}</td><td class="error">${h(r.error ?? r.heldReason ?? '')}</td></tr>`,
        )
        .join('');
      return reply.type('text/html').send(
        page(
          `${integration.tenantSlug} · ${integration.provider}`,
          `<p>${h(view.baseUrl ?? `SCIM base URL: ${view.scimBaseUrl}`)} · ${h(view.schedule)} · deprovision: ${h(view.deprovisionMode)} · ${view.enabled ? 'enabled' : '<strong>disabled</strong>'}
${syncButton(integration)}${integration.provider === 'scim' ? rotateScimTokenButton(integration) : ''}</p>${chart(runs)}
<table><thead><tr><th>Queued</th><th>Trigger</th><th>Status</th><th>Duration</th><th>Changes</th><th>Error</th></tr></thead><tbody>${list}</tbody></table>`,
        ),
      );
    });

    admin.get<{ Params: { id: string } }>('/admin/runs/:id', async (request, reply) => {
      const runs = new RunRepository(deps.db);
      const run = await runs.find(request.params.id);
      if (!run) return reply.code(404).type('text/html').send(page('Run not found', `<p>No run ${h(request.params.id)}.</p>`));
      const changes = await runs.listChanges(run.id, 5_000);
      const approve =
        run.status === 'held'
          ? `<div class="banner"><p>${h(run.heldReason)}</p><form method="post" action="/admin/runs/${h(run.id)}/approve" class="inline"><button type="submit">Approve</button></form>
<span class="muted"> re-reads the IdP and applies the held removals it still warrants.</span></div>`
          : '';
      return reply.type('text/html').send(
        page(
          `Run ${run.queuedAt.replace('T', ' ').slice(0, 19)}`,
          `<p>${status(run)} · ${h(run.trigger)} · ${h(run.mode)}${run.dryRun ? ' · dry run' : ''} · <a href="/admin/integrations/${h(run.integrationId)}">integration</a>
${run.approvesRunId ? ` · approves <a href="/admin/runs/${h(run.approvesRunId)}">run</a>` : ''}${run.approvedByRunId ? ` · approved by <a href="/admin/runs/${h(run.approvedByRunId)}">run</a>` : ''}</p>
${run.error ? `<p class="error" role="alert">${h(run.error)}</p>` : ''}${approve}${warningList(run)}
<p>${counts(run.counts)}${seconds(run) !== null ? ` · ${seconds(run)!.toFixed(2)} s` : ''}${run.stats?.requests ? ` · ${run.stats.requests} IdP requests` : ''}</p>
<h2>${run.dryRun ? 'Plan' : 'Change log'}</h2>${changeTable(changes, run)}`,
        ),
      );
    });

    admin.post<{ Params: { id: string } }>('/admin/integrations/:id/sync', async (request, reply) => {
      const { run } = await requestRun(deps, request.params.id, 'manual');
      return reply.redirect(`/admin/runs/${run.id}`);
    });

    // The new token is shown on this page only, as the CLI shows it once.
    admin.post<{ Params: { id: string } }>('/admin/integrations/:id/rotate-scim-token', async (request, reply) => {
      const service = new IntegrationService(deps.db, deps.config);
      const rotation = await service.rotateScimToken(request.params.id);
      const view = service.view(await service.get(rotation.id));
      const until = rotation.previousScimTokenValidUntil;
      return reply
        .header('cache-control', 'no-store')
        .type('text/html')
        .send(
          page(
            'New SCIM token',
            `<p>Paste these into the IdP's SCIM provisioning settings. The token is shown only now.</p>
<table><tr><th>SCIM base URL</th><td><code>${h(view.scimBaseUrl ?? '')}</code></td></tr><tr><th>SCIM token</th><td><code>${h(rotation.scimToken)}</code></td></tr></table>
<p class="muted">${until ? `The old token keeps working until ${h(until)}.` : 'The old token no longer works.'}</p>
<p><a href="/admin/integrations/${h(rotation.id)}">Back to the integration</a></p>`,
          ),
        );
    });

    admin.post<{ Params: { id: string } }>('/admin/runs/:id/approve', async (request, reply) => {
      const approval = await approveRun(deps, request.params.id);
      return reply.redirect(`/admin/runs/${approval.id}`);
    });

    registerEndpointPages(admin, deps);

    const board = new FastifyAdapter();
    // Read-only: schedules and runs are owned by Postgres (bull-board's readOnlyMode is per queue).
    createBullBoard({ queues: [new BullMQAdapter(deps.queue, { readOnlyMode: true })], serverAdapter: board, options: { uiConfig: { boardTitle: 'dirsync queue' } } });
    board.setBasePath('/admin/queues');
    await admin.register(board.registerPlugin(), { prefix: '/admin/queues' });
  });

  async function nextRun(i: Integration): Promise<number | null> {
    if (!i.enabled || !i.schedule) return null;
    const scheduler = await deps.queue.getJobScheduler(schedulerId(i.id));
    return scheduler?.next ?? null;
  }
}

function row(i: Integration, last: RunSummary | undefined, next: number | null): string {
  const when = last ? (last.finishedAt ?? last.queuedAt).replace('T', ' ').slice(0, 19) : '';
  return `<tr><td><a href="/admin/integrations/${h(i.id)}">${h(i.tenantSlug)}</a>${i.enabled ? '' : ' <span class="muted">(disabled)</span>'}</td><td>${h(i.provider)} <span class="muted">${i.provider === 'scim' ? 'pushed' : i.credentialKind === 'okta-private-key' ? 'service app' : 'API token'}</span></td>
<td>${h(describeSchedule(i.schedule))}</td><td>${next ? h(new Date(next).toISOString().replace('T', ' ').slice(0, 19)) : '<span class="muted">–</span>'}</td>
<td>${last ? `<a href="/admin/runs/${h(last.id)}">${status(last)}</a> <span class="muted">${h(when)}</span>${last.error ? `<div class="error">${h(last.error)}</div>` : ''}` : '<span class="muted">never</span>'}</td>
<td>${last ? counts(last.counts) : ''}</td><td>${syncButton(i)}</td></tr>`;
}

function rotateScimTokenButton(i: Integration): string {
  return ` <form method="post" action="/admin/integrations/${h(i.id)}/rotate-scim-token" class="inline"><button type="submit">Rotate SCIM token</button></form>`;
}

function syncButton(i: Integration): string {
  return i.enabled ? `<form method="post" action="/admin/integrations/${h(i.id)}/sync" class="inline"><button type="submit">Sync now</button></form>` : '';
}

/** Records the run skipped (SPEC "Per-record isolation"), each with the reason. */
function warningList(run: RunSummary): string {
  if (run.warnings.length === 0) return '';
  return `<div class="banner" role="status"><p>${run.warnings.length === 1 ? '1 IdP record' : `${run.warnings.length} IdP records`} skipped:</p><ul>${run.warnings
    .map((w) => `<li><strong>${h(w.subject)}</strong>${w.externalId && w.externalId !== w.subject ? ` <span class="muted">${h(w.externalId)}</span>` : ''}: ${h(w.reason)}</li>`)
    .join('')}</ul></div>`;
}

function changeTable(changes: RunChange[], run: RunSummary): string {
  if (changes.length === 0) return '<p class="muted">Nothing changed.</p>';
  return `<table><thead><tr><th>Change</th><th>Subject</th><th>State</th><th>Detail</th></tr></thead><tbody>${changes
    .map((c) => `<tr><td>${h(c.kind)}</td><td>${h(c.subject)}</td><td>${h(changeState(c, run))}</td><td class="muted">${h(c.detail ? JSON.stringify(c.detail) : '')}</td></tr>`)
    .join('')}</tbody></table>`;
}

/** Only paths inside /admin, so the login form cannot be turned into an open redirect. */
function safeNext(next: string | undefined): string {
  return next && next.startsWith('/admin') && !next.startsWith('//') ? next : '/admin';
}

function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin ?? request.headers.referer;
  if (!origin) return true; // not a browser form post (curl with a bearer token)
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}
