import { fingerprint, toJson } from '../../core/fingerprint.js';
import type { DirectoryGroup, DirectoryUser, JsonObject } from '../../core/model.js';
import { RecordError, optionalText, requireText } from '../../core/snapshot.js';

/** User types that are not people: never part of a tenant's directory. */
export const SERVICE_ACCOUNT_TYPES = new Set(['service_account', 'internal_service_account']);

// The SDK's camelCased models; read loosely, since IdP data is input like any other.
export interface AuthentikUserLike {
  pk?: unknown;
  username?: unknown;
  name?: unknown;
  email?: unknown;
  isActive?: unknown;
  type?: unknown;
  groups?: unknown;
  attributes?: unknown;
}

export interface AuthentikGroupLike {
  pk?: unknown;
  name?: unknown;
  parents?: unknown;
  attributes?: unknown;
}

const GIVEN_KEYS = ['givenName', 'given_name', 'firstName', 'first_name'];
const FAMILY_KEYS = ['familyName', 'family_name', 'sn', 'surname', 'lastName', 'last_name'];

/**
 * authentik user -> DirectoryUser. userName is `username`, displayName `name`. authentik has
 * no given/family name fields: they come from the attributes a source filled in (givenName,
 * given_name, firstName, first_name; familyName, family_name, sn, surname, lastName,
 * last_name) and, failing that, from splitting `name` at its last space.
 */
export function toDirectoryUser(raw: AuthentikUserLike): DirectoryUser {
  const pk = raw.pk;
  const named = typeof raw.username === 'string' ? `authentik user ${raw.username}` : 'an authentik user';
  if (typeof pk !== 'number' && !(typeof pk === 'string' && pk !== '')) {
    throw new RecordError(`${named} has no pk`, { externalId: null, subject: typeof raw.username === 'string' ? raw.username : '(no username)' });
  }
  const id = String(pk);
  // The status first: a record that is bad elsewhere still deprovisions when it says inactive.
  const active = parseActive(raw.isActive, id);
  const userName = requireText(raw.username, `authentik user ${id}`, 'username', { externalId: id, subject: id, active });
  const attributes = asObject(toJson(raw.attributes ?? {}));
  const name = optionalText(raw.name)?.trim() || null;
  const [splitGiven, splitFamily] = splitName(name);
  const fields = {
    userName,
    email: optionalText(raw.email) || null,
    givenName: pick(attributes, GIVEN_KEYS) ?? splitGiven,
    familyName: pick(attributes, FAMILY_KEYS) ?? splitFamily,
    displayName: name,
  };
  return {
    externalId: id,
    ...fields,
    active,
    status: active ? 'active' : 'inactive',
    attributes,
    fingerprint: fingerprint({ ...fields, attributes }),
  };
}

export function toDirectoryGroup(raw: AuthentikGroupLike): DirectoryGroup {
  if (typeof raw.pk !== 'string' || raw.pk === '') {
    throw new RecordError('an authentik group has no pk', { externalId: null, subject: typeof raw.name === 'string' ? raw.name : '(no name)' });
  }
  const name = requireText(raw.name, `authentik group ${raw.pk}`, 'name', { externalId: raw.pk, subject: raw.pk });
  const attributes = asObject(toJson(raw.attributes ?? {}));
  const description = typeof attributes.description === 'string' ? attributes.description : null;
  return {
    externalId: raw.pk,
    name,
    description,
    attributes,
    fingerprint: fingerprint({ name, description, attributes }),
  };
}

/** `is_active` as authentik sends it; strings like "False" (seen from some proxies and sources) are read for what they say. */
function parseActive(value: unknown, id: string): boolean {
  if (value === undefined || value === null) return true; // authentik's default
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  throw new RecordError(`authentik user ${id} has is_active ${JSON.stringify(value)}, which is not true or false`, { externalId: id, subject: id });
}


function splitName(name: string | null): [string | null, string | null] {
  if (!name) return [null, null];
  const at = name.lastIndexOf(' ');
  return at < 0 ? [name, null] : [name.slice(0, at), name.slice(at + 1)];
}

function pick(attributes: JsonObject, keys: string[]): string | null {
  for (const key of keys) {
    const v = attributes[key];
    if (typeof v === 'string' && v.trim() !== '') return v;
  }
  return null;
}

function asObject(value: unknown): JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : {};
}
