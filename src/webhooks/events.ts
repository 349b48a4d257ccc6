import { subjectOfModelEvent } from '../connectors/authentik/authentik.model-events.js';
import { NO_SUBJECTS, type SubjectNames } from '../connectors/connector.js';
import { namesOfOktaEvents } from '../connectors/okta/okta.events.js';
import { printable } from '../core/snapshot.js';

/**
 * What an IdP's webhook body says, read without IO: which events (for deduplication), their
 * types (for the record), whether any of them can change the tenant's directory, and which
 * users and groups they name (for a targeted run). An event is only ever a signal to re-read
 * the IdP; nothing from its body is applied.
 */
export interface WebhookSignal {
  readonly eventIds: readonly string[];
  readonly eventTypes: readonly string[];
  /** Worth a run: some event can change the users, groups or memberships in scope. */
  readonly relevant: boolean;
  /** The users and groups the events name: a targeted run reads these. */
  readonly names: SubjectNames;
  /** Events that cannot be narrowed to subjects, one sentence each: the run reads the whole scope. Relevant means names or these. */
  readonly unnarrowable: readonly string[];
}

/** The body is not what the IdP sends; answered 400. */
export class MalformedWebhookError extends Error {
  override name = 'MalformedWebhookError';
}

/**
 * An Okta event hook delivery: `{eventType: "com.okta.event_hook", data: {events: [...]}}`.
 * What its events name is read as the System Log reader reads it (namesOfOktaEvents): user
 * lifecycle, profile, group membership, app assignment and group lifecycle events name users
 * and groups; a change to the integration's app itself cannot be narrowed. Okta hooks are
 * org-wide: an app assignment event for another app than the integration's names nobody.
 */
export function readOktaDelivery(body: unknown, appId: string | null): WebhookSignal {
  const events = (body as { data?: { events?: unknown } } | null)?.data?.events;
  if (!isObject(body) || body.eventType !== 'com.okta.event_hook' || !Array.isArray(events)) {
    throw new MalformedWebhookError('not an Okta event hook delivery: expected {"eventType": "com.okta.event_hook", "data": {"events": [...]}}');
  }
  const eventIds: string[] = [];
  const eventTypes: string[] = [];
  const read: { eventType: string; target: unknown }[] = [];
  for (const event of events) {
    if (!isObject(event) || typeof event.uuid !== 'string' || typeof event.eventType !== 'string') {
      throw new MalformedWebhookError('an Okta event has no uuid or eventType');
    }
    checkText('an Okta event uuid', event.uuid);
    checkText('an Okta eventType', event.eventType);
    eventIds.push(event.uuid);
    eventTypes.push(event.eventType);
    read.push({ eventType: event.eventType, target: event.target });
  }
  const { names, unnarrowable, relevant } = namesOfOktaEvents(read, appId);
  return { eventIds, eventTypes, relevant, names, unnarrowable };
}

const AUTHENTIK_MODEL_ACTIONS = new Set(['model_created', 'model_updated', 'model_deleted']);
const AUTHENTIK_MODELS = new Set(['user', 'group', 'application', 'policybinding']);

/**
 * An authentik notification (webhook transport). With dirsync's body mapping it carries the
 * event's `action`, `model` context and `event_id`; model changes to users, groups,
 * applications and policy bindings are relevant, other actions (logins, ...) are not. A user
 * event names the user (its pk), a group event the group (its pk, which authentik's event
 * context spells as undashed hex: see authentik.model-events.ts); an application or policy
 * binding change cannot be narrowed (the notification does not say which application's
 * binding it is), nor can another group-related model. The default body (`{body, severity,
 * user_email, ...}`, no action) says nothing about what changed, so it triggers a full run.
 */
export function readAuthentikNotification(body: unknown): WebhookSignal {
  if (!isObject(body)) throw new MalformedWebhookError('not an authentik notification: expected a JSON object');
  const eventIds = typeof body.event_id === 'string' && body.event_id !== '' ? [checkText('"event_id"', body.event_id)] : [];
  if (typeof body.action === 'string') checkText('"action"', body.action);
  if (body.action === undefined || body.action === null) {
    return { eventIds, eventTypes: ['notification'], relevant: true, names: NO_SUBJECTS, unnarrowable: ['the notification does not say what changed'] };
  }
  if (typeof body.action !== 'string') throw new MalformedWebhookError('"action" must be a string');
  const model = isObject(body.model) ? body.model : {};
  const modelName = typeof model.model_name === 'string' ? model.model_name : '';
  const type = modelName ? `${body.action}:${model.app ?? ''}.${modelName}` : body.action;
  const relevant = AUTHENTIK_MODEL_ACTIONS.has(body.action) && (AUTHENTIK_MODELS.has(modelName) || modelName.includes('group'));
  if (!relevant) return { eventIds, eventTypes: [type], relevant, names: NO_SUBJECTS, unnarrowable: [] };
  const subject = subjectOfModelEvent(body.action, model);
  if (subject.kind === 'user') return { eventIds, eventTypes: [type], relevant, names: { ...NO_SUBJECTS, userIds: [subject.id] }, unnarrowable: [] };
  if (subject.kind === 'group') return { eventIds, eventTypes: [type], relevant, names: { ...NO_SUBJECTS, groupIds: [subject.id] }, unnarrowable: [] };
  const what = typeof model.name === 'string' && model.name !== '' ? ` (${printableName(model.name)})` : '';
  return { eventIds, eventTypes: [type], relevant, names: NO_SUBJECTS, unnarrowable: [`authentik ${type}${what} cannot be narrowed to users or groups`] };
}

/** A name from a body, short, storable (printable) and without control characters, for a sentence. */
function printableName(name: string): string {
  const clean = printable(name).replace(/[\u0000-\u001f\u007f]/g, ' ');
  const chars = [...clean];
  return chars.length > 120 ? `${chars.slice(0, 117).join('')}...` : clean;
}

/**
 * The longest event id or type taken: Okta's are UUIDs and dotted names, authentik's UUIDs and
 * short action names; anything much longer is not from an IdP.
 */
const MAX_EVENT_TEXT = 200;

/** An id or type as stored for deduplication: short, without control characters (Postgres refuses NUL). */
function checkText(what: string, text: string): string {
  if (text.length > MAX_EVENT_TEXT) throw new MalformedWebhookError(`${what} is longer than ${MAX_EVENT_TEXT} characters`);
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new MalformedWebhookError(`${what} holds a control character`);
  return text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
