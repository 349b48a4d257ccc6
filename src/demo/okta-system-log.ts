/**
 * The demo Okta org's System Log (`GET /api/v1/logs`): the events each change of its directory
 * writes, in Okta's LogEvent shape, and the `filter` expressions the API takes. Sources: the
 * System Log API reference (developer.okta.com, "System Log API": LogEvent object, polling
 * requests, filter on eventType / target.id / actor.id) as IDP-FACTS.md "Okta System Log" records
 * it; event targets as real events carry them (src/connectors/okta/okta.events.ts cites samples).
 */

/** One target of an event: `{id, type, alternateId, displayName}` (plus `detailEntry`, null here). */
export interface LogTarget {
  readonly id: string;
  readonly type: 'User' | 'UserGroup' | 'AppInstance' | 'AppUser';
  readonly alternateId: string;
  readonly displayName: string;
}

/** An event as the org keeps it: what the API shows is built from this when it is read. */
export interface LoggedEvent {
  readonly uuid: string;
  /** When the log stored it (ms since the epoch): what a polling query's `since` compares. */
  readonly persistedAt: number;
  /** ISO 8601; Okta does not promise it in persistence order, and tests may skew it. */
  readonly published: string;
  readonly eventType: string;
  readonly displayMessage: string;
  readonly target: readonly LogTarget[];
}

/** The admin every change of the demo org is made by. */
export const LOG_ACTOR = { id: '00uAdminDemo0000', type: 'User', alternateId: 'admin@okta.test', displayName: 'Okta Admin', detailEntry: null } as const;

/** How far back `since` may reach: further gives 400 (IDP-FACTS: "A since older than 180 days gives 400"). */
export const SINCE_LIMIT_MS = 180 * 24 * 3600_000;

/** What Okta says of each event type (the Event Types catalog's descriptions, shortened as Okta's displayMessage is). */
export const DISPLAY_MESSAGES: Readonly<Record<string, string>> = {
  'user.lifecycle.create': 'Create Okta user',
  'user.lifecycle.activate': 'Activate Okta user',
  'user.lifecycle.deactivate': 'Deactivate Okta user',
  'user.lifecycle.suspend': 'Suspend Okta user',
  'user.lifecycle.unsuspend': 'Unsuspend Okta user',
  'user.lifecycle.delete.initiated': 'Delete Okta user',
  'user.account.update_profile': 'Update user profile for Okta',
  'group.lifecycle.create': 'Create okta group',
  'group.lifecycle.delete': 'Delete okta group',
  'group.profile.update': 'Update group profile',
  'group.user_membership.add': 'Add user to group membership',
  'group.user_membership.remove': 'Remove user from group membership',
  'application.user_membership.add': 'Add user to application membership',
  'application.user_membership.remove': 'Remove user from application membership',
  'group.application_assignment.add': 'Add assigned application to group',
  'group.application_assignment.remove': 'Remove assigned application from group',
};

/** An event in the API's wire format (Okta's LogEvent object). */
export function logEventJson(e: LoggedEvent): Record<string, unknown> {
  return {
    actor: LOG_ACTOR,
    client: { userAgent: { rawUserAgent: 'okta-sdk-nodejs/8.1.0', os: 'Unknown', browser: 'UNKNOWN' }, zone: 'null', device: 'Unknown', id: null, ipAddress: '127.0.0.1', geographicalContext: null },
    device: null,
    authenticationContext: { authenticationProvider: null, credentialProvider: null, credentialType: null, issuer: null, interface: null, authenticationStep: 0, externalSessionId: 'trsDemo0000000000' },
    displayMessage: e.displayMessage,
    eventType: e.eventType,
    outcome: { result: 'SUCCESS', reason: null },
    published: e.published,
    securityContext: { asNumber: null, asOrg: null, isp: null, domain: null, isProxy: null },
    severity: 'INFO',
    debugContext: { debugData: {} },
    legacyEventType: null,
    transaction: { type: 'WEB', id: `Demo${e.uuid.slice(0, 8)}`, detail: {} },
    uuid: e.uuid,
    version: '0',
    request: { ipChain: [] },
    target: e.target.map((t) => ({ ...t, detailEntry: null })),
  };
}

/**
 * A System Log `filter` as a predicate, or undefined when the expression is not one this org
 * reads: `<field> eq|sw "<value>"` on eventType, target.id or actor.id, joined by `and` / `or`
 * (`and` binding tighter, no parentheses).
 */
export function parseLogFilter(filter: string): ((e: LoggedEvent) => boolean) | undefined {
  const alternatives = filter.trim().split(/\s+or\s+/i).map((alternative) => alternative.split(/\s+and\s+/i).map(parseComparison));
  if (alternatives.some((all) => all.some((c) => c === undefined))) return undefined;
  return (e) => alternatives.some((all) => all.every((c) => c!(e)));
}

function parseComparison(text: string): ((e: LoggedEvent) => boolean) | undefined {
  const m = /^(eventType|target\.id|actor\.id)\s+(eq|sw)\s+"([^"]*)"$/.exec(text.trim());
  if (!m) return undefined;
  const [, field, op, value] = m as unknown as [string, string, 'eq' | 'sw', string];
  const test = (v: string) => (op === 'eq' ? v === value : v.startsWith(value));
  if (field === 'eventType') return (e) => test(e.eventType);
  if (field === 'target.id') return (e) => e.target.some((t) => test(t.id));
  return () => test(LOG_ACTOR.id);
}
