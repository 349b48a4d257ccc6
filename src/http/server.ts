import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Db } from '../db/database.js';
import type { Logger } from '../log.js';
import type { DirsyncQueue } from '../queue/queue.js';
import { registerWebhookRoutes } from './webhook.routes.js';
import { registerScimRoutes, sendScimError } from './scim.routes.js';
import { ScimError } from '../scim/scim.errors.js';
import swagger from '@fastify/swagger';
import { ConfigError, type Config } from '../config.js';
import { ConflictError, NotFoundError, UserError } from '../errors.js';
import { VerificationError } from '../integrations/connection-check.js';
import { registerAdminApi } from './admin-api.routes.js';
import { registerAdminPages } from './admin-pages.js';
import { registerMetrics } from './metrics.js';
import { apiWording } from './api-wording.js';
import { isDataError, refusedValue } from '../db/database.js';
import { queueHealth } from '../queue/liveness.js';

export interface ServerDeps {
  readonly db: Db;
  readonly config: Config;
  readonly redis: Redis;
  readonly queue: DirsyncQueue;
  readonly log: Logger;
}

/** The HTTP server: webhooks and health; the admin API mounts here too. */
export function buildServer(deps: ServerDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // A base URL pasted with a trailing slash (…/scim/v2/<id>/ + /Users) still finds its route.
    routerOptions: { ignoreDuplicateSlashes: true },
    // One log line per request would drown the logs under a webhook burst.
    logController: new LogController({ disableRequestLogging: true }),
    // Unknown fields are refused, not silently dropped: a typo must not look like success.
    ajv: { customOptions: { removeAdditional: false } },
    // A malformed or over-long URL is answered before routing: in the format of the API it was meant for.
    frameworkErrors: (error, request, reply) => {
      const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      const message = status === 414 ? 'a path segment is too long' : 'the URL is malformed';
      if (request.url.startsWith('/scim/')) return sendScimError(reply as FastifyReply, new ScimError(status, message));
      return (reply as FastifyReply).code(status).send(request.url.startsWith('/api/') ? { error: { code: 'bad_request', message } } : { error: message });
    },
  });

  // Errors: a person's mistake (bad input, unknown id) is a 4xx naming it; bad JSON 400, too
  // large 413; anything unexpected (Postgres away) 503, so that an IdP delivers again instead
  // of dropping the event. The admin API wraps them as {"error": {"code", "message"}}.
  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown }, request, response) => {
    if (error instanceof VerificationError && request.url.startsWith('/api/')) {
      return response.code(422).send({ error: { code: 'verification_failed', message: error.message, check: error.report } });
    }
    // A value Postgres refuses (a NUL in a name, a number out of range) is the request's fault:
    // 400, never 503, which would tell an IdP or a script to send the same thing again.
    const refused = isDataError(error);
    const status =
      error instanceof NotFoundError
        ? 404
        : error instanceof ConflictError
          ? 409
          : error instanceof UserError || error instanceof ConfigError || refused
          ? 400
          : error.statusCode && error.statusCode < 500
            ? error.statusCode
            : 503;
    if (status >= 500) deps.log.error({ err: error.message, url: request.url }, 'request failed');
    const message = status >= 500 ? 'temporarily unavailable; try again' : refused ? refusedValue(error) : error.message;
    if (!request.url.startsWith('/api/')) return response.code(status).send({ error: message });
    const code = status === 403 ? 'forbidden' : status === 404 ? 'not_found' : status === 409 ? 'conflict' : status === 413 ? 'too_large' : status >= 500 ? 'unavailable' : 'bad_request';
    return response.code(status).send({ error: { code, message: apiWording(message) } });
  });
  app.setNotFoundHandler((request, response) =>
    response.code(404).send(request.url.startsWith('/api/') ? { error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } } : { error: 'not found' }),
  );

  app.register(swagger, {
    openapi: {
      info: { title: 'dirsync admin API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    // The description covers the admin API; webhooks, pages and metrics are documented in the README.
    transform: ({ schema, url }) => ({ schema: url.startsWith('/api/v1/') ? schema : { ...schema, hide: true }, url }),
  });
  registerWebhookRoutes(app, deps);
  registerScimRoutes(app, { ...deps, publicUrl: deps.config.publicUrl });
  registerAdminApi(app, deps);
  registerAdminPages(app, deps);

  registerMetrics(app, deps);

  // Browsers ask every page's origin for one; no icon, and no 404 in the logs for it.
  app.get('/favicon.ico', { logLevel: 'silent' }, async (_request, reply) => reply.code(204).send());

  // Degraded (503, saying why) when Postgres or Redis does not answer, the queue is paused, no
  // worker has been heard from lately, or jobs wait untaken (src/queue/liveness.ts). Cheap: a
  // `select 1`, a ping and a few Redis reads, so an orchestrator may poll it every few seconds.
  app.get('/healthz', async (_request, reply) => {
    const [postgres, redis] = await Promise.all([
      sql`select 1`.execute(deps.db).then(
        () => 'ok',
        (error: Error) => error.message,
      ),
      deps.redis.ping().then(
        () => 'ok',
        (error: Error) => error.message,
      ),
    ]);
    const reasons: string[] = [];
    if (postgres !== 'ok') reasons.push('postgres does not answer');
    if (redis !== 'ok') reasons.push('redis does not answer');
    const queue = redis === 'ok' ? await queueHealth(deps.redis, deps.queue).catch(() => undefined) : undefined;
    if (queue) reasons.push(...queue.reasons);
    const ok = reasons.length === 0;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', reasons, postgres, redis, workers: queue?.workers ?? null, queuePaused: queue?.paused ?? null });
  });

  return app;
}
