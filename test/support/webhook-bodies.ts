import { randomUUID } from 'node:crypto';

/** An Okta event hook delivery, as Okta POSTs it (developer.okta.com event hook payload). */
export function oktaDelivery(events: { eventType: string; target?: { id: string; type: string; alternateId?: string; displayName?: string }[]; uuid?: string }[]) {
  const now = new Date().toISOString();
  return {
    eventType: 'com.okta.event_hook',
    eventTypeVersion: '1.0',
    cloudEventsVersion: '0.1',
    source: 'https://acme.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3',
    eventId: randomUUID(),
    data: {
      events: events.map((e) => ({
        uuid: e.uuid ?? randomUUID(),
        published: now,
        eventType: e.eventType,
        version: '0',
        displayMessage: 'Deactivate Okta user',
        severity: 'INFO',
        client: { userAgent: null, zone: null, device: null, id: null, ipAddress: null, geographicalContext: null },
        device: null,
        actor: { id: '00u1admin', type: 'User', alternateId: 'admin@acme.test', displayName: 'Admin', detailEntry: null },
        outcome: { result: 'SUCCESS', reason: null },
        target: e.target ?? [{ id: '00uAnn', type: 'User', alternateId: 'ann@acme.test', displayName: 'Ann Lee', detailEntry: null }],
        transaction: { type: 'WEB', id: 'YjL1XxEi6TcTjFhQ2xPzHQAABAo', detail: {} },
        debugContext: { debugData: {} },
        legacyEventType: 'core.user.config.user_deactivated',
        authenticationContext: { authenticationStep: 0, externalSessionId: 'trs1' },
        securityContext: { asNumber: null, asOrg: null, isp: null, domain: null, isProxy: null },
        insertionTimestamp: null,
      })),
    },
    eventTime: now,
    contentType: 'application/json',
  };
}

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
