import type { JsonObject, JsonValue } from '../core/model.js';
import { MAX_USER_NAME_LENGTH, recordSizeProblem } from '../core/snapshot.js';
import type { GroupWrite, StoredScimGroup, StoredScimUser, StoredMember, UserWrite } from '../db/scim.repository.js';
import { badRequest } from './scim.errors.js';
import { type AttributeDef, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, SCHEMA_ATTRIBUTES, USER_SCHEMA } from './scim.schemas.js';

/** Attributes the service provider owns (RFC 7643 §3.1): whatever the client sends for them is ignored. */
const SERVER_OWNED = new Set(['id', 'meta']);

/** A member as a Group body names it: the user's SCIM id. */
export interface MemberRef {
  readonly value: string;
}

/**
 * A User body (POST, PUT, or the result of a PATCH) -> what is stored. Keeps every attribute
 * the client sent, extensions and unknown ones included, but `id`, `meta` and `password`
 * (never stored). String booleans ("True", "False", as Entra sends them) become booleans
 * wherever the schema says boolean. Throws ScimError 400 for a body that is not a User.
 */
export function readUserBody(body: unknown): UserWrite {
  const resource = readResource(body, USER_SCHEMA, 'User');
  delete resource.password;
  // readOnly (RFC 7643 §4.1.2): computed from the Groups' members, whatever the client says.
  delete resource.groups;
  const userName = resource.userName;
  if (typeof userName !== 'string' || userName.trim() === '') {
    throw badRequest('invalidValue', 'userName is required and must be a non-empty string');
  }
  if ([...userName].length > MAX_USER_NAME_LENGTH) throw badRequest('invalidValue', `userName is longer than ${MAX_USER_NAME_LENGTH} characters`);
  const active = resource.active ?? true;
  checkSize('User', resource);
  return { userName, externalId: externalIdOf(resource), active: active as boolean, resource };
}

/** A Group body -> what is stored (members apart) and the members it names. */
export function readGroupBody(body: unknown): { group: GroupWrite; members: MemberRef[] | undefined } {
  const resource = readResource(body, GROUP_SCHEMA, 'Group');
  const displayName = resource.displayName;
  if (typeof displayName !== 'string' || displayName.trim() === '') {
    throw badRequest('invalidValue', 'displayName is required and must be a non-empty string');
  }
  const members = resource.members === undefined || resource.members === null ? undefined : readMembers(resource.members);
  delete resource.members;
  checkSize('Group', resource);
  return { group: { displayName, externalId: externalIdOf(resource), resource }, members };
}

/**
 * A resource over the record size limits a run applies (MAX_RECORD_ATTRIBUTES names,
 * MAX_RECORD_BYTES of JSON; src/core/snapshot.ts) is refused at once with 400 invalidValue,
 * rather than stored and skipped by every run. A Group's members are not counted: they are
 * stored apart.
 */
function checkSize(kind: 'User' | 'Group', resource: JsonObject): void {
  const problem = recordSizeProblem(`the ${kind}`, resource, `send fewer or shorter attributes`);
  if (problem) throw badRequest('invalidValue', problem);
}

/** `members` values: objects with a string `value` (the user's id). */
export function readMembers(value: JsonValue): MemberRef[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((m) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m) || typeof m.value !== 'string' || m.value === '') {
      throw badRequest('invalidValue', `a member must be an object with the member's id as "value", not ${JSON.stringify(m)}`);
    }
    return { value: m.value };
  });
}

function readResource(body: unknown, coreSchema: string, kind: string): JsonObject {
  if (typeof body === 'string') throw badRequest('invalidSyntax', 'send the body as application/scim+json or application/json');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', `the body must be a JSON object: a SCIM ${kind}`);
  const input = body as JsonObject;
  const schemas = input.schemas;
  if (!Array.isArray(schemas) || !schemas.every((s) => typeof s === 'string')) {
    throw badRequest('invalidSyntax', `"schemas" must be an array of schema URNs including ${coreSchema}`);
  }
  if (!schemas.some((s) => (s as string).toLowerCase() === coreSchema.toLowerCase())) {
    throw badRequest('invalidSyntax', `"schemas" must include ${coreSchema} for a ${kind}, not ${JSON.stringify(schemas)}`);
  }
  checkStorable(input, '');
  const resource: JsonObject = {};
  for (const [key, value] of Object.entries(input)) {
    if (SERVER_OWNED.has(key)) continue;
    resource[key] = value;
  }
  const normalized = normalize(resource, coreSchema);
  // Every extension the resource holds is named in `schemas` (RFC 7643 §3), added by a PATCH or not.
  const named = new Set((normalized.schemas as string[]).map((s) => s.toLowerCase()));
  const extensions = Object.keys(normalized).filter((k) => /^urn:/i.test(k) && !named.has(k.toLowerCase()) && isObject(normalized[k]));
  if (extensions.length > 0) normalized.schemas = [...(normalized.schemas as string[]), ...extensions];
  return normalized;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * After one PATCH operation: a value newly marked primary takes the mark from every other
 * value (RFC 7644 §3.5.2: the service provider sets "primary" false on the others). Should
 * one operation mark two values, the last keeps it (RFC 7643 §2.4: at most one primary).
 */
export function demotePrimaries(before: JsonObject, after: JsonObject): JsonObject {
  for (const [key, values] of Object.entries(after)) {
    if (!Array.isArray(values)) continue;
    const primaries = values.filter((v): v is JsonObject => isObject(v) && v.primary === true);
    if (primaries.length < 2) continue;
    const was = Array.isArray(before[key]) ? (before[key] as JsonValue[]).filter((v) => isObject(v) && v.primary === true).map((v) => JSON.stringify(v)) : [];
    const fresh = primaries.filter((v) => !was.includes(JSON.stringify(v)));
    const keep = fresh.at(-1);
    if (keep === undefined) continue;
    after[key] = values.map((v) => (isObject(v) && v.primary === true && v !== keep ? { ...v, primary: false } : v));
  }
  return after;
}

function externalIdOf(resource: JsonObject): string | null {
  const externalId = resource.externalId;
  if (externalId === undefined || externalId === null) return null;
  if (typeof externalId !== 'string') throw badRequest('invalidValue', `externalId must be a string, not ${JSON.stringify(externalId)}`);
  return externalId;
}

// A NUL or a lone surrogate cannot be stored in Postgres (jsonb refuses \u0000): refused here, with its place.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function checkStorable(value: JsonValue, path: string): void {
  if (typeof value === 'string') {
    if (UNSTORABLE.test(value)) throw badRequest('invalidValue', `${path || 'a value'} contains a NUL character or a lone surrogate, which cannot be stored`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkStorable(v, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (UNSTORABLE.test(k)) throw badRequest('invalidValue', 'an attribute name contains a NUL character or a lone surrogate');
      checkStorable(v, path ? `${path}.${k}` : k);
    }
  }
}

/**
 * Checks each attribute a schema defines against its type and reads string booleans; the
 * enterprise extension is checked under its URN. Unknown attributes pass as sent.
 */
function normalize(resource: JsonObject, coreSchema: string): JsonObject {
  const out = normalizeObject(resource, SCHEMA_ATTRIBUTES.get(coreSchema)!, '');
  const extension = out[ENTERPRISE_USER_SCHEMA];
  if (coreSchema === USER_SCHEMA && extension !== undefined && extension !== null) {
    if (typeof extension !== 'object' || Array.isArray(extension)) throw badRequest('invalidValue', `${ENTERPRISE_USER_SCHEMA} must be an object`);
    out[ENTERPRISE_USER_SCHEMA] = normalizeObject(extension, SCHEMA_ATTRIBUTES.get(ENTERPRISE_USER_SCHEMA)!, `${ENTERPRISE_USER_SCHEMA}:`);
  }
  return out;
}

function normalizeObject(object: JsonObject, defs: readonly AttributeDef[], prefix: string): JsonObject {
  const out: JsonObject = { ...object };
  for (const def of defs) {
    // Attribute names are case-insensitive (RFC 7643 §2.1): a client's "UserName" is userName.
    const key = Object.keys(out).find((k) => k.toLowerCase() === def.name.toLowerCase());
    if (key === undefined) continue;
    const value = out[key]!;
    if (key !== def.name) {
      delete out[key];
    }
    out[def.name] = normalizeValue(value, def, `${prefix}${def.name}`);
  }
  return out;
}

function normalizeValue(value: JsonValue, def: AttributeDef, path: string): JsonValue {
  if (value === null) return null;
  if (def.multiValued) {
    if (!Array.isArray(value)) throw badRequest('invalidValue', `${path} must be an array`);
    return value.map((v, i) => normalizeSingle(v, def, `${path}[${i}]`));
  }
  return normalizeSingle(value, def, path);
}

function normalizeSingle(value: JsonValue, def: AttributeDef, path: string): JsonValue {
  if (value === null) return null;
  switch (def.type) {
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
      throw badRequest('invalidValue', `${path} must be true or false, not ${JSON.stringify(value)}`);
    }
    case 'complex': {
      // Entra sends the manager (a reference) as its bare id: read as {"value": id}.
      if (typeof value === 'string' && def.subAttributes?.some((d) => d.name === 'value')) return { value };
      if (typeof value !== 'object' || Array.isArray(value)) throw badRequest('invalidValue', `${path} must be an object`);
      return normalizeObject(value, def.subAttributes ?? [], `${path}.`);
    }
    case 'integer':
    case 'decimal':
      if (typeof value !== 'number') throw badRequest('invalidValue', `${path} must be a number`);
      return value;
    default:
      if (typeof value !== 'string') throw badRequest('invalidValue', `${path} must be a string, not ${JSON.stringify(value)}`);
      return value;
  }
}

/** Which attributes a response carries: RFC 7644 §3.4.2.5 `attributes` / `excludedAttributes`. */
export interface Projection {
  readonly attributes?: readonly string[];
  readonly excludedAttributes?: readonly string[];
}

/** Reads the comma-separated `attributes` / `excludedAttributes` query parameters. */
export function readProjection(query: { attributes?: unknown; excludedAttributes?: unknown }): Projection {
  const list = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const attributes = list(query.attributes);
  const excludedAttributes = list(query.excludedAttributes);
  return { ...(attributes && { attributes }), ...(excludedAttributes && { excludedAttributes }) };
}

const ALWAYS = new Set(['id', 'schemas']);

/**
 * Applies a projection to a rendered resource. Paths are case-insensitive, may name a
 * sub-attribute (`name.givenName`), and may carry a schema URN prefix
 * (`urn:...:enterprise:2.0:User:department`, or a bare core-schema prefix).
 */
export function project(resource: JsonObject, projection: Projection, coreSchema: string): JsonObject {
  if (projection.attributes) {
    const out: JsonObject = {};
    for (const key of Object.keys(resource)) if (ALWAYS.has(key)) out[key] = resource[key]!;
    for (const path of projection.attributes.map((p) => splitPath(p, coreSchema))) copyPath(resource, out, path);
    return out;
  }
  if (projection.excludedAttributes) {
    const out = structuredClone(resource);
    for (const path of projection.excludedAttributes.map((p) => splitPath(p, coreSchema))) {
      if (path.length === 1 && ALWAYS.has(path[0]!)) continue;
      removePath(out, path);
    }
    return out;
  }
  return resource;
}

function splitPath(path: string, coreSchema: string): string[] {
  let rest = path;
  if (rest.toLowerCase().startsWith(`${coreSchema.toLowerCase()}:`)) rest = rest.slice(coreSchema.length + 1);
  else {
    const ext = rest.toLowerCase().startsWith(`${ENTERPRISE_USER_SCHEMA.toLowerCase()}:`) ? ENTERPRISE_USER_SCHEMA : undefined;
    if (ext) return [ext, ...rest.slice(ext.length + 1).split('.')];
    if (rest.toLowerCase() === ENTERPRISE_USER_SCHEMA.toLowerCase()) return [ENTERPRISE_USER_SCHEMA];
  }
  return rest.split('.');
}

function findKey(object: JsonObject, name: string): string | undefined {
  return Object.keys(object).find((k) => k.toLowerCase() === name.toLowerCase());
}

function copyPath(from: JsonObject, to: JsonObject, path: string[]): void {
  const key = findKey(from, path[0]!);
  if (key === undefined) return;
  const value = from[key]!;
  if (path.length === 1) {
    to[key] = value;
    return;
  }
  if (Array.isArray(value)) {
    const target = (Array.isArray(to[key]) ? to[key] : value.map(() => ({}))) as JsonObject[];
    value.forEach((v, i) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) copyPath(v, target[i]!, path.slice(1));
    });
    to[key] = target;
  } else if (value !== null && typeof value === 'object') {
    const target = (to[key] !== null && typeof to[key] === 'object' && !Array.isArray(to[key]) ? to[key] : {}) as JsonObject;
    copyPath(value, target, path.slice(1));
    to[key] = target;
  }
}

function removePath(object: JsonObject, path: string[]): void {
  const key = findKey(object, path[0]!);
  if (key === undefined) return;
  if (path.length === 1) {
    delete object[key];
    return;
  }
  const value = object[key]!;
  for (const v of Array.isArray(value) ? value : [value]) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) removePath(v, path.slice(1));
  }
}

/**
 * A stored user as SCIM returns it (RFC 7643 §4.1), `meta.location` under `baseUrl`, with the
 * groups it is a member of (`groups`, when it has any).
 */
export function renderUser(user: StoredScimUser, baseUrl: string, groups: ReadonlyArray<{ id: string; displayName: string }> = []): JsonObject {
  const { schemas, ...rest } = user.resource;
  return {
    schemas: Array.isArray(schemas) ? schemas : [USER_SCHEMA],
    id: user.id,
    ...rest,
    userName: user.userName,
    active: user.active,
    ...(groups.length > 0 && { groups: groups.map((g) => ({ value: g.id, display: g.displayName, type: 'direct', $ref: `${baseUrl}/Groups/${g.id}` })) }),
    meta: { resourceType: 'User', created: user.created.toISOString(), lastModified: user.lastModified.toISOString(), location: `${baseUrl}/Users/${user.id}` },
  };
}

/** A stored group as SCIM returns it (RFC 7643 §4.2), with its members when given. */
export function renderGroup(group: StoredScimGroup, members: readonly StoredMember[] | undefined, baseUrl: string): JsonObject {
  const { schemas, ...rest } = group.resource;
  return {
    schemas: Array.isArray(schemas) ? schemas : [GROUP_SCHEMA],
    id: group.id,
    ...rest,
    displayName: group.displayName,
    ...(members && { members: members.map((m) => ({ value: m.userId, display: m.userName, type: 'User', $ref: `${baseUrl}/Users/${m.userId}` })) }),
    meta: { resourceType: 'Group', created: group.created.toISOString(), lastModified: group.lastModified.toISOString(), location: `${baseUrl}/Groups/${group.id}` },
  };
}
