import { type ScimPatchOperation, scimPatch } from 'scim-patch';
import { type Filter, parse } from 'scim2-parse-filter';
import type { JsonObject, JsonValue } from '../core/model.js';
import { badRequest } from './scim.errors.js';
import { memberIds } from './scim.filter.js';
import { type MemberRef, demotePrimaries, readMembers } from './scim.resource.js';
import { ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA } from './scim.schemas.js';

/** One PATCH operation, its op name lower-cased (clients send "Replace", "Add"). */
export interface PatchOperation {
  readonly op: 'add' | 'remove' | 'replace';
  readonly path?: string;
  readonly value?: JsonValue;
}

/**
 * Reads a PatchOp body (RFC 7644 §3.5.2): the PatchOp schema, and a non-empty `Operations`
 * list of add, remove or replace in any case; `remove` needs a path (§3.5.2.2, noTarget).
 */
export function readPatchBody(body: unknown): PatchOperation[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', 'the body must be a JSON object: a SCIM PatchOp');
  const { schemas, Operations } = body as { schemas?: unknown; Operations?: unknown };
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase())) {
    throw badRequest('invalidSyntax', `"schemas" must include ${PATCH_OP_SCHEMA}`);
  }
  if (!Array.isArray(Operations) || Operations.length === 0) throw badRequest('invalidSyntax', '"Operations" must be a non-empty array');
  return Operations.map((raw: unknown, i) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('invalidSyntax', `Operations[${i}] must be an object`);
    const { op, path, value } = raw as { op?: unknown; path?: unknown; value?: JsonValue };
    const name = typeof op === 'string' ? op.toLowerCase() : undefined;
    if (name !== 'add' && name !== 'remove' && name !== 'replace') {
      throw badRequest('invalidSyntax', `Operations[${i}].op must be add, remove or replace, not ${JSON.stringify(op)}`);
    }
    if (path !== undefined && (typeof path !== 'string' || path.trim() === '')) throw badRequest('invalidPath', `Operations[${i}].path must be a non-empty string`);
    if (name === 'remove' && path === undefined) throw badRequest('noTarget', `Operations[${i}]: remove needs a path`);
    if (name !== 'remove' && value === undefined) throw badRequest('invalidValue', `Operations[${i}]: ${name} needs a value`);
    return { op: name, ...(path !== undefined && { path: path.trim() }), ...(value !== undefined && { value }) };
  });
}

/**
 * Applies operations to a resource with scim-patch (paths, value filters such as
 * `emails[type eq "work"].value`, no-path value objects), one at a time, so that a value an
 * operation marks primary takes the mark from the others before the next operation runs
 * (RFC 7644 §3.5.2; two adds of a primary email in one PATCH leave the second primary).
 * Returns the patched copy; the caller re-validates it as a whole body. scim-patch's
 * refusals become 400 with their scimType.
 */
export function applyPatch(resource: JsonObject, operations: readonly PatchOperation[]): JsonObject {
  let current = resource;
  for (const operation of operations.flatMap((op) => bySubAttribute(op, current))) {
    const before = current;
    if (operation.op === 'remove' && operation.path !== undefined && isExtensionUrn(operation.path, current)) {
      // The whole extension object: scim-patch would read the URN's last part as an attribute.
      const { [extensionKey(operation.path, current)]: _removed, ...rest } = current;
      current = rest;
      continue;
    }
    let after: JsonObject;
    try {
      after = scimPatch(structuredClone(before) as never, [operation] as ScimPatchOperation[], { mutateDocument: true }) as unknown as JsonObject;
    } catch (error) {
      const code = (error as { scimCode?: string }).scimCode;
      const message = (error as Error).message.replace(/^Invalid SCIM Patch: /, '');
      const scimType = code === 'noTarget' ? 'noTarget' : code === 'invalidPath' || /\bpath\b/i.test(message) ? 'invalidPath' : 'invalidValue';
      throw badRequest(scimType, message);
    }
    current = demotePrimaries(before, after);
  }
  return current;
}

/**
 * Add and replace set a complex attribute's sub-attributes, leaving those not given unchanged
 * (RFC 7644 §3.5.2.1 and §3.5.2.3), with a path or without one. scim-patch merges only when the
 * path names the attribute (`path: "name"`); a no-path value `{"name": {"givenName": "Ann"}}`
 * would lose `familyName`. And a schema extension's URN (RFC 7643 §3.3), as a path or as a key
 * of a no-path value, names the whole extension object, which scim-patch splits at its last
 * colon, as if `User` were an attribute of `urn:...:2.0`, storing the value under a made-up key.
 * So such an operation becomes one per sub-attribute (`name.givenName`,
 * `urn:...:User:costCenter`), which scim-patch reads right. Multi-valued attributes (arrays)
 * are left whole: replace replaces the list, add adds to it. The extensions known are the
 * enterprise one and those the resource declares in `schemas`.
 */
function bySubAttribute(op: PatchOperation, resource: JsonObject): PatchOperation[] {
  const value = op.value;
  if (op.op === 'remove') return [op];
  if (op.path !== undefined) {
    if (!isExtensionUrn(op.path, resource)) return [op];
    if (!isObject(value)) throw badRequest('invalidValue', `the value for ${op.path} must be an object of its attributes`);
    const urn = extensionKey(op.path, resource);
    return Object.entries(value).map(([key, v]) => ({ op: op.op, path: `${urn}:${key}`, value: v }));
  }
  if (!isObject(value)) return [op];
  const out: PatchOperation[] = [];
  const rest: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    if (!isObject(v)) rest[key] = v;
    else if (isExtensionUrn(key, resource)) {
      const urn = extensionKey(key, resource);
      for (const [attribute, x] of Object.entries(v)) out.push({ op: op.op, path: `${urn}:${attribute}`, value: x });
    } else if ([key, ...Object.keys(v)].every((name) => ATTR_NAME.test(name))) {
      for (const [sub, x] of Object.entries(v)) out.push({ op: op.op, path: `${key}.${sub}`, value: x });
    } else rest[key] = v;
  }
  return Object.keys(rest).length > 0 || out.length === 0 ? [{ ...op, value: rest }, ...out] : out;
}

/** RFC 7643 §2.1's ATTRNAME. */
const ATTR_NAME = /^[A-Za-z$][\w$-]*$/;

function isObject(v: JsonValue | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function knownExtensions(resource: JsonObject): string[] {
  const declared = Array.isArray(resource.schemas) ? resource.schemas.filter((s): s is string => typeof s === 'string' && s.toLowerCase().includes(':extension:')) : [];
  return [ENTERPRISE_USER_SCHEMA, ...declared];
}

function isExtensionUrn(text: string, resource: JsonObject): boolean {
  return knownExtensions(resource).some((urn) => urn.toLowerCase() === text.toLowerCase());
}

/** The extension's key as the resource spells it (URNs are case-insensitive, RFC 7643 §2.1). */
function extensionKey(text: string, resource: JsonObject): string {
  return Object.keys(resource).find((k) => k.toLowerCase() === text.toLowerCase()) ?? knownExtensions(resource).find((urn) => urn.toLowerCase() === text.toLowerCase())!;
}

/** What a group PATCH does to the members, in order; other operations go to applyPatch. */
export type MemberChange =
  | { readonly kind: 'add'; readonly members: MemberRef[] }
  | { readonly kind: 'remove'; readonly ids: string[] | 'all' }
  | { readonly kind: 'replace'; readonly members: MemberRef[] };

/**
 * Splits a group PATCH into member changes (done in SQL, since a group may hold thousands)
 * and the rest. Understands `members` add/replace/remove with values (Entra removes with a
 * value list), `members[value eq "id"]` removes, and no-path values carrying `members`.
 */
export function splitGroupPatch(operations: readonly PatchOperation[]): Array<{ members: MemberChange } | { other: PatchOperation }> {
  const out: Array<{ members: MemberChange } | { other: PatchOperation }> = [];
  for (const op of operations) {
    const path = op.path;
    if (path === undefined) {
      const value = op.value;
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const membersKey = Object.keys(value).find((k) => k.toLowerCase() === 'members');
        if (membersKey !== undefined) {
          const { [membersKey]: members, ...rest } = value;
          out.push({ members: { kind: op.op === 'add' ? 'add' : 'replace', members: readMembers(members ?? []) } });
          if (Object.keys(rest).length > 0) out.push({ other: { ...op, value: rest } });
          continue;
        }
      }
      out.push({ other: op });
      continue;
    }
    const lower = path.toLowerCase();
    if (lower === 'members') {
      if (op.op === 'remove') {
        const values = op.value === undefined || op.value === null ? undefined : readMembers(op.value);
        out.push({ members: { kind: 'remove', ids: values ? values.map((m) => m.value.toLowerCase()) : 'all' } });
      } else out.push({ members: { kind: op.op, members: readMembers(op.value ?? []) } });
      continue;
    }
    if (lower.startsWith('members[')) {
      if (op.op !== 'remove' || !/\]$/.test(path)) throw badRequest('invalidPath', `only remove is supported on a members value filter path, as in members[value eq "<id>"]`);
      let filter: Filter;
      try {
        filter = parse(path);
      } catch (error) {
        throw badRequest('invalidPath', `the path ${JSON.stringify(path)} cannot be parsed: ${(error as Error).message}`);
      }
      if (filter.op !== '[]') throw badRequest('invalidPath', `the path ${JSON.stringify(path)} is not a members value filter`);
      out.push({ members: { kind: 'remove', ids: memberIds(filter.valFilter) } });
      continue;
    }
    out.push({ other: op });
  }
  return out;
}
