import { fingerprint } from '../../core/fingerprint.js';
import type { DirectoryGroup, DirectoryUser, JsonObject, JsonValue } from '../../core/model.js';
import { RecordError, optionalText, requireText } from '../../core/snapshot.js';
import type { StoredScimGroup, StoredScimUser, StoredUserWrite, UserWrite } from '../../db/scim.repository.js';

/**
 * A pushed SCIM User -> DirectoryUser. The IdP id is the resource id dirsync assigned (SPEC
 * "Identity"), never `externalId` or `userName`. Fields: userName; email the `emails` value
 * marked primary, else the first of type "work", else the first; givenName and familyName
 * from `name`; displayName. Attributes are the whole resource but `active`, which is status.
 */
export function toDirectoryUser(stored: Pick<StoredScimUser, 'id' | 'userName' | 'active' | 'resource'>): DirectoryUser {
  const { active: _active, ...attributes } = stored.resource;
  const name = asObject(attributes.name);
  const fields = {
    userName: requireText(stored.userName, `SCIM user ${stored.id}`, 'userName', { externalId: stored.id, subject: stored.id, active: stored.active }),
    email: primaryEmail(attributes.emails),
    givenName: optionalText(name.givenName),
    familyName: optionalText(name.familyName),
    displayName: optionalText(attributes.displayName),
  };
  return {
    externalId: stored.id,
    ...fields,
    active: stored.active,
    status: stored.active ? 'active' : 'inactive',
    attributes,
    fingerprint: fingerprint({ ...fields, attributes }),
  };
}

/**
 * A user about to be stored, with the fingerprint its account will have once applied (null
 * when the record cannot be taken): what lets a run skip re-mapping users that did not change.
 */
export function withFingerprint(user: UserWrite): StoredUserWrite {
  try {
    const mapped = toDirectoryUser({ id: '', ...user });
    return { ...user, fingerprint: mapped.fingerprint };
  } catch (error) {
    if (error instanceof RecordError) return { ...user, fingerprint: null };
    throw error;
  }
}

/** A pushed SCIM Group -> DirectoryGroup: name is displayName; attributes the resource (members are apart). */
export function toDirectoryGroup(stored: StoredScimGroup): DirectoryGroup {
  const attributes = stored.resource;
  const name = stored.displayName;
  return { externalId: stored.id, name, description: null, attributes, fingerprint: fingerprint({ name, description: null, attributes }) };
}

/** The address an account's `email` shows (RFC 7643 §4.1.2 `emails`: primary first, then "work"). */
export function primaryEmail(emails: JsonValue | undefined): string | null {
  if (!Array.isArray(emails)) return null;
  const entries = emails.map(asObject).filter((e) => typeof e.value === 'string' && e.value !== '');
  const chosen = entries.find((e) => e.primary === true) ?? entries.find((e) => typeof e.type === 'string' && e.type.toLowerCase() === 'work') ?? entries[0];
  return chosen ? (chosen.value as string) : null;
}

function asObject(value: JsonValue | undefined): JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
}
