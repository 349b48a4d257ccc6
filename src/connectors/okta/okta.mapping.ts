import { fingerprint, toJson } from '../../core/fingerprint.js';
import type { DirectoryGroup, DirectoryUser, JsonObject } from '../../core/model.js';
import { SnapshotError } from '../../core/snapshot.js';

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
  const id = requireString(raw.id, 'Okta user without an id');
  const profile = asObject(toJson(raw.profile ?? {}));
  const userName = requireString(profile.login, `Okta user ${id} has no profile.login`);
  const status = typeof raw.status === 'string' && raw.status ? raw.status : 'ACTIVE';
  const givenName = optionalString(profile.firstName);
  const familyName = optionalString(profile.lastName);
  const fields = {
    userName,
    email: optionalString(profile.email),
    givenName,
    familyName,
    displayName: optionalString(profile.displayName) ?? (joinName(givenName, familyName) || null),
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
  const id = requireString(raw.id, 'Okta group without an id');
  const profile = asObject(toJson(raw.profile ?? {}));
  const name = requireString(profile.name, `Okta group ${id} has no profile.name`);
  const description = optionalString(profile.description);
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

/** The SDK gives Dates for its models and strings inside `_embedded`: compare them as ISO strings. */
function timestamp(value: unknown): string | null {
  const time = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(time) ? new Date(time).toISOString() : null;
}

function requireString(value: unknown, message: string): string {
  if (typeof value === 'string' && value.trim() !== '') return value;
  throw new SnapshotError(message);
}

function optionalString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

function asObject(value: unknown): JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : {};
}

function joinName(given: string | null, family: string | null): string {
  return [given, family].filter((p) => p).join(' ');
}
