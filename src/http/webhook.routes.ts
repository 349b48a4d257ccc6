import type { FastifyInstance } from 'fastify';
import { authorize, receiveWebhook, type WebhookDeps } from '../webhooks/receive.js';

/**
 * POST /webhooks/:id takes IdP event deliveries; GET answers Okta's one-time verification
 * challenge. Anything unexpected (Postgres away) is a 503, so the IdP delivers again.
 */
export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookDeps): void {
  app.get<{ Params: { id: string } }>('/webhooks/:id', async (request, response) => {
    const auth = await authorize(deps.db, request.params.id, request.headers.authorization);
    if (!auth.ok) return response.code(auth.reply.status).send(auth.reply.body);
    const challenge = request.headers['x-okta-verification-challenge'];
    if (typeof challenge !== 'string' || challenge === '') {
      return response.code(400).send({ error: 'expected the X-Okta-Verification-Challenge header of an Okta event hook verification' });
    }
    return response.send({ verification: challenge });
  });

  app.post<{ Params: { id: string } }>('/webhooks/:id', async (request, response) => {
    const result = await receiveWebhook(deps, {
      integrationId: request.params.id,
      authorization: request.headers.authorization,
      body: request.body,
    });
    return response.code(result.status).send(result.body);
  });
}
