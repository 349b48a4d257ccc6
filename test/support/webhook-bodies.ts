import { randomUUID } from 'node:crypto';

/** An Okta event hook delivery, as Okta POSTs it: the demo's builder. */
export { oktaEventHookDelivery as oktaDelivery } from '../../src/demo/okta-event-hook.js';

/** authentik's default notification webhook body (no body mapping). */
export function authentikDefaultBody() {
  return {
    body: 'Event Notification: model_deleted',
    severity: 'notice',
    user_email: 'admin@acme.test',
    user_username: 'akadmin',
    event_user_email: 'admin@acme.test',
    event_user_username: 'akadmin',
  };
}

/** What the body mapping in the README sends. */
export function authentikMappedBody(action: string, model?: { app: string; model_name: string; pk: string | number; name: string }) {
  return {
    ...authentikDefaultBody(),
    event_id: randomUUID(),
    action,
    model: model ?? null,
  };
}
