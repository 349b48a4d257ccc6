import type { SubjectNames } from '../connector.js';

/**
 * Which users and groups Okta events name: the one reading of System Log events shared by the
 * event hook receiver (src/webhooks/events.ts) and the incremental reader (okta.system-log.ts),
 * so that a change read from either source leads to the same targeted read. Pure, no IO.
 *
 * Event shapes (Okta System Log `LogEvent`, also what an event hook carries in `data.events`):
 * `{uuid, published, eventType, target: [{id, type, alternateId, displayName}], ...}`. Target
 * types seen in real events: `User` (00u… ids), `UserGroup` (00g…), `AppInstance` (0oa…) and
 * `AppUser` (0ua…, an app assignment's own id, not the user's). Sources: the System Log API
 * reference (developer.okta.com, "LogEvent object"; the older copy in okta.github.io
 * `_source/_docs/api/resources/system_log.md`), and public samples of real events such as
 * ExabeamLabs/Content-Doc `Parsers/parserContent_json-okta-member-added.md` (group.user_membership.add
 * targets a `UserGroup` and a `User`) and SIEM test data showing application.user_membership.add
 * targeting an `AppUser`, the `AppInstance` and the `User`.
 */

/** User events: each names the `User` targets. Lifecycle types from Okta's Event Types catalog. */
const USER_EVENTS = new Set([
  'user.lifecycle.create',
  'user.lifecycle.activate',
  'user.lifecycle.deactivate',
  'user.lifecycle.suspend',
  'user.lifecycle.unsuspend',
  'user.lifecycle.reactivate',
  'user.lifecycle.delete.initiated',
  'user.lifecycle.delete.completed',
  'user.account.update_profile',
  'group.user_membership.add',
  'group.user_membership.remove',
]);

/**
 * User events after which a user assigned to the app still is: a profile update, a suspension
 * or its end, and joining a group. Okta removes every app assignment when it deactivates a
 * user, and none when it suspends one (Okta support, "Does Okta Support Partial App Assignment,
 * Revoke or Removal During User Deactivation"); joining a group only ever adds assignments.
 */
const IN_PLACE_EVENTS = new Set(['user.account.update_profile', 'user.lifecycle.suspend', 'user.lifecycle.unsuspend', 'group.user_membership.add']);

/** Assignment of a user to an app: only the integration's app matters when it is app-scoped. */
const APP_USER_EVENTS = new Set(['application.user_membership.add', 'application.user_membership.remove']);

/** Group events: each names the `UserGroup` target. */
const GROUP_EVENTS = new Set(['group.lifecycle.create', 'group.lifecycle.delete', 'group.profile.update']);

/** Assignment of a group to an app: only the integration's app matters when it is app-scoped. */
const APP_GROUP_EVENTS = new Set(['group.application_assignment.add', 'group.application_assignment.remove']);

/**
 * The app itself switched on or off or removed: every assignment changes at once, which no
 * subject names. (`application.lifecycle.update` and `.create` change no assignment.)
 */
const APP_LIFECYCLE_EVENTS = new Set(['application.lifecycle.activate', 'application.lifecycle.deactivate', 'application.lifecycle.delete']);

/** Every event type that can change an integration's users, groups or memberships. */
export const OKTA_CHANGE_EVENT_TYPES: readonly string[] = Object.freeze([...USER_EVENTS, ...APP_USER_EVENTS, ...GROUP_EVENTS, ...APP_GROUP_EVENTS, ...APP_LIFECYCLE_EVENTS]);

/**
 * The System Log `filter` that keeps the families of OKTA_CHANGE_EVENT_TYPES, so logins, sessions
 * and policy evaluations (most of an org's log) cost no pages. System Log filters take `eventType`,
 * `target.id` and `actor.id` with SCIM operators, `sw` included (IDP-FACTS "Okta System Log"; Okta's
 * OpenAPI: "All operators except [ ] are supported"). Prefixes rather than one `eq` per type: Okta
 * repeats the filter in every `Link` header, and the SDK's link parser (parse-link-header 2) gives
 * up on a header over 2,000 characters. Event types the prefixes let through that name nothing
 * (application.user_membership.change_password, ...) are read and dropped.
 */
export const OKTA_CHANGE_EVENT_FILTER = [
  'eventType sw "user.lifecycle."',
  'eventType eq "user.account.update_profile"',
  'eventType sw "group.user_membership."',
  'eventType sw "group.lifecycle."',
  'eventType eq "group.profile.update"',
  'eventType sw "group.application_assignment."',
  'eventType sw "application.user_membership."',
  'eventType sw "application.lifecycle."',
].join(' or ');

/** An event as either source gives it; targets are read loosely (a hook body is untrusted JSON). */
export interface OktaEventLike {
  readonly eventType: string;
  readonly target?: unknown;
}

/** What a batch of events names. */
export interface OktaEventNames {
  /**
   * Users (ids only: logins never come from events) and groups to read; `inPlace`: users only
   * IN_PLACE_EVENTS name; `leftGroups`: users only those and group.user_membership.remove name.
   */
  readonly names: SubjectNames;
  /** Changes no subject names (an app-level change, an event without its target): one sentence each. */
  readonly unnarrowable: readonly string[];
  /** Some event can change the directory in scope: it names a subject or is unnarrowable. */
  readonly relevant: boolean;
}

/**
 * Reads what `events` name for an integration scoped to the app `appId` (null: the whole org).
 * - user lifecycle, profile and group membership events name their `User` targets;
 * - application.user_membership.add/remove name their `User` target, when the app is the
 *   integration's (any app for an org-wide integration, where they change nothing but cost a read);
 * - group lifecycle and profile events name their `UserGroup` target, and so do
 *   group.application_assignment.add/remove when the app is the integration's;
 * - application.lifecycle.activate/deactivate/delete of the integration's app cannot be narrowed;
 * - a relevant event without the target it should name cannot be narrowed either.
 * Other events (logins, sessions, other apps) name nothing. Ids come out deduplicated, in order.
 * Users that only IN_PLACE_EVENTS name are also in `names.inPlace` (SubjectNames); those that
 * only these and group.user_membership.remove name, in `names.leftGroups`.
 */
export function namesOfOktaEvents(events: Iterable<OktaEventLike>, appId: string | null): OktaEventNames {
  const userIds = new Set<string>();
  const groupIds = new Set<string>();
  // Users named by an event that may move them into or out of scope: never read in place.
  const moved = new Set<string>();
  // Users who left a group: still in scope while a member of another group assigned to the app.
  const left = new Set<string>();
  const unnarrowable: string[] = [];
  for (const event of events) {
    const type = event.eventType;
    const targets = targetsOf(event.target);
    const forOurApp = () => appId === null || targets.some((t) => t.type === 'AppInstance' && t.id === appId);
    const take = (kind: 'User' | 'UserGroup', into: Set<string>) => {
      const ids = targets.filter((t) => t.type === kind).map((t) => t.id);
      if (ids.length === 0) unnarrowable.push(`an Okta ${type} event names no ${kind === 'User' ? 'user' : 'group'}`);
      for (const id of ids) {
        into.add(id);
        if (kind !== 'User' || IN_PLACE_EVENTS.has(type)) continue;
        if (type === 'group.user_membership.remove') left.add(id);
        else moved.add(id);
      }
    };
    if (USER_EVENTS.has(type)) take('User', userIds);
    else if (APP_USER_EVENTS.has(type)) {
      if (forOurApp()) take('User', userIds);
    } else if (GROUP_EVENTS.has(type)) take('UserGroup', groupIds);
    else if (APP_GROUP_EVENTS.has(type)) {
      if (forOurApp()) take('UserGroup', groupIds);
    } else if (APP_LIFECYCLE_EVENTS.has(type) && appId !== null && forOurApp()) {
      unnarrowable.push(`the Okta app ${appId} itself changed (${type}), which changes every assignment`);
    }
  }
  const inPlace = [...userIds].filter((id) => !moved.has(id) && !left.has(id));
  const leftGroups = [...userIds].filter((id) => !moved.has(id) && left.has(id));
  const names: SubjectNames = {
    userIds: [...userIds],
    logins: [],
    groupIds: [...groupIds],
    ...(inPlace.length > 0 && { inPlace }),
    ...(leftGroups.length > 0 && { leftGroups }),
  };
  return { names, unnarrowable: [...new Set(unnarrowable)], relevant: userIds.size > 0 || groupIds.size > 0 || unnarrowable.length > 0 };
}

interface Target {
  readonly id: string;
  readonly type: string;
}

// Okta ids are short and alphanumeric (00u…, 00g…, 0oa…); anything else in an untrusted hook body names nobody.
const OKTA_ID = /^[A-Za-z0-9_.-]{1,100}$/;

/** The targets with an Okta-like id and a text type; anything else in a target list is no name. */
function targetsOf(value: unknown): Target[] {
  if (!Array.isArray(value)) return [];
  return value.filter((t): t is Target => t !== null && typeof t === 'object' && typeof t.id === 'string' && OKTA_ID.test(t.id) && typeof t.type === 'string');
}
