import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { secretMatchesEither } from '../crypto.js';
import type { Db } from '../db/database.js';
import { IntegrationRepository } from '../db/integration.repository.js';
import { isUuid } from '../db/run.repository.js';
import type { Logger } from '../log.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { queuePushRun } from '../runs/trigger.js';
import { ScimError, badRequest, notFound } from '../scim/scim.errors.js';
import { type ListQuery, ScimService, type ScimTarget } from '../scim/scim.service.js';
import { readProjection } from '../scim/scim.resource.js';
import { scimRequestDuration } from '../scim/scim-metrics.js';
import { resourceTypeDocuments, schemaDocuments, serviceProviderConfig } from '../scim/scim.schemas.js';
import { presentedSecret } from '../webhooks/receive.js';

export interface ScimRouteDeps {
  readonly db: Db;
  readonly queue: DirsyncQueue;
  readonly log: Logger;
  readonly publicUrl: string;
}

/** Largest SCIM body taken (a group PUT carries all its members); larger ones are answered 413. */
export const SCIM_BODY_LIMIT = 8 * 1024 * 1024;

/** How long a push waits for the queue; past it the run stays queued and the worker's sweep enqueues it. */
const ENQUEUE_TIMEOUT_MS = 1_000;

const SCIM_JSON = 'application/scim+json; charset=utf-8';

declare module 'fastify' {
  interface FastifyRequest {
    scimTarget?: ScimTarget;
  }
}

/**
 * `/scim/v2/:integrationId/...`: the SCIM 2.0 service provider of each scim integration
 * (RFC 7644), bearer-authenticated by the integration's SCIM token. Every answer, errors
 * included, is `application/scim+json`; errors use the SCIM Error schema. Anything
 * unexpected (Postgres away) is a 503, so the IdP retries the push.
 */
export function registerScimRoutes(app: FastifyInstance, deps: ScimRouteDeps): void {
  app.register(
    async (scim) => {
      scim.addContentTypeParser(['application/scim+json', 'application/json'], { parseAs: 'string', bodyLimit: SCIM_BODY_LIMIT }, (_request, body, done) => {
        if (body === '') return done(null, undefined);
        try {
          done(null, JSON.parse(body as string));
        } catch (error) {
          done(badRequest('invalidSyntax', `the body is not valid JSON: ${(error as Error).message}`), undefined);
        }
      });
      scim.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
        if (error instanceof ScimError) return sendScimError(reply, error);
        if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendScimError(reply, new ScimError(413, `the body is larger than ${SCIM_BODY_LIMIT} bytes`));
        if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendScimError(reply, new ScimError(415, 'send the body as application/scim+json or application/json'));
        if (error.statusCode && error.statusCode < 500) return sendScimError(reply, new ScimError(error.statusCode, error.message));
        deps.log.error({ err: error.message, url: request.url.split('?')[0] }, 'SCIM request failed');
        return sendScimError(reply, new ScimError(503, 'temporarily unavailable; try again'));
      });
      scim.setNotFoundHandler((request, reply) => sendScimError(reply, notFound(`no SCIM endpoint ${request.method} ${request.url.split('?')[0]}`)));
      scim.addHook('onResponse', async (request, reply) => {
        const resource = /\/scim\/v2\/[^/]+\/([A-Za-z]+)/.exec(request.url)?.[1] ?? '';
        const known = ['Users', 'Groups', 'ServiceProviderConfig', 'ResourceTypes', 'Schemas', 'Bulk'].includes(resource) ? resource : 'other';
        scimRequestDuration.observe({ method: request.method, resource: known, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
      });
      scim.addHook('onRequest', async (request) => {
        request.scimTarget = await authenticate(deps, (request.params as { integrationId?: string }).integrationId ?? '', request.headers.authorization);
      });

      const service = new ScimService(deps.db, async (integrationId) => {
        await queuePushRun(deps, integrationId, ENQUEUE_TIMEOUT_MS).catch((error: unknown) => {
          // The push is stored and its run recorded as queued: the worker's sweep enqueues it.
          deps.log.warn({ err: (error as Error).message, integrationId }, 'SCIM push stored; its run waits for the queue');
        });
      });
      const target = (request: FastifyRequest) => request.scimTarget!;
      type Req = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, unknown> }>;
      const send = (reply: FastifyReply, status: number, body: unknown) => reply.code(status).type(SCIM_JSON).send(body);
      const created = (reply: FastifyReply, body: { meta?: { location?: string } } & Record<string, unknown>) => {
        if (body.meta?.location) reply.header('location', body.meta.location);
        return send(reply, 201, body);
      };

      scim.get('/ServiceProviderConfig', async (request, reply) => send(reply, 200, serviceProviderConfig(target(request).baseUrl)));
      scim.get('/ResourceTypes', async (request, reply) => send(reply, 200, listOf(resourceTypeDocuments(target(request).baseUrl))));
      scim.get('/ResourceTypes/:id', async (request: Req, reply) => {
        const found = resourceTypeDocuments(target(request).baseUrl).find((r) => r.id === request.params.id);
        if (!found) throw notFound(`ResourceType ${request.params.id} not found`);
        return send(reply, 200, found);
      });
      scim.get('/Schemas', async (request, reply) => send(reply, 200, listOf(schemaDocuments(target(request).baseUrl))));
      scim.get('/Schemas/:id', async (request: Req, reply) => {
        const found = schemaDocuments(target(request).baseUrl).find((s) => s.id === request.params.id);
        if (!found) throw notFound(`Schema ${request.params.id} not found`);
        return send(reply, 200, found);
      });

      scim.get('/Users', async (request: Req, reply) => send(reply, 200, await service.listUsers(target(request), listQuery(request.query))));
      scim.post('/Users', async (request, reply) => created(reply, await service.createUser(target(request), request.body)));
      scim.get('/Users/:id', async (request: Req, reply) => send(reply, 200, await service.getUser(target(request), request.params.id, readProjection(request.query))));
      scim.put('/Users/:id', async (request: Req, reply) => send(reply, 200, await service.replaceUser(target(request), request.params.id, request.body)));
      scim.patch('/Users/:id', async (request: Req, reply) => send(reply, 200, await service.patchUser(target(request), request.params.id, request.body)));
      scim.delete('/Users/:id', async (request: Req, reply) => {
        await service.deleteUser(target(request), request.params.id);
        return reply.code(204).send();
      });

      scim.get('/Groups', async (request: Req, reply) => send(reply, 200, await service.listGroups(target(request), listQuery(request.query))));
      scim.post('/Groups', async (request, reply) => created(reply, await service.createGroup(target(request), request.body)));
      scim.get('/Groups/:id', async (request: Req, reply) => send(reply, 200, await service.getGroup(target(request), request.params.id, readProjection(request.query))));
      scim.put('/Groups/:id', async (request: Req, reply) => send(reply, 200, await service.replaceGroup(target(request), request.params.id, request.body)));
      scim.patch('/Groups/:id', async (request: Req, reply) => {
        const group = await service.patchGroup(target(request), request.params.id, request.body, readProjection(request.query));
        return group ? send(reply, 200, group) : reply.code(204).send();
      });
      scim.delete('/Groups/:id', async (request: Req, reply) => {
        await service.deleteGroup(target(request), request.params.id);
        return reply.code(204).send();
      });

      // POST /.search (RFC 7644 §3.4.3): the list query in a body instead of the URL.
      for (const [path, list] of [
        ['/Users/.search', (t: ScimTarget, q: ListQuery) => service.listUsers(t, q)],
        ['/Groups/.search', (t: ScimTarget, q: ListQuery) => service.listGroups(t, q)],
      ] as const) {
        scim.post(path, async (request, reply) => send(reply, 200, await list(target(request), readSearchBody(request.body))));
      }

      scim.post('/Bulk', async () => {
        throw new ScimError(501, 'bulk operations are not supported (ServiceProviderConfig bulk.supported is false)');
      });
    },
    { prefix: '/scim/v2/:integrationId' },
  );
}

/** The list query parameters (RFC 7644 §3.4.2), all strings as a URL gives them. */
function listQuery(query: Record<string, unknown>): ListQuery {
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { filter: text(query.filter), startIndex: text(query.startIndex), count: text(query.count), ...readProjection(query) };
}

/** A SearchRequest body (RFC 7644 §3.4.3) as list query parameters. */
function readSearchBody(body: unknown): ListQuery {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', 'the body must be a SearchRequest JSON object');
  const b = body as Record<string, unknown>;
  const text = (v: unknown, name: string) => {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && name !== 'filter') return String(v);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string') && name.endsWith('ttributes')) return v.join(',');
    throw badRequest('invalidValue', `${name} has the wrong type`);
  };
  const projection = readProjection({ attributes: text(b.attributes, 'attributes'), excludedAttributes: text(b.excludedAttributes, 'excludedAttributes') });
  return { filter: text(b.filter, 'filter'), startIndex: text(b.startIndex, 'startIndex'), count: text(b.count, 'count'), ...projection };
}

function listOf(resources: Record<string, unknown>[]) {
  return { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: resources.length, itemsPerPage: resources.length, startIndex: 1, Resources: resources };
}

/** Answers with the SCIM Error schema (RFC 7644 §3.12), as application/scim+json. */
export function sendScimError(reply: FastifyReply, error: ScimError) {
  if (error.status === 401) reply.header('www-authenticate', 'Bearer realm="dirsync SCIM"');
  return reply.code(error.status).type(SCIM_JSON).send(error.body);
}

/**
 * Unknown integration, or one that takes no pushes: 404. Missing or wrong token: 401 (a
 * rotated-out token counts as right until its grace period ends). Disabled: 403. In that
 * order, so nobody without the token learns anything but that the address exists.
 */
async function authenticate(deps: ScimRouteDeps, integrationId: string, authorization: string | undefined): Promise<ScimTarget> {
  const found = isUuid(integrationId) ? await new IntegrationRepository(deps.db).findScimAuth(integrationId) : undefined;
  if (!found) throw notFound(`no SCIM integration ${integrationId}`);
  // `Bearer <token>` (RFC 6750), or the bare token as some IdP settings send what was pasted.
  const token = presentedSecret(authorization);
  if (!token || !secretMatchesEither(token, found)) throw new ScimError(401, 'missing or wrong SCIM token: send Authorization: Bearer <scimToken>');
  if (!found.enabled) throw new ScimError(403, 'the integration is disabled');
  return { integrationId, baseUrl: `${deps.publicUrl}/scim/v2/${integrationId}` };
}
