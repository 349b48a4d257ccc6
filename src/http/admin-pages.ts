import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CHANGE_KINDS, PLAN_KINDS, type PlanCounts, totalChanges } from '../core/plan.js';
import { DEFAULT_THRESHOLD_PERCENT, MINIMUM_HELD } from '../core/safety.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import type { Integration } from '../db/integration.repository.js';
import { RunRepository, type RunChange, type RunSummary } from '../db/run.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { WebhookRepository } from '../db/webhook.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { schedulerId } from '../queue/jobs.js';
import { removeSchedule } from '../queue/queue.js';
import { changeState } from '../runs/change-state.js';
import { approveRun, rejectRun, requestRun } from '../runs/trigger.js';
import { describeCounts } from '../cli/output.js';
import { type AdminApiDeps, bearerOf } from './admin-api.routes.js';
import { BOOTSTRAP_ADMIN, TokenService, hashToken, principalOf } from '../access/token.service.js';
import type { Principal } from '../access/roles.js';
import { AuditRepository } from '../db/audit.repository.js';
import { parseSince } from '../access/since.js';
import {
  ForbiddenError,
  capabilitiesOfRequest,
  enforce,
  from,
  isAction,
  locate,
  noteFailure,
  principalOfRequest,
  scopeOf,
  setPrincipal,
  writeAudit,
} from './access-control.js';
import { registerDirectoryPages } from './admin-directory-pages.js';
import { registerEndpointPages } from './admin-endpoint-pages.js';
import { registerEventPages } from './admin-event-pages.js';
import { healthOf } from './admin-health.js';
import { readableHeldReason, runStatusLabel } from '../runs/run-status.js';
import { ADMIN_SUBJECT, SESSION_COOKIE, SESSION_TTL_MS, checkSession, sessionValue } from './admin-session.js';
import { apiWording } from './api-wording.js';
import { redirectShowingOnce, takeShownOnce } from './shown-once.js';
import { changeFields, when, withConsoleTimes } from './console-format.js';

/** Sign-in attempts one client may make per minute (SPEC: sign-in throttling). */
export const SIGN_IN_ATTEMPTS_PER_MINUTE = 10;

// How many waiting operations a held plan shows before "and N more".
const HELD_OPS_SHOWN = 20;

/** Change-log counts by kind (`user.deprovisioned`) as plan counts (`usersDeprovisioned`), for describeCounts. */
function countsOfKinds(byKind: Record<string, number>): Partial<PlanCounts> {
  return Object.fromEntries(PLAN_KINDS.map((k) => [k, byKind[CHANGE_KINDS[k]] ?? 0]));
}

/** A run's held reason for a page: readable (run-status.ts), its times as the console shows them. */
function plainReason(run: Pick<RunSummary, 'status' | 'heldReason'>): string | null {
  const reason = readableHeldReason(run);
  return reason === null ? null : withConsoleTimes(reason);
}

/** The package's views/ folder, found from src/http (tests) and dist/cli (the CLI's bundle, bin/build.js) alike. */
function viewsRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)), i = 0; i < 5; dir = dirname(dir), i++) {
    if (existsSync(join(dir, 'views', 'admin', 'layout.eta'))) return join(dir, 'views');
  }
  throw new Error('the console templates (views/admin) are missing from the dirsync package: reinstall it');
}


/** A run's counts in words, as the CLI says them ("1 user created, 2 groups deleted"). */
function countsText(c: PlanCounts | null): string {
  if (!c) return '–';
  const text = describeCounts(c);
  return text === 'none' ? 'no changes' : text;
}

function seconds(run: RunSummary): number | null {
  return run.startedAt && run.finishedAt ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000 : null;
}

function authText(i: Integration): string {
  return i.provider === 'scim' ? 'pushed (SCIM)' : i.credentialKind === 'okta-private-key' ? 'service app' : 'API token';
}

/** Two integrations of one tenant differ by provider and id: "okta · 3f2a9c1e". */
function integrationLabel(i: Pick<Integration, 'provider' | 'id'>): string {
  return `${i.provider} · ${i.id.slice(0, 8)}`;
}

/** A change-log row for the page: `detail.changes` as previous → new, the rest as a note. */
function changeRow(c: RunChange, run: RunSummary) {
  const detail = (c.detail ?? {}) as Record<string, unknown>;
  const fields = changeFields(detail.changes);
  const { changes: _changes, ...rest } = detail;
  const note = typeof rest.skipped === 'string' ? rest.skipped : noteOf(rest);
  return { kind: c.kind, subject: c.subject, state: changeState(c, run), fields, note };
}

/** The rest of a change's detail in words ("with: user deprovisioned · adopted: yes"), not as JSON. */
function noteOf(rest: Record<string, unknown>): string {
  const value = (v: unknown): string =>
    v === true ? 'yes' : v === false ? 'no' : Array.isArray(v) ? v.map(value).join(', ') : v !== null && typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k} ${value(x)}`).join(', ') : String(v);
  return Object.entries(rest)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${value(v)}`)
    .join(' · ');
}

/** How many change-log rows a page of the run page shows. */
const CHANGES_PER_PAGE = 500;

/** The integration's safety threshold in words, with what the default and the floor mean (SPEC "Safety"). */
function thresholdText(percent: number | null): string {
  const p = percent ?? DEFAULT_THRESHOLD_PERCENT;
  return `removals of more than ${p}% of a kind (and more than ${MINIMUM_HELD}) wait for approval${percent === null ? ' (the default)' : ''}`;
}

/**
 * /admin: server-rendered pages (eta templates in views/admin, escaped by default) for the
 * people who run dirsync, and bull-board at /admin/queues, all behind the admin token (a
 * sign-in form sets a session cookie that expires; a bearer header works too). State-changing
 * forms require a same-origin request, and those that approve, reject or sync ask first.
 */
export function registerAdminPages(app: FastifyInstance, deps: AdminApiDeps): void {
  const adminToken = deps.config.adminToken;
  const root = viewsRoot();

  app.register(async (admin) => {
    await admin.register(cookie);
    await admin.register(formbody);

    const tokens = () => new TokenService(deps.db);
    /** The session's principal: the bootstrap admin or a live token (a revoked token's session is absent). */
    const sessionPrincipal = async (request: FastifyRequest, token: string): Promise<{ principal?: Principal; expired: boolean }> => {
      const check = await checkSession(request.cookies[SESSION_COOKIE], token, async (id) => (await tokens().active(id))?.tokenHash);
      if (check.state !== 'valid') return { expired: check.state === 'expired' };
      if (check.subjectId === 'admin') return { principal: BOOTSTRAP_ADMIN, expired: false };
      const stored = await tokens().active(check.subjectId);
      return stored ? { principal: principalOf(stored), expired: false } : { expired: false };
    };
    const guard = async (request: FastifyRequest, reply: FastifyReply) => {
      const path = request.url.split('?')[0]!;
      if (path === '/admin/login' || path.startsWith('/admin/assets/') || path.startsWith('/admin/vendor/')) return;
      if (!adminToken) return reply.code(503).type('text/plain').send('The admin console is off: set DIRSYNC_ADMIN_TOKEN to turn it on.');
      const session = await sessionPrincipal(request, adminToken);
      const principal = session.principal ?? (await tokens().authenticate(bearerOf(request), adminToken));
      if (principal) {
        setPrincipal(request, principal);
        if (request.method === 'POST' && !sameOrigin(request)) return reply.code(403).send('cross-site form posts are refused');
        // bull-board shows every tenant's jobs: tokens scoped to one tenant do not see it at all.
        if ((path === '/admin/queues' || path.startsWith('/admin/queues/')) && principal.tenantId !== null) {
          await new AuditRepository(deps.db)
            .append({ actor: principal.actor, tokenId: principal.tokenId, role: principal.role, actorTenantId: principal.tenantId, action: 'queue.read', source: request.ip, outcome: 'refused', reason: 'the queue dashboard shows every tenant: it needs a token for all tenants' })
            .catch(() => undefined);
          return reply.code(404).type('text/plain').send('not found');
        }
        return;
      }
      if (path.endsWith('/progress')) return reply.code(401).send({ error: 'sign in at /admin/login' });
      return reply.redirect(`/admin/login?next=${encodeURIComponent(request.url)}${session.expired ? '&expired=1' : ''}`);
    };
    admin.addHook('onRequest', guard);

    // The console's own pages: security headers (CSP allowing only this origin's scripts and
    // styles) and templates. bull-board, registered beside them, keeps its own headers.
    await admin.register(async (pages) => {
      await pages.register(helmet, {
        contentSecurityPolicy: {
          useDefaults: false,
          directives: {
            defaultSrc: ["'self'"],
            scriptSrc: ["'self'"],
            styleSrc: ["'self'"],
            imgSrc: ["'self'", 'data:'],
            connectSrc: ["'self'"],
            formAction: ["'self'"],
            frameAncestors: ["'none'"],
            baseUri: ["'none'"],
            objectSrc: ["'none'"],
          },
        },
        // Served over plain http on loopback in the demo: no upgrade, no HSTS there.
        hsts: false,
        // no-referrer (helmet's default) makes Chromium send `Origin: null` on form posts,
        // which the same-origin check refuses.
        referrerPolicy: { policy: 'same-origin' },
      });
      await pages.register(rateLimit, { global: false });
      await pages.register(view, { engine: { eta: new Eta({ autoEscape: true }) }, root, viewExt: 'eta' });
      await pages.register(fastifyStatic, { root: join(root, 'static'), prefix: '/admin/assets/', decorateReply: false, index: false });
      // Chart.js from node_modules, never a CDN: only its one UMD file.
      const chartDir = dirname(createRequire(import.meta.url).resolve('chart.js'));
      await pages.register(fastifyStatic, { root: chartDir, prefix: '/admin/vendor/', decorateReply: false, index: false, allowedPath: (path) => path === '/chart.umd.min.js' });

      // Each page declares its access (route config.access, as the admin API's routes do):
      // another tenant's things are a 404 page, too weak a role a 403 page; actions are audited.
      pages.addHook('preValidation', async (request) => {
        const access = request.routeOptions.config.access;
        if (access) await enforce(deps.db, request, access, { auditAlways: isAction(request, access) });
      });
      pages.addHook('onSend', async (request, reply, payload) => {
        await writeAudit(deps.db, deps.log, request, reply);
        return payload;
      });
      pages.setErrorHandler(async (error, request, reply) => {
        const forbidden = error instanceof ForbiddenError;
        if (!forbidden && !(error instanceof NotFoundError)) throw error;
        const status = forbidden ? 403 : 404;
        if (request.url.split('?')[0]!.endsWith('/progress')) return reply.code(status).send({ error: error.message });
        const endpoint = request.url.startsWith('/admin/endpoints/');
        const title = forbidden ? 'Not allowed' : endpoint ? 'Endpoint not found' : 'Not found';
        const message = forbidden ? `${error.message[0]!.toUpperCase()}${error.message.slice(1)}.` : consoleNotFound(error.message);
        return reply
          .code(status)
          .header('cache-control', 'no-store')
          .view('admin/message', { title, message, error: true, can: capabilitiesOfRequest(request), back: endpoint ? { href: '/admin/endpoints', text: 'All endpoints' } : { href: '/admin', text: 'All integrations' } });
      });

      registerConsole(pages);
      registerEndpointPages(pages, deps);
      registerDirectoryPages(pages, deps);
      registerEventPages(pages, deps);
    });

    const board = new FastifyAdapter();
    // Read-only: schedules and runs are owned by Postgres (bull-board's readOnlyMode is per queue).
    createBullBoard({ queues: [new BullMQAdapter(deps.queue, { readOnlyMode: true })], serverAdapter: board, options: { uiConfig: { boardTitle: 'dirsync queue' } } });
    board.setBasePath('/admin/queues');
    await admin.register(board.registerPlugin(), { prefix: '/admin/queues' });
  });

  function registerConsole(pages: FastifyInstance): void {
    const service = () => new IntegrationService(deps.db, deps.config);
    const runs = () => new RunRepository(deps.db);

    /** Held runs the request's token may see. */
    const heldRuns = async (request: FastifyRequest) => {
      const held = await runs().listHeld();
      const scope = scopeOf(request);
      if (!scope) return held;
      const own = new Set((await service().list(principalOfRequest(request).tenantSlug ?? undefined)).map((i) => i.id));
      return held.filter((r) => own.has(r.integrationId));
    };
    const render = async (reply: FastifyReply, template: string, data: Record<string, unknown>, status = 200) => {
      // Plans, not runs: an integration's held runs are one plan to approve (heldPlans).
      const heldCount = new Set((await heldRuns(reply.request)).map((r) => r.integrationId)).size;
      return reply.code(status).header('cache-control', 'no-store').view(`admin/${template}`, { heldCount, when, can: capabilitiesOfRequest(reply.request), ...data });
    };
    const notFound = (reply: FastifyReply, message: string) => render(reply, 'message', { title: 'Not found', message, error: true, back: { href: '/admin', text: 'All integrations' } }, 404);
    const refused = (reply: FastifyReply, error: unknown, back: { href: string; text: string }) => {
      if (error instanceof Error) noteFailure(reply.request, error.message);
      if (error instanceof NotFoundError) return notFound(reply, apiWording(error.message));
      if (error instanceof UserError) return render(reply, 'message', { title: 'Not done', message: apiWording(error.message), error: true, back }, 400);
      throw error;
    };

    /**
     * The held plans, one per integration: its newest held run (approving it settles the
     * earlier ones, which a busy IdP's webhooks pile up), the weightiest waiting operations
     * first and the count of each kind, for the home page and /admin/held.
     */
    const heldPlans = async (request: FastifyRequest) => {
      const held = await heldRuns(request);
      const newest = new Map<string, { run: RunSummary; earlier: number }>();
      for (const run of held) {
        const seen = newest.get(run.integrationId);
        if (!seen) newest.set(run.integrationId, { run, earlier: 0 });
        else if (run.queuedAt > seen.run.queuedAt) newest.set(run.integrationId, { run, earlier: seen.earlier + 1 });
        else seen.earlier += 1;
      }
      const list = await service().list(principalOfRequest(request).tenantSlug ?? undefined);
      const byId = new Map(list.map((i) => [i.id, i]));
      const tenants = new Map((await new TenantRepository(deps.db).list()).map((t) => [t.slug, t.name]));
      return Promise.all(
        [...newest.values()].map(async ({ run, earlier }) => {
          const i = byId.get(run.integrationId);
          const ops = await runs().listChangesInState(run.id, 'held', HELD_OPS_SHOWN + 1);
          const byKind = await runs().countChangesByKind(run.id, 'held');
          const total = Object.values(byKind).reduce((a, b) => a + b, 0);
          return {
            run,
            when,
            earlier,
            reason: plainReason(run),
            waiting: describeCounts(countsOfKinds(byKind)),
            tenantName: i ? (tenants.get(i.tenantSlug) ?? i.tenantSlug) : '',
            integrationLabel: i ? integrationLabel(i) : run.integrationId,
            ops: ops.slice(0, HELD_OPS_SHOWN),
            more: total - Math.min(total, HELD_OPS_SHOWN),
          };
        }),
      );
    };
    const waitingCount = (runId: string) => runs().countChanges(runId, 'held');

    pages.get<{ Querystring: { next?: string; failed?: string; expired?: string; out?: string } }>('/admin/login', async (request, reply) =>
      reply.header('cache-control', 'no-store').view('admin/login', {
        title: 'Sign in',
        next: safeNext(request.query.next),
        failed: Boolean(request.query.failed),
        expired: Boolean(request.query.expired),
        signedOut: Boolean(request.query.out),
      }),
    );

    pages.post<{ Body: { token?: string; next?: string } }>(
      '/admin/login',
      { config: { rateLimit: { max: SIGN_IN_ATTEMPTS_PER_MINUTE, timeWindow: 60_000 } } },
      async (request, reply) => {
        const next = safeNext(request.body?.next);
        const presented = request.body?.token?.trim();
        const principal = adminToken ? await new TokenService(deps.db).authenticate(presented, adminToken) : undefined;
        if (!adminToken || !principal || !presented) {
          return reply.redirect(`/admin/login?failed=1&next=${encodeURIComponent(next)}`);
        }
        // The session names its token, bound to the token's hash: revoking the token ends it.
        const subject = principal.tokenId ? { id: principal.tokenId, binding: hashToken(presented) } : ADMIN_SUBJECT;
        await new AuditRepository(deps.db)
          .append({ actor: principal.actor, tokenId: principal.tokenId, role: principal.role, actorTenantId: principal.tenantId, action: 'console.sign-in', source: request.ip, outcome: 'ok' })
          .catch(() => undefined);
        reply.setCookie(SESSION_COOKIE, sessionValue(adminToken, Date.now(), subject), {
          path: '/admin',
          httpOnly: true,
          sameSite: 'strict',
          secure: request.protocol === 'https',
          maxAge: SESSION_TTL_MS / 1000,
        });
        return reply.redirect(next);
      },
    );

    pages.post('/admin/logout', async (_request, reply) => {
      reply.clearCookie(SESSION_COOKIE, { path: '/admin' });
      return reply.redirect('/admin/login?out=1');
    });

    pages.get('/admin', { config: { access: { role: 'viewer', action: 'console.home' } } }, async (request, reply) => {
      const list = await service().list(principalOfRequest(request).tenantSlug ?? undefined);
      const repo = runs();
      const held = await heldPlans(request);
      const heldByIntegration = new Map(held.map((h) => [h.run.integrationId, h.run]));
      const counts = await new DirectoryRepository(deps.db).countsByIntegration();
      const tenants = new Map((await new TenantRepository(deps.db).list()).map((t) => [t.slug, t.name]));
      const rows = await Promise.all(
        list.map(async (i) => {
          const recent = await repo.listForIntegration(i.id, 20);
          const last = recent[0];
          const lastFinished = recent.find((r) => !r.dryRun && (r.status === 'succeeded' || r.status === 'failed'));
          const success = await repo.lastFullRunAt(i.id);
          const next = await nextRun(i);
          return {
            id: i.id,
            tenantName: tenants.get(i.tenantSlug) ?? i.tenantSlug,
            tenantSlug: i.tenantSlug,
            provider: i.provider,
            auth: authText(i),
            pulled: i.provider !== 'scim',
            enabled: i.enabled,
            health: healthOf({ enabled: i.enabled, held: heldByIntegration.get(i.id), lastFinished, running: recent.some((r) => r.status === 'running') }),
            users: counts.get(i.id)?.users ?? 0,
            groups: counts.get(i.id)?.groups ?? 0,
            lastSuccess: success ? when(success.toISOString()) : null,
            nextRun: next ? when(new Date(next).toISOString()) : null,
            last: last ? { id: last.id, status: runStatusLabel(last), when: when(last.finishedAt ?? last.queuedAt) } : null,
          };
        }),
      );
      return render(reply, 'home', { title: 'Integrations', rows, held });
    });

    pages.get('/admin/held', { config: { access: { role: 'viewer', action: 'console.held' } } }, async (request, reply) => render(reply, 'held', { title: 'Held plans awaiting approval', held: await heldPlans(request) }));

    pages.get<{ Params: { id: string } }>('/admin/integrations/:id', { config: { access: { role: 'viewer', action: 'integration.read', target: from('params', 'id', locate.integration) } } }, async (request, reply) => {
      let integration: Integration;
      try {
        integration = await service().get(request.params.id);
      } catch (error) {
        return refused(reply, error, { href: '/admin', text: 'All integrations' });
      }
      const repo = runs();
      const list = await repo.listForIntegration(integration.id, 50);
      const held = list.find((r) => r.status === 'held' && !r.dryRun);
      const lastFinished = list.find((r) => !r.dryRun && (r.status === 'succeeded' || r.status === 'failed'));
      const counts = (await new DirectoryRepository(deps.db).countsByIntegration()).get(integration.id);
      const tenant = await new TenantRepository(deps.db).findBySlug(integration.tenantSlug);
      const success = await repo.lastFullRunAt(integration.id);
      const next = await nextRun(integration);
      const chart = [...list]
        .reverse()
        .filter((r) => r.finishedAt)
        .map((r) => ({ at: when(r.queuedAt).slice(5, 19), status: runStatusLabel(r).text, held: runStatusLabel(r).held, changes: r.counts ? totalChanges(r.counts) : 0, seconds: seconds(r), error: r.error }));
      return render(reply, 'integration', {
        title: `${tenant?.name ?? integration.tenantSlug} · ${integrationLabel(integration)}`,
        view: service().view(integration),
        threshold: thresholdText(integration.thresholdPercent),
        tenantName: tenant?.name ?? integration.tenantSlug,
        pulled: integration.provider !== 'scim',
        health: healthOf({ enabled: integration.enabled, held, lastFinished, running: list.some((r) => r.status === 'running') }),
        users: counts?.users ?? 0,
        groups: counts?.groups ?? 0,
        lastSuccess: success ? when(success.toISOString()) : null,
        nextRun: next ? when(new Date(next).toISOString()) : null,
        chart,
        runs: list.map((r) => ({ ...r, label: runStatusLabel(r), when: when(r.queuedAt), seconds: seconds(r), counts: countsText(r.counts) })),
        webhooks: integration.provider === 'scim' ? [] : (await new WebhookRepository(deps.db).listDeliveries(integration.id, 50)).map((d) => ({ ...d, when: when(d.receivedAt) })),
      });
    });

    /** One page of a run's change log (CHANGES_PER_PAGE rows, in the order they were recorded), for the run page and its live refresh. */
    const changeLog = async (run: RunSummary, page: number) => {
      const repo = runs();
      const total = await repo.countChanges(run.id);
      const pages = Math.max(1, Math.ceil(total / CHANGES_PER_PAGE));
      const at = Math.min(Math.max(1, page), pages);
      const rows = await repo.listChanges(run.id, CHANGES_PER_PAGE, (at - 1) * CHANGES_PER_PAGE);
      return {
        total,
        changes: rows.map((c) => changeRow(c, run)),
        pager: { page: at, pages, first: (at - 1) * CHANGES_PER_PAGE + 1, last: (at - 1) * CHANGES_PER_PAGE + rows.length, href: `/admin/runs/${run.id}?page=` },
      };
    };
    const pageOf = (text: string | undefined) => (text && /^\d{1,6}$/.test(text) ? Number(text) : 1);

    pages.get<{ Params: { id: string }; Querystring: { page?: string } }>('/admin/runs/:id', { config: { access: { role: 'viewer', action: 'run.read', target: from('params', 'id', locate.run) } } }, async (request, reply) => {
      const run = await runs().find(request.params.id);
      if (!run) return notFound(reply, `No run ${request.params.id}.`);
      const integration = await service()
        .get(run.integrationId)
        .catch(() => undefined);
      const label = runStatusLabel(run);
      return render(reply, 'run', {
        title: `Run ${when(run.queuedAt)}`,
        run,
        label,
        heldReason: plainReason(run),
        settled: label.held && run.status !== 'held' ? plainReason(run) : null,
        integrationLabel: integration ? `${integration.tenantSlug} · ${integrationLabel(integration)}` : 'integration',
        live: run.status === 'queued' || run.status === 'running',
        counts: countsText(run.counts),
        seconds: seconds(run),
        log: await changeLog(run, pageOf(request.query.page)),
      });
    });

    // The change log alone (no layout), which a live run page swaps in as rows are recorded.
    pages.get<{ Params: { id: string }; Querystring: { page?: string } }>('/admin/runs/:id/changes', { config: { access: { role: 'viewer', action: 'run.read', target: from('params', 'id', locate.run) } } }, async (request, reply) => {
      const run = await runs().find(request.params.id);
      if (!run) return notFound(reply, `No run ${request.params.id}.`);
      const live = run.status === 'queued' || run.status === 'running';
      return reply.header('cache-control', 'no-store').view('admin/change-log', { run, live, log: await changeLog(run, pageOf(request.query.page)) });
    });

    // What a running run has done so far (its heartbeat's progress), for the run page's poll.
    pages.get<{ Params: { id: string } }>('/admin/runs/:id/progress', { config: { access: { role: 'viewer', action: 'run.read', target: from('params', 'id', locate.run) } } }, async (request, reply) => {
      const run = await runs().find(request.params.id);
      if (!run) return reply.code(404).send({ error: `no run ${request.params.id}` });
      return reply.header('cache-control', 'no-store').send({
        id: run.id,
        status: run.status,
        startedAt: run.startedAt,
        finishedAt: run.finishedAt,
        progress: run.status === 'running' ? run.stats : null,
        counts: run.counts,
        logged: await runs().countChanges(run.id),
      });
    });

    // Sync now, approve and reject: a post without confirm=yes shows what would happen.
    pages.post<{ Params: { id: string }; Body: { confirm?: string } | undefined }>('/admin/integrations/:id/sync', { config: { access: { role: 'operator', action: 'integration.sync', target: from('params', 'id', locate.integration), confirmed: true } } }, async (request, reply) => {
      const back = { href: `/admin/integrations/${request.params.id}`, text: 'Back to the integration' };
      try {
        const integration = await service().get(request.params.id);
        if (request.body?.confirm !== 'yes') {
          return render(reply, 'confirm', {
            title: 'Sync now?',
            question: `Sync ${integration.tenantSlug} (${integrationLabel(integration)}) now?`,
            note: 'It reads the whole directory from the IdP and applies what changed; removals beyond the safety threshold are held for approval as always.',
            action: `/admin/integrations/${integration.id}/sync`,
            button: 'Sync now',
            cancel: back.href,
          });
        }
        const { run } = await requestRun(deps, integration.id, 'manual');
        return reply.redirect(`/admin/runs/${run.id}`);
      } catch (error) {
        return refused(reply, error, back);
      }
    });

    pages.post<{ Params: { id: string } }>('/admin/integrations/:id/test', { config: { access: { role: 'operator', action: 'integration.test', target: from('params', 'id', locate.integration) } } }, async (request, reply) => {
      try {
        const integration = await service().get(request.params.id);
        const report = await service().test(integration.id);
        return render(reply, 'test-result', { title: `Connection test: ${integration.tenantSlug} · ${integrationLabel(integration)}`, id: integration.id, report });
      } catch (error) {
        return refused(reply, error, { href: `/admin/integrations/${request.params.id}`, text: 'Back to the integration' });
      }
    });

    const heldAction = (action: 'approve' | 'reject') =>
      async (request: FastifyRequest<{ Params: { id: string }; Body: { confirm?: string } | undefined }>, reply: FastifyReply) => {
        const back = { href: `/admin/runs/${request.params.id}`, text: 'Back to the run' };
        try {
          const run = await runs().find(request.params.id);
          if (!run) throw new NotFoundError(`run ${request.params.id} does not exist`);
          if (request.body?.confirm !== 'yes') {
            if (run.status !== 'held') throw new UserError(`run ${run.id} is ${run.status}, not held: only a held run can be ${action === 'approve' ? 'approved' : 'rejected'}`);
            const ops = await runs().listChangesInState(run.id, 'held', HELD_OPS_SHOWN + 1);
            const total = ops.length > HELD_OPS_SHOWN ? await waitingCount(run.id) : ops.length;
            return render(reply, 'confirm', {
              title: action === 'approve' ? 'Approve held removals?' : 'Reject held removals?',
              question:
                action === 'approve'
                  ? `Apply the ${total} held operations of this run? dirsync re-reads the IdP first and skips those it no longer warrants.`
                  : `Reject the ${total} held operations of this run? They are recorded as skipped and not applied; the next run plans afresh and holds them again if the IdP still warrants them.`,
              note: plainReason(run),
              ops: ops.slice(0, HELD_OPS_SHOWN),
              more: total - Math.min(total, HELD_OPS_SHOWN),
              action: `/admin/runs/${run.id}/${action}`,
              button: action === 'approve' ? 'Yes, approve' : 'Yes, reject',
              cancel: back.href,
            });
          }
          if (action === 'approve') return reply.redirect(`/admin/runs/${(await approveRun(deps, run.id)).id}`);
          await rejectRun(deps, run.id, 'an admin in the console');
          return reply.redirect(`/admin/runs/${run.id}`);
        } catch (error) {
          return refused(reply, error, back);
        }
      };
    pages.post('/admin/runs/:id/approve', { config: { access: { role: 'operator', action: 'run.approve', target: from('params', 'id', locate.run), confirmed: true } } }, heldAction('approve'));
    pages.post('/admin/runs/:id/reject', { config: { access: { role: 'operator', action: 'run.reject', target: from('params', 'id', locate.run), confirmed: true } } }, heldAction('reject'));

    // The new token is shown on this page only, as the CLI shows it once.
    pages.post<{ Params: { id: string } }>('/admin/integrations/:id/rotate-scim-token', { config: { access: { role: 'admin', action: 'integration.rotate-scim-token', target: from('params', 'id', locate.integration) } } }, async (request, reply) => {
      try {
        const rotation = await service().rotateScimToken(request.params.id);
        const shown = service().view(await service().get(rotation.id));
        const page = `/admin/integrations/${encodeURIComponent(rotation.id)}/scim-token`;
        return redirectShowingOnce(reply, deps.config.encryptionKey, page, { scimBaseUrl: shown.scimBaseUrl ?? '', scimToken: rotation.scimToken, until: rotation.previousScimTokenValidUntil });
      } catch (error) {
        return refused(reply, error, { href: `/admin/integrations/${request.params.id}`, text: 'Back to the integration' });
      }
    });

    // Where a rotation redirects (POST-redirect-GET): a reload must not rotate again, which
    // would void the token just shown.
    pages.get<{ Params: { id: string } }>('/admin/integrations/:id/scim-token', { config: { access: { role: 'admin', action: 'integration.read', target: from('params', 'id', locate.integration) } } }, async (request, reply) => {
      const { id } = request.params;
      const shown = takeShownOnce<Record<string, unknown>>(request, reply, deps.config.encryptionKey);
      if (shown) return render(reply, 'scim-token', { title: 'New SCIM token', id, ...shown });
      return render(reply, 'message', {
        title: 'SCIM token',
        message: 'The SCIM token was shown once, when it was issued, and dirsync cannot show it again. If it was not copied, rotate it again on the integration page.',
        back: { href: `/admin/integrations/${encodeURIComponent(id)}`, text: 'Back to the integration' },
      });
    });

    // Deleting asks first, naming what goes with it; the delete itself needs confirm=yes.
    pages.post<{ Params: { id: string }; Body: { confirm?: string } | undefined }>(
      '/admin/integrations/:id/delete',
      { config: { access: { role: 'admin', action: 'integration.delete', target: from('params', 'id', locate.integration), confirmed: true } } }, 
      async (request, reply) => {
        const back = { href: `/admin/integrations/${request.params.id}`, text: 'Back to the integration' };
        try {
          const integration = await service().get(request.params.id);
          if (request.body?.confirm !== 'yes') {
            return render(reply, 'confirm', {
              title: 'Delete this integration?',
              question: `Delete ${integration.tenantSlug} (${integrationLabel(integration)}) with its groups, memberships and run history?`,
              note: 'Its accounts stay, unowned, for another integration to adopt. This cannot be undone.',
              action: `/admin/integrations/${integration.id}/delete`,
              button: 'Yes, delete',
              cancel: back.href,
            });
          }
          await service().delete(integration.id);
          await removeSchedule(deps.queue, integration.id);
          return reply.redirect('/admin');
        } catch (error) {
          return refused(reply, error, back);
        }
      },
    );

    pages.get<{ Querystring: { since?: string } }>('/admin/audit', { config: { access: { role: 'admin', action: 'audit.read' } } }, async (request, reply) => {
      const since = /^\d{1,7}[mhd]$/.test(request.query.since ?? '') ? request.query.since! : '24h';
      const rows = await new AuditRepository(deps.db).list({ since: parseSince(since), limit: 500, tenantId: scopeOf(request) });
      return render(reply, 'audit', { title: 'Audit log', since, rows: rows.map((r) => ({ ...r, at: when(r.at) })) });
    });
  }

  async function nextRun(i: Integration): Promise<number | null> {
    if (!i.enabled || !i.schedule) return null;
    const scheduler = await deps.queue.getJobScheduler(schedulerId(i.id));
    return scheduler?.next ?? null;
  }
}

/**
 * A target's not-found sentence as the console words it: "No run <id>." (the same for one
 * that does not exist and one in a tenant the token does not see).
 */
function consoleNotFound(message: string): string {
  const match = /^(\w+) "?([^"\s]*)"? does not exist/.exec(message);
  return match ? `No ${match[1]} ${match[1] === 'tenant' ? `"${match[2]}"` : match[2]}.` : apiWording(message);
}

/** Only paths inside /admin, so the sign-in form cannot be turned into an open redirect. */
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
