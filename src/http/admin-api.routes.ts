import { createHash, timingSafeEqual } from 'node:crypto';
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
import { approveRun, rejectRun, requestRun } from '../runs/trigger.js';
import { personOfAccount } from '../directory/person-view.js';
import { TenantService } from '../tenants/tenant.service.js';

export interface AdminApiDeps {
  readonly db: Db;
  readonly config: Config;
  readonly queue: DirsyncQueue;
}

/** Constant-time comparison of a presented bearer token with the configured admin token. */
export function adminTokenMatches(presented: string | undefined, expected: string | undefined): boolean {
  if (!presented || !expected) return false;
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
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

/**
 * The admin JSON API under /api/v1, behind `Authorization: Bearer $DIRSYNC_ADMIN_TOKEN`.
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
      api.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        if (request.url.startsWith('/api/v1/openapi.json')) return;
        if (!deps.config.adminToken) {
          return reply.code(503).send({ error: { code: 'disabled', message: 'the admin API is off: set DIRSYNC_ADMIN_TOKEN to turn it on' } });
        }
        if (!adminTokenMatches(bearerOf(request), deps.config.adminToken)) {
          return reply.code(401).send({ error: { code: 'unauthorized', message: 'missing or wrong bearer token' } });
        }
      });

      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

      api.get('/tenants', { schema: { tags: ['tenants'], summary: 'List tenants', querystring: page } }, async (request) =>
        paged(await new TenantRepository(deps.db).list(), request.query as Page),
      );

      api.post<{ Body: { slug: string; name?: string } }>(
        '/tenants',
        {
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
          return reply.code(201).send(created);
        },
      );

      api.get<{ Params: { slug: string }; Querystring: SearchPage }>(
        '/tenants/:slug/users',
        { schema: { tags: ['tenants'], summary: "A tenant's users (q: those whose userName, email or display name contain it)", params: slugParam, querystring: searchPage } },
        async (request) => pagedQuery(request.query, async (p) => new DirectoryRepository(deps.db).pageTenantUsers(await tenantId(request.params.slug), p)),
      );

      api.get<{ Params: { id: string } }>(
        '/accounts/:id',
        { schema: { tags: ['tenants'], summary: "An account's person with all their accounts across tenants: state, groups, lock and what happened to each (events, newest first)", params: idParam } },
        async (request) => personOfAccount(deps.db, request.params.id),
      );

      api.get<{ Params: { id: string }; Querystring: SearchPage }>(
        '/groups/:id/members',
        { schema: { tags: ['tenants'], summary: "A group's members, as a tenant's users are listed (q: those whose userName, email or display name contain it)", params: idParam, querystring: searchPage } },
        async (request) => {
          const repo = new DirectoryRepository(deps.db);
          const group = isUuid(request.params.id) ? await repo.findGroup(request.params.id) : undefined;
          if (!group) throw new NotFoundError(`group ${request.params.id} does not exist: a tenant's groups list their ids`);
          return pagedQuery(request.query, (p) => repo.pageTenantUsers(group.tenantId, { ...p, inGroup: group.id }));
        },
      );

      api.get<{ Params: { slug: string }; Querystring: SearchPage }>(
        '/tenants/:slug/groups',
        { schema: { tags: ['tenants'], summary: "A tenant's groups (q: those whose name contains it)", params: slugParam, querystring: searchPage } },
        async (request) => pagedQuery(request.query, async (p) => new DirectoryRepository(deps.db).pageTenantGroups(await tenantId(request.params.slug), p)),
      );

      api.get<{ Querystring: { tenant?: string; after?: string; limit?: number } }>(
        '/events',
        {
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
        async (request) => readFeed(deps.db, request.query),
      );

      const endpoints = () => new EndpointService(deps.db, deps.config);
      api.post<{ Body: { url: string; tenant?: string; types?: string[] } }>(
        '/endpoints',
        {
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
          return reply.code(201).send(await endpoints().create({ url, ...(tenant !== undefined && { tenant }), ...(types && { types: types.join(',') }) }));
        },
      );
      api.get('/endpoints', { schema: { tags: ['endpoints'], summary: 'Event endpoints' } }, async () => ({ items: await endpoints().list(), next: null }));
      api.get<{ Params: { id: string } }>('/endpoints/:id', { schema: { tags: ['endpoints'], summary: 'One event endpoint', params: idParam } }, async (request) =>
        endpoints().show(request.params.id),
      );
      api.delete<{ Params: { id: string } }>(
        '/endpoints/:id',
        { schema: { tags: ['endpoints'], summary: 'Remove an event endpoint and its delivery history', params: idParam } },
        async (request, reply) => {
          await endpoints().delete(request.params.id);
          return reply.code(204).send();
        },
      );
      api.post<{ Params: { id: string }; Body: { grace?: string } | undefined }>(
        '/endpoints/:id/rotate-secret',
        {
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
          schema: {
            tags: ['integrations'],
            summary: 'List integrations',
            querystring: { ...page, properties: { ...page.properties, tenant: { type: 'string' } } },
          },
        },
        async (request) => {
          const service = integrations();
          return paged((await service.list(request.query.tenant)).map((i) => service.view(i)), request.query);
        },
      );

      api.post<{ Body: Omit<CreateIntegrationInput, 'threshold'> & { threshold?: number } }>(
        '/integrations',
        {
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
          await syncSchedule(deps.queue, integration);
          return reply.code(201).send({ ...service.view(integration), ...issued, check });
        },
      );

      api.post<{ Params: { id: string } }>(
        '/integrations/:id/test',
        { schema: { tags: ['integrations'], summary: 'Read one page from every IdP endpoint a sync uses; report each', params: idParam } },
        async (request) => integrations().test(request.params.id),
      );

      api.get<{ Params: { id: string } }>('/integrations/:id', { schema: { tags: ['integrations'], summary: 'One integration', params: idParam } }, async (request) => {
        const service = integrations();
        return service.view(await service.get(request.params.id));
      });

      api.patch<{ Params: { id: string }; Body: Omit<IntegrationOptions, 'threshold'> & { threshold?: number } }>(
        '/integrations/:id',
        {
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
          const { integration: updated, check } = await service.update(request.params.id, { ...request.body, threshold: request.body.threshold?.toString() });
          await syncSchedule(deps.queue, updated);
          return { ...service.view(updated), check };
        },
      );

      api.delete<{ Params: { id: string } }>(
        '/integrations/:id',
        { schema: { tags: ['integrations'], summary: 'Delete an integration and the tenant state it provisioned', params: idParam } },
        async (request, reply) => {
          await integrations().delete(request.params.id);
          await removeSchedule(deps.queue, request.params.id);
          return reply.code(204).send();
        },
      );

      for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
        api.post<{ Params: { id: string } }>(
          `/integrations/:id/${action}`,
          { schema: { tags: ['integrations'], summary: enabled ? 'Resume runs and webhooks' : 'Stop scheduled runs; reject webhooks', params: idParam } },
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
        { schema: { tags: ['runs'], summary: 'Runs of an integration, newest first', params: idParam, querystring: page } },
        async (request) => {
          await integrations().get(request.params.id);
          const { limit, offset } = request.query;
          const runs = await new RunRepository(deps.db).listForIntegration(request.params.id, offset + limit + 1);
          return paged(runs, { limit, offset });
        },
      );

      api.post<{ Params: { id: string }; Body: { dryRun?: boolean } | undefined }>(
        '/integrations/:id/sync',
        {
          schema: {
            tags: ['runs'],
            summary: 'Run a reconcile now (queued); a dry run records the plan only',
            params: idParam,
            body: { type: 'object', properties: { dryRun: { type: 'boolean' } }, additionalProperties: false },
          },
        },
        async (request, reply) => {
          const { run: queued } = await requestRun(deps, request.params.id, 'manual', { dryRun: request.body?.dryRun ?? false });
          return reply.code(202).send(queued);
        },
      );

      api.get<{ Params: { id: string }; Querystring: Page }>(
        '/integrations/:id/webhooks',
        { schema: { tags: ['integrations'], summary: 'Recent webhook deliveries, newest first', params: idParam, querystring: page } },
        async (request) => {
          await integrations().get(request.params.id);
          const { limit, offset } = request.query;
          return paged(await new WebhookRepository(deps.db).listDeliveries(request.params.id, offset + limit + 1), { limit, offset });
        },
      );

      api.get<{ Params: { id: string } }>('/runs/:id', { schema: { tags: ['runs'], summary: 'A run with its change log', params: idParam } }, async (request) => {
        const found = await run(request.params.id);
        return { ...found, changes: await new RunRepository(deps.db).listChanges(found.id) };
      });

      api.post<{ Params: { id: string } }>(
        '/runs/:id/approve',
        { schema: { tags: ['runs'], summary: "Approve a held run: queues a run that applies its still-warranted removals", params: idParam } },
        async (request, reply) => reply.code(202).send(await approveRun(deps, request.params.id)),
      );

      api.post<{ Params: { id: string } }>(
        '/runs/:id/reject',
        { schema: { tags: ['runs'], summary: 'Reject a held run: its held removals are recorded as skipped, never applied', params: idParam } },
        async (request) => rejectRun(deps, request.params.id, 'an API caller'),
      );
    },
    { prefix: '/api/v1' },
  );
}
