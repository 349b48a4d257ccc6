import { randomUUID } from 'node:crypto';

/** One System Log event inside an event hook delivery. */
export interface OktaHookEvent {
  readonly eventType: string;
  readonly target?: ReadonlyArray<{ id: string; type: string; alternateId?: string; displayName?: string }>;
  readonly uuid?: string;
  readonly displayMessage?: string;
}

/**
 * An Okta event hook delivery, as Okta POSTs it to an event hook's URL: the CloudEvents-style
 * envelope (`eventType: "com.okta.event_hook"`, `data.events`) around System Log events
 * (developer.okta.com, "Event hooks": sample event hook payload). The demo's Okta sends these
 * to dirsync's webhook receiver; tests replay them.
 */
export function oktaEventHookDelivery(events: ReadonlyArray<OktaHookEvent>) {
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
        displayMessage: e.displayMessage ?? e.eventType,
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

