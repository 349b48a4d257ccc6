import { fingerprint } from '../../src/core/fingerprint.js';
import type { DirectoryGroup, DirectoryUser, JsonObject, LocalGroup, LocalState, LocalUser, Snapshot } from '../../src/core/model.js';

export function user(id: string, over: Partial<Omit<DirectoryUser, 'fingerprint'>> = {}): DirectoryUser {
  const fields = {
    userName: over.userName ?? `${id}@example.com`,
    email: over.email === undefined ? `${id}@example.com` : over.email,
    givenName: over.givenName === undefined ? id : over.givenName,
    familyName: over.familyName === undefined ? 'Test' : over.familyName,
    displayName: over.displayName === undefined ? `${id} Test` : over.displayName,
  };
  const attributes: JsonObject = over.attributes ?? { login: fields.userName };
  return {
    externalId: id,
    ...fields,
    active: over.active ?? true,
    status: over.status ?? (over.active === false ? 'SUSPENDED' : 'ACTIVE'),
    attributes,
    fingerprint: fingerprint({ ...fields, attributes }),
  };
}

export function group(id: string, over: Partial<Omit<DirectoryGroup, 'fingerprint'>> = {}): DirectoryGroup {
  const name = over.name ?? `group-${id}`;
  const description = over.description === undefined ? null : over.description;
  const attributes: JsonObject = over.attributes ?? { name };
  return { externalId: id, name, description, attributes, fingerprint: fingerprint({ name, description, attributes }) };
}

export function snapshot(users: DirectoryUser[], groups: DirectoryGroup[], members: Record<string, string[]> = {}): Snapshot {
  const userMap = new Map(users.map((u) => [u.externalId, u]));
  return {
    users: userMap,
    groups: new Map(groups.map((g) => [g.externalId, g])),
    memberships: new Map(
      groups.map((g) => [g.externalId, new Set((members[g.externalId] ?? []).filter((id) => userMap.has(id)))]),
    ),
    skipped: [],
    suspicious: [],
  };
}

export function localUser(u: DirectoryUser, active = u.active): LocalUser {
  return {
    externalId: u.externalId,
    userName: u.userName,
    email: u.email,
    givenName: u.givenName,
    familyName: u.familyName,
    displayName: u.displayName,
    active,
    fingerprint: u.fingerprint,
  };
}

export function localGroup(g: DirectoryGroup): LocalGroup {
  return { externalId: g.externalId, name: g.name, description: g.description, fingerprint: g.fingerprint };
}

export function local(
  users: LocalUser[],
  groups: LocalGroup[],
  members: Record<string, string[]> = {},
  lockedOut: string[] = [],
): LocalState {
  return {
    users: new Map(users.map((u) => [u.externalId, u])),
    groups: new Map(groups.map((g) => [g.externalId, g])),
    memberships: new Map(Object.entries(members).map(([g, m]) => [g, new Set(m)])),
    lockedOut: new Set(lockedOut),
    others: new Map(),
  };
}

/** `dirsync users`/`groups` entries without their generated `id`, for comparing with expected values. */
export function withoutIds<T extends { id: string }>(rows: readonly T[]): Omit<T, 'id'>[] {
  return rows.map(({ id: _id, ...rest }) => rest);
}
