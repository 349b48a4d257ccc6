import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import { RunRepository, isUuid } from '../db/run.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { WebhookRepository } from '../db/webhook.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { EndpointService } from '../events/endpoint.service.js';
import { readFeed } from '../events/feed.js';
import { type CreateIntegrationInput, type IntegrationOptions, IntegrationService } from '../integrations/integration.service.js';
import { type DirsyncQueue, removeSchedule, syncSchedule } from '../queue/queue.js';
import { approveRun, rejectRun, requestRun, syncWish } from '../runs/trigger.js';
import { personOfAccount } from '../directory/person-view.js';
import { TenantService } from '../tenants/tenant.service.js';
import { TokenService } from '../access/token.service.js';
import { AuditRepository } from '../db/audit.repository.js';
import { enforce, isAction, from, locate, noteFailure, noteTarget, principalOfRequest, scopeOf, setPrincipal, writeAudit } from './access-control.js';
import { parseSince } from '../access/since.js';
import type { Logger } from '../log.js';

export interface AdminApiDeps {
  readonly db: Db;
  readonly config: Config;
  readonly queue: DirsyncQueue;
  readonly log?: Logger;
}


export function bearerOf(request: FastifyRequest): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '');
  return match?.[1]?.trim();
}


// JSON schemas: fastify validates requests with them and @fastify/swagger turns them into
// the OpenAPI description served at /api/v1/openapi.json.
const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } } as const;
const slugParam = { type: 'object', required: ['slug'], properties: { slug: { type: 'string' } } } as const;
const page = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    offset: { type: 'integer', minimum: 0, default: 0 },
  },
  additionalProperties: false,
} as const;
const integrationOptions = {
  baseUrl: { type: 'string', description: 'on update, another origin (scheme, host, port) needs token, or oktaClientId with oktaPrivateKey, in the same request' },
  token: { type: 'string', description: 'write-only: never returned' },
  oktaClientId: { type: 'string', description: 'Okta OAuth service app client id (instead of token)' },
  oktaPrivateKey: { type: 'string', description: "Okta OAuth service app private key, PEM or JWK (RSA); write-only: never returned" },
  oktaKeyId: { type: 'string', description: "key id (kid) of the service app's public key" },
  oktaAppId: { type: 'string' },
  authentikApp: { type: 'string' },
  deprovision: { type: 'string', enum: ['suspend', 'remove-access', 'delete'] },
  threshold: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
  every: { type: 'string', description: 'duration such as 15m, 1h, 1d' },
  cron: { type: 'string', description: 'five-field cron expression, UTC' },
  scim: { type: 'boolean', description: 'okta, authentik: also take SCIM pushes, each read back through the API at once (the answer carries scimBaseUrl and, once, scimToken); false stops taking them' },
  fullEvery: { type: 'string', description: 'scheduled runs read what changed, and the whole scope this often: a duration from 1h, default 1d' },
  verify: { type: 'boolean', default: true, description: 'check the IdP accepts a new address or credentials before storing them' },
} as const;
const errorResponse = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        // verification_failed: what each IdP endpoint answered
        check: { type: 'object', additionalProperties: true },
      },
    },
  },
} as const;

interface Page {
  limit: number;
  offset: number;
}

/** A page of a list: `next` is the offset of the following page, null on the last one. */
/** A page and a search text, for directory listings. */
interface SearchPage extends Page {
  q?: string;
}

const searchPage = {
  ...page,
  properties: { ...page.properties, q: { type: 'string', maxLength: 200 } },
} as const;

/** A page read in the database: one row more than asked says whether another page follows. */
async function pagedQuery<T>({ limit, offset, q }: SearchPage, read: (p: { limit: number; offset: number; search?: string }) => Promise<T[]>) {
  const rows = await read({ limit: limit + 1, offset, ...(q ? { search: q } : {}) });
  return { items: rows.slice(0, limit), next: rows.length > limit ? offset + limit : null };
}

function paged<T>(all: T[], { limit, offset }: Page) {
  const items = all.slice(offset, offset + limit);
  return { items, next: offset + limit < all.length ? offset + limit : null };
}

/** The named string fields of a request body, for the audit log. */
function pick(body: unknown, fields: readonly string[]): Record<string, string | string[]> {
  const source = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const out: Record<string, string | string[]> = {};
  for (const f of fields) {
    const v = source[f];
    if (typeof v === 'string') out[f] = v.slice(0, 200);
    else if (Array.isArray(v)) out[f] = v.filter((x): x is string => typeof x === 'string').slice(0, 20);
  }
  return out;
}

/** Which fields a body sets (names only: credentials' values never reach the audit log). */
function fieldsOf(body: unknown): string[] {
  return body && typeof body === 'object' ? Object.keys(body).slice(0, 30) : [];
}

/**
 * The admin JSON API under /api/v1, behind `Authorization: Bearer <token>`: DIRSYNC_ADMIN_TOKEN
 * (the bootstrap admin) or a token from `dirsync token create`. Each route declares its
 * access (role, audit action, target) in its config; a scoped token's other tenants are 404.
 * Errors are `{"error": {"code", "message"}}`; lists are `{"items", "next"}`. Credentials are
 * write-only.
 */
export function registerAdminApi(app: FastifyInstance, deps: AdminApiDeps): void {
  const integrations = () => new IntegrationService(deps.db, deps.config);
  const tenantId = async (slug: string) => {
    const tenant = await new TenantRepository(deps.db).findBySlug(slug);
    if (!tenant) throw new NotFoundError(`tenant "${slug}" does not exist`);
    return tenant.id;
  };
  const run = async (id: string) => {
    const found = await new RunRepository(deps.db).find(id);
    if (!found) throw new NotFoundError(`run ${id} does not exist`);
    return found;
  };

  app.register(
    async (api) => {
      // Every route declares its access (role, audit action, target): a route without is a bug.
      api.addHook('onRoute', (route) => {
        if (!route.config?.access && !route.url.endsWith('/openapi.json')) throw new Error(`admin API route ${route.method} ${route.url} declares no access`);
      });
      api.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        if (request.url.startsWith('/api/v1/openapi.json')) return;
        if (!deps.config.adminToken) {
          return reply.code(503).send({ error: { code: 'disabled', message: 'the admin API is off: set DIRSYNC_ADMIN_TOKEN to turn it on' } });
        }
        const principal = await new TokenService(deps.db).authenticate(bearerOf(request), deps.config.adminToken);
        if (!principal) return reply.code(401).send({ error: { code: 'unauthorized', message: 'missing or wrong bearer token' } });
        setPrincipal(request, principal);
      });
      // Before validation, so a role that may not use a route hears so whatever it sent.
      api.addHook('preValidation', async (request) => {
        const access = request.routeOptions.config.access;
        if (access) await enforce(deps.db, request, access, { auditAlways: isAction(request, access) });
      });
      api.addHook('onError', async (request, _reply, error) => noteFailure(request, error.message));
      api.addHook('onSend', async (request, reply, payload) => {
        await writeAudit(deps.db, deps.log, request, reply);
        return payload;
      });

      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

      api.get('/tenants', { config: { access: { role: 'viewer', action: 'tenant.list' } }, schema: { tags: ['tenants'], summary: 'List tenants (a scoped token: its own)', querystring: page } }, async (request) => {
        const scope = scopeOf(request);
        return paged((await new TenantRepository(deps.db).list()).filter((t) => !scope || t.id === scope), request.query as Page);
      });

      api.post<{ Body: { slug: string; name?: string } }>(
        '/tenants',
        {
          config: { access: { role: 'admin', action: 'tenant.create', allTenants: true } }, 
          schema: {
            tags: ['tenants'],
            summary: 'Create a tenant',
            body: { type: 'object', required: ['slug'], properties: { slug: { type: 'string' }, name: { type: 'string' } }, additionalProperties: false },
            response: { 400: errorResponse, 409: errorResponse },
          },
        },
        async (request, reply) => {
          const { slug, name } = request.body;
          const created = await new TenantService(deps.db).create(slug, name);
          noteTarget(request, { type: 'tenant', id: created.slug, tenantId: created.id });
          return reply.code(201).send(created);
        },
      );

      api.get<{ Params: { slug: string }; Querystring: SearchPage }>(
        '/tenants/:slug/users',
        { config: { access: { role: 'viewer', action: 'tenant.users', target: from('params', 'slug', locate.tenant) } }, schema: { tags: ['tenants'], summary: "A tenant's users (q: those whose userName, email or display name contain it)", params: slugParam, querystring: searchPage } },
        async (request) => pagedQuery(request.query, async (p) => new DirectoryRepository(deps.db).pageTenantUsers(await tenantId(request.params.slug), p)),
      );

      api.get<{ Params: { id: string } }>(
        '/accounts/:id',
        { config: { access: { role: 'viewer', action: 'account.read', target: from('params', 'id', locate.account) } }, schema: { tags: ['tenants'], summary: "An account's person with all their accounts across tenants: state, groups, lock and what happened to each (events, newest first)", params: idParam } },
        async (request) => {
          const person = await personOfAccount(deps.db, request.params.id);
          // A scoped token sees the person's accounts in its own tenant only.
          const own = principalOfRequest(request).tenantSlug;
          return own ? { ...person, accounts: person.accounts.filter((a) => a.tenant === own) } : person;
        },
      );

      api.get<{ Params: { id: string }; Querystring: SearchPage }>(
        '/groups/:id/members',
        { config: { access: { role: 'viewer', action: 'group.members', target: from('params', 'id', locate.group) } }, schema: { tags: ['tenants'], summary: "A group's members, as a tenant's users are listed (q: those whose userName, email or display name contain it)", params: idParam, querystring: searchPage } },
        async (request) => {
          const repo = new DirectoryRepository(deps.db);
          const group = isUuid(request.params.id) ? await repo.findGroup(request.params.id) : undefined;
          if (!group) throw new NotFoundError(`group ${request.params.id} does not exist: a tenant's groups list their ids`);
          return pagedQuery(request.query, (p) => repo.pageTenantUsers(group.tenantId, { ...p, inGroup: group.id }));
        },
      );

      api.get<{ Params: { slug: string }; Querystring: SearchPage }>(
        '/tenants/:slug/groups',
        { config: { access: { role: 'viewer', action: 'tenant.groups', target: from('params', 'slug', locate.tenant) } }, schema: { tags: ['tenants'], summary: "A tenant's groups (q: those whose name contains it)", params: slugParam, querystring: searchPage } },
        async (request) => pagedQuery(request.query, async (p) => new DirectoryRepository(deps.db).pageTenantGroups(await tenantId(request.params.slug), p)),
      );

      api.get<{ Querystring: { tenant?: string; after?: string; limit?: number } }>(
        '/events',
        {
          config: { access: { role: 'viewer', action: 'event.list', target: from('query', 'tenant', locate.tenant) } }, 
          schema: {
            tags: ['events'],
            summary: 'Events after a cursor, oldest first: {"events", "next"} (SPEC "Event"); reading after any cursor never skips one',
            querystring: {
              type: 'object',
              properties: { tenant: { type: 'string' }, after: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
              additionalProperties: false,
            },
            response: { 400: errorResponse, 404: errorResponse },
          },
        },
        // A scoped token reads its own tenant's feed, asked for or not.
        async (request) => readFeed(deps.db, request.query, scopeOf(request)),
      );

      const endpoints = () => new EndpointService(deps.db, deps.config);
      api.post<{ Body: { url: string; tenant?: string; types?: string[] } }>(
        '/endpoints',
        {
          config: { access: { role: 'admin', action: 'endpoint.create', target: from('body', 'tenant', locate.tenant, { type: 'endpoint', id: null, tenantId: null }), detail: (r) => pick(r.body, ['tenant', 'types']) } }, 
          schema: {
            tags: ['endpoints'],
            summary: 'Register an event endpoint; the answer carries its signing secret, shown only this once',
            body: {
              type: 'object',
              required: ['url'],
              properties: { url: { type: 'string' }, tenant: { type: 'string' }, types: { type: 'array', items: { type: 'string' }, minItems: 1 } },
              additionalProperties: false,
            },
            response: { 400: errorResponse, 404: errorResponse },
          },
        },
        async (request, reply) => {
          const { url, tenant, types } = request.body;
          const created = await endpoints().create({ url, ...(tenant !== undefined && { tenant }), ...(types && { types: types.join(',') }) });
          noteTarget(request, { type: 'endpoint', id: created.id, tenantId: scopeOf(request) ?? (tenant ? (await locate.tenant(tenant)(deps.db)).tenantId : null) });
          return reply.code(201).send(created);
        },
      );
      api.get('/endpoints', { config: { access: { role: 'viewer', action: 'endpoint.list' } }, schema: { tags: ['endpoints'], summary: 'Event endpoints (a scoped token: its tenant\'s)' } }, async (request) => {
        const own = principalOfRequest(request).tenantSlug;
        return { items: (await endpoints().list()).filter((e) => !own || e.tenant === own), next: null };
      });
      api.get<{ Params: { id: string } }>('/endpoints/:id', { config: { access: { role: 'viewer', action: 'endpoint.read', target: from('params', 'id', locate.endpoint) } }, schema: { tags: ['endpoints'], summary: 'One event endpoint', params: idParam } }, async (request) =>
        endpoints().show(request.params.id),
      );
      api.delete<{ Params: { id: string } }>(
        '/endpoints/:id',
        { config: { access: { role: 'admin', action: 'endpoint.delete', target: from('params', 'id', locate.endpoint) } }, schema: { tags: ['endpoints'], summary: 'Remove an event endpoint and its delivery history', params: idParam } },
        async (request, reply) => {
          await endpoints().delete(request.params.id);
          return reply.code(204).send();
        },
      );
      api.post<{ Params: { id: string }; Body: { grace?: string } | undefined }>(
        '/endpoints/:id/rotate-secret',
        {
          config: { access: { role: 'admin', action: 'endpoint.rotate-secret', target: from('params', 'id', locate.endpoint) } }, 
          schema: {
            tags: ['endpoints'],
            summary: 'A new signing secret (shown once); the old one also signs for the grace period',
            params: idParam,
            body: { type: ['object', 'null'], properties: { grace: { type: 'string' } }, additionalProperties: false },
          },
        },
        async (request) => endpoints().rotateSecret(request.params.id, request.body?.grace),
      );
      api.get<{ Params: { id: string }; Querystring: Page }>(
        '/endpoints/:id/deliveries',
        {
          config: { access: { role: 'viewer', action: 'endpoint.deliveries', target: from('params', 'id', locate.endpoint) } }, 
          schema: {
            tags: ['endpoints'],
            summary: 'Recent deliveries, newest first: attempts, last status, next attempt',
            params: idParam,
            querystring: page,
          },
        },
        async (request) => pagedQuery(request.query, (p) => endpoints().deliveries(request.params.id, p.limit, p.offset)),
      );
      api.post<{ Params: { id: string }; Body: { after: string } }>(
        '/endpoints/:id/replay',
        {
          config: { access: { role: 'admin', action: 'endpoint.replay', target: from('params', 'id', locate.endpoint), detail: (r) => pick(r.body, ['after']) } }, 
          schema: {
            tags: ['endpoints'],
            summary: 'Send again every event after a cursor (enables a disabled endpoint)',
            params: idParam,
            body: { type: 'object', required: ['after'], properties: { after: { type: 'string' } }, additionalProperties: false },
          },
        },
        // The worker's delivery trigger picks the endpoint up within seconds.
        async (request) => endpoints().replay(request.params.id, request.body.after),
      );

      api.get<{ Querystring: Page & { tenant?: string } }>(
        '/integrations',
        {
          config: { access: { role: 'viewer', action: 'integration.list', target: from('query', 'tenant', locate.tenant) } }, 
          schema: {
            tags: ['integrations'],
            summary: 'List integrations (a scoped token: its tenant\'s)',
            querystring: { ...page, properties: { ...page.properties, tenant: { type: 'string' } } },
          },
        },
        async (request) => {
          const service = integrations();
          const tenant = request.query.tenant ?? principalOfRequest(request).tenantSlug ?? undefined;
          return paged((await service.list(tenant)).map((i) => service.view(i)), request.query);
        },
      );

      api.post<{ Body: Omit<CreateIntegrationInput, 'threshold'> & { threshold?: number } }>(
        '/integrations',
        {
          config: { access: { role: 'admin', action: 'integration.create', target: from('body', 'tenant', locate.tenant), detail: (r) => ({ ...pick(r.body, ['provider']), fields: fieldsOf(r.body) }) } }, 
          schema: {
            tags: ['integrations'],
            summary: 'Connect a tenant to an IdP; the webhook secret (okta, authentik) or SCIM token (scim) is returned once',
            body: {
              type: 'object',
              required: ['tenant', 'provider'],
              properties: { tenant: { type: 'string' }, provider: { type: 'string', enum: ['okta', 'authentik', 'scim'] }, ...integrationOptions },
              additionalProperties: false,
            },
            response: { 400: errorResponse, 422: errorResponse },
          },
        },
        async (request, reply) => {
          const service = integrations();
          const body = request.body;
          const { integration, issued, check } = await service.create({ ...body, threshold: body.threshold?.toString() });
          noteTarget(request, { type: 'integration', id: integration.id, tenantId: integration.tenantId });
          await syncSchedule(deps.queue, integration);
          return reply.code(201).send({ ...service.view(integration), ...issued, check });
        },
      );

      api.post<{ Params: { id: string } }>(
        '/integrations/:id/test',
        { config: { access: { role: 'operator', action: 'integration.test', target: from('params', 'id', locate.integration) } }, schema: { tags: ['integrations'], summary: 'Read one page from every IdP endpoint a sync uses; report each', params: idParam } },
        async (request) => integrations().test(request.params.id),
      );

      api.get<{ Params: { id: string } }>('/integrations/:id', { config: { access: { role: 'viewer', action: 'integration.read', target: from('params', 'id', locate.integration) } }, schema: { tags: ['integrations'], summary: 'One integration', params: idParam } }, async (request) => {
        const service = integrations();
        return service.view(await service.get(request.params.id));
      });

      api.patch<{ Params: { id: string }; Body: Omit<IntegrationOptions, 'threshold'> & { threshold?: number } }>(
        '/integrations/:id',
        {
          config: { access: { role: 'admin', action: 'integration.update', target: from('params', 'id', locate.integration), detail: (r) => ({ fields: fieldsOf(r.body) }) } }, 
          schema: {
            tags: ['integrations'],
            summary: "Change an integration's settings or token",
            params: idParam,
            body: { type: 'object', properties: integrationOptions, additionalProperties: false, minProperties: 1 },
            response: { 400: errorResponse, 422: errorResponse },
          },
        },
        async (request) => {
          const service = integrations();
          const { integration: updated, check, scimToken } = await service.update(request.params.id, { ...request.body, threshold: request.body.threshold?.toString() });
          await syncSchedule(deps.queue, updated);
          return { ...service.view(updated), check, ...(scimToken && { scimToken }) };
        },
      );

      api.delete<{ Params: { id: string }; Querystring: { confirm?: string } }>(
        '/integrations/:id',
        {
          config: { access: { role: 'admin', action: 'integration.delete', target: from('params', 'id', locate.integration) } }, 
          schema: {
            tags: ['integrations'],
            summary: 'Delete an integration and the tenant state it provisioned; ?confirm=<the same id> is required',
            params: idParam,
            querystring: { type: 'object', properties: { confirm: { type: 'string', description: "the integration's id again" } }, additionalProperties: false },
          },
        },
        async (request, reply) => {
          if (request.query.confirm !== request.params.id) {
            throw new UserError(`deleting integration ${request.params.id} removes its groups, memberships and run history: repeat the request with ?confirm=${request.params.id} to confirm`);
          }
          await integrations().delete(request.params.id);
          await removeSchedule(deps.queue, request.params.id);
          return reply.code(204).send();
        },
      );

      for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
        api.post<{ Params: { id: string } }>(
          `/integrations/:id/${action}`,
          { config: { access: { role: 'admin', action: `integration.${action}`, target: from('params', 'id', locate.integration) } }, schema: { tags: ['integrations'], summary: enabled ? 'Resume runs and webhooks' : 'Stop scheduled runs; reject webhooks', params: idParam } },
          async (request) => {
            const service = integrations();
            const updated = await service.setEnabled(request.params.id, enabled);
            await syncSchedule(deps.queue, updated);
            return service.view(updated);
          },
        );
      }

      // Rotations: a new secret (returned once), the old one valid for an optional {"grace"}.
      const rotations = [
        ['rotate-webhook-secret', 'Issue a new webhook secret (returned once); the old one keeps working for a grace period', (id: string, grace?: string) => integrations().rotateWebhookSecret(id, grace)],
        ['rotate-scim-token', 'Issue a new SCIM bearer token for a scim integration (returned once); the old one keeps working for a grace period', (id: string, grace?: string) => integrations().rotateScimToken(id, grace)],
      ] as const;
      for (const [action, summary, rotate] of rotations) {
        api.post<{ Params: { id: string }; Body: { grace?: string } | undefined }>(
          `/integrations/:id/${action}`,
          {
            config: { access: { role: 'admin', action: `integration.${action}`, target: from('params', 'id', locate.integration) } }, 
            schema: {
              tags: ['integrations'],
              summary,
              params: idParam,
              body: {
                type: 'object',
                properties: { grace: { type: 'string', description: '0, or a duration such as 15m, 1h or 7d (at most 30d); default DIRSYNC_WEBHOOK_SECRET_GRACE' } },
                additionalProperties: false,
              },
            },
            // The body is optional: a request without one is validated as {}.
            preValidation: async (request) => {
              request.body ??= {};
            },
          },
          async (request) => rotate(request.params.id, request.body?.grace),
        );
      }

      api.get<{ Params: { id: string }; Querystring: Page }>(
        '/integrations/:id/runs',
        { config: { access: { role: 'viewer', action: 'integration.runs', target: from('params', 'id', locate.integration) } }, schema: { tags: ['runs'], summary: 'Runs of an integration, newest first', params: idParam, querystring: page } },
        async (request) => {
          await integrations().get(request.params.id);
          const { limit, offset } = request.query;
          const runs = await new RunRepository(deps.db).listForIntegration(request.params.id, offset + limit + 1);
          return paged(runs, { limit, offset });
        },
      );

      api.post<{ Params: { id: string }; Body: { dryRun?: boolean; full?: boolean; users?: string[] } | undefined }>(
        '/integrations/:id/sync',
        {
          config: { access: { role: 'operator', action: 'integration.sync', target: from('params', 'id', locate.integration), detail: (r) => ({ dryRun: (r.body as { dryRun?: unknown } | undefined)?.dryRun === true }) } }, 
          schema: {
            tags: ['runs'],
            summary: 'Run a reconcile now (queued): what changed since the last run, everything (`full`), or only the users named by login (`users`, a targeted run); a dry run records the plan only',
            params: idParam,
            body: {
              type: 'object',
              properties: {
                dryRun: { type: 'boolean' },
                full: { type: 'boolean' },
                users: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 }, minItems: 1, maxItems: 1000 },
              },
              additionalProperties: false,
            },
          },
        },
        async (request, reply) => {
          const body = request.body ?? {};
          const wish = syncWish({ dryRun: body.dryRun, full: body.full, users: body.users }, { users: 'users', full: 'full', dryRun: 'dryRun' });
          const { run: queued } = await requestRun(deps, request.params.id, 'manual', { dryRun: body.dryRun ?? false, wish });
          return reply.code(202).send(queued);
        },
      );

      api.get<{ Params: { id: string }; Querystring: Page }>(
        '/integrations/:id/webhooks',
        { config: { access: { role: 'viewer', action: 'integration.webhooks', target: from('params', 'id', locate.integration) } }, schema: { tags: ['integrations'], summary: 'Recent webhook deliveries, newest first', params: idParam, querystring: page } },
        async (request) => {
          await integrations().get(request.params.id);
          const { limit, offset } = request.query;
          return paged(await new WebhookRepository(deps.db).listDeliveries(request.params.id, offset + limit + 1), { limit, offset });
        },
      );

      api.get<{ Params: { id: string } }>('/runs/:id', { config: { access: { role: 'viewer', action: 'run.read', target: from('params', 'id', locate.run) } }, schema: { tags: ['runs'], summary: 'A run with its change log', params: idParam } }, async (request) => {
        const found = await run(request.params.id);
        return { ...found, changes: await new RunRepository(deps.db).listChanges(found.id) };
      });

      api.post<{ Params: { id: string } }>(
        '/runs/:id/approve',
        { config: { access: { role: 'operator', action: 'run.approve', target: from('params', 'id', locate.run) } }, schema: { tags: ['runs'], summary: "Approve a held run: queues a run that applies its still-warranted removals", params: idParam } },
        async (request, reply) => reply.code(202).send(await approveRun(deps, request.params.id)),
      );

      api.post<{ Params: { id: string } }>(
        '/runs/:id/reject',
        { config: { access: { role: 'operator', action: 'run.reject', target: from('params', 'id', locate.run) } }, schema: { tags: ['runs'], summary: 'Reject a held run: its held removals are recorded as skipped, never applied', params: idParam } },
        async (request) => rejectRun(deps, request.params.id, principalOfRequest(request).actor),
      );

      const tokens = () => new TokenService(deps.db);
      api.get('/tokens', { config: { access: { role: 'admin', action: 'token.list', allTenants: true } }, schema: { tags: ['tokens'], summary: 'API tokens, revoked ones too (never their text)' } }, async () => ({ items: await tokens().list(), next: null }));
      api.post<{ Body: { role: string; tenant?: string; name?: string } }>(
        '/tokens',
        {
          config: { access: { role: 'admin', action: 'token.create', allTenants: true, detail: (r) => pick(r.body, ['role', 'tenant', 'name']) } }, 
          schema: {
            tags: ['tokens'],
            summary: 'Issue a token: {"id","name","role","tenant","token"}; the token is shown only this once',
            body: {
              type: 'object',
              required: ['role'],
              properties: { role: { type: 'string', enum: ['viewer', 'operator', 'admin'] }, tenant: { type: 'string' }, name: { type: 'string' } },
              additionalProperties: false,
            },
            response: { 400: errorResponse, 404: errorResponse },
          },
        },
        async (request, reply) => {
          const issued = await tokens().create({ ...request.body, createdBy: principalOfRequest(request).actor });
          noteTarget(request, { type: 'token', id: issued.id, tenantId: null });
          return reply.code(201).send(issued);
        },
      );
      api.post<{ Params: { id: string } }>(
        '/tokens/:id/revoke',
        { config: { access: { role: 'admin', action: 'token.revoke', allTenants: true } }, schema: { tags: ['tokens'], summary: 'Revoke a token: its requests and console sessions are refused from now on', params: idParam } },
        async (request) => {
          noteTarget(request, { type: 'token', id: request.params.id, tenantId: null });
          return tokens().revoke(request.params.id);
        },
      );

      api.get<{ Querystring: Page & { since?: string } }>(
        '/audit',
        {
          config: { access: { role: 'admin', action: 'audit.read' } }, 
          schema: {
            tags: ['audit'],
            summary: 'Admin actions, newest first: who, what, target, when, from where, outcome (since: a duration back, default 24h); a scoped admin sees its tenant\'s',
            querystring: { ...page, properties: { ...page.properties, since: { type: 'string' } } },
          },
        },
        async (request) => {
          const since = parseSince(request.query.since ?? '24h');
          const { limit, offset } = request.query;
          const rows = await new AuditRepository(deps.db).list({ since, limit: offset + limit + 1, tenantId: scopeOf(request) });
          return paged(rows, { limit, offset });
        },
      );
    },
    { prefix: '/api/v1' },
  );
}
