import { fingerprint, toJson } from '../../core/fingerprint.js';
import type { DirectoryGroup, DirectoryUser, JsonObject } from '../../core/model.js';
import { RecordError, optionalText, requireText } from '../../core/snapshot.js';

/** Okta statuses that take access away (SPEC: deactivated, suspended or deprovisioned). */
const INACTIVE_STATUSES = new Set(['SUSPENDED', 'DEPROVISIONED']);

// Both the SDK's model instances and raw `_embedded` JSON arrive here; read them loosely.
interface OktaUserLike {
  id?: unknown;
  status?: unknown;
  profile?: unknown;
}

interface OktaGroupLike {
  id?: unknown;
  type?: unknown;
  profile?: unknown;
  lastMembershipUpdated?: unknown;
}

/**
 * Okta user -> DirectoryUser. userName is `profile.login`; displayName falls back to
 * "firstName lastName" when the profile has none. STAGED, PROVISIONED, RECOVERY,
 * PASSWORD_EXPIRED and LOCKED_OUT users still hold access; SUSPENDED and DEPROVISIONED do not.
 */
export function toDirectoryUser(raw: OktaUserLike): DirectoryUser {
  const profile = asObject(toJson(raw.profile ?? {}));
  const login = typeof profile.login === 'string' ? profile.login : null;
  const id = requireText(raw.id, login ? `Okta user ${login}` : 'an Okta user', 'id', { externalId: null, subject: login ?? '(no login)' });
  // A status that is not text could stand for SUSPENDED: the record is skipped, never read as ACTIVE.
  const status = raw.status === undefined || raw.status === null || raw.status === '' ? 'ACTIVE' : requireText(raw.status, `Okta user ${id}`, 'status', { externalId: id, subject: login ?? id });
  // The status first: a record that is bad elsewhere still deprovisions when its status says so.
  const userName = requireText(profile.login, `Okta user ${id}`, 'profile.login', { externalId: id, subject: id, active: !INACTIVE_STATUSES.has(status) });
  const givenName = optionalText(profile.firstName);
  const familyName = optionalText(profile.lastName);
  const fields = {
    userName,
    email: optionalText(profile.email),
    givenName,
    familyName,
    displayName: optionalText(profile.displayName) ?? (joinName(givenName, familyName) || null),
  };
  return {
    externalId: id,
    ...fields,
    active: !INACTIVE_STATUSES.has(status),
    status,
    attributes: profile,
    fingerprint: fingerprint({ ...fields, attributes: profile }),
  };
}

export function toDirectoryGroup(raw: OktaGroupLike): DirectoryGroup {
  const profile = asObject(toJson(raw.profile ?? {}));
  const groupName = typeof profile.name === 'string' ? profile.name : null;
  const id = requireText(raw.id, groupName ? `Okta group ${groupName}` : 'an Okta group', 'id', { externalId: null, subject: groupName ?? '(no name)' });
  const name = requireText(profile.name, `Okta group ${id}`, 'profile.name', { externalId: id, subject: id });
  const description = optionalText(profile.description);
  const attributes: JsonObject = typeof raw.type === 'string' ? { ...profile, type: raw.type } : profile;
  return {
    externalId: id,
    name,
    description,
    attributes,
    fingerprint: fingerprint({ name, description, attributes }),
    membersVersion: timestamp(raw.lastMembershipUpdated),
  };
}

/** An app assignment as Okta lists it with `expand=user` (its id is the user's id). */
export interface OktaAppUserLike {
  id?: unknown;
  _embedded?: { user?: unknown } & Record<string, unknown>;
}

/** An app group assignment as Okta lists it with `expand=group` (its id is the group's id). */
export interface OktaAppGroupLike {
  id?: unknown;
  _embedded?: { group?: unknown } & Record<string, unknown>;
}

/** Okta app user (`expand=user`) -> DirectoryUser, from the embedded user. */
export function appUserToDirectoryUser(appUser: OktaAppUserLike): DirectoryUser {
  const user = appUser._embedded?.user;
  const id = typeof appUser.id === 'string' ? appUser.id : null;
  if (!user) throw new RecordError(`Okta app user ${id ?? '?'} came without its embedded user (expand=user)`, { externalId: id, subject: id ?? '?' });
  return toDirectoryUser(user as OktaUserLike);
}

/** Okta app group assignment (`expand=group`) -> DirectoryGroup, from the embedded group. */
export function appGroupToDirectoryGroup(assignment: OktaAppGroupLike): DirectoryGroup {
  const group = assignment._embedded?.group;
  const id = typeof assignment.id === 'string' ? assignment.id : null;
  if (!group) throw new RecordError(`Okta app group ${id ?? '?'} came without its embedded group (expand=group)`, { externalId: id, subject: id ?? '?' });
  return toDirectoryGroup(group as OktaGroupLike);
}

/** The SDK gives Dates for its models and strings inside `_embedded`: compare them as ISO strings. */
function timestamp(value: unknown): string | null {
  const time = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(time) ? new Date(time).toISOString() : null;
}


function asObject(value: unknown): JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : {};
}

function joinName(given: string | null, family: string | null): string {
  return [given, family].filter((p) => p).join(' ');
}
