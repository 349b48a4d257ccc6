import { randomBytes } from 'node:crypto';
import { type RawBuilder, type SqlBool, sql } from 'kysely';
import { type Filter, parse } from 'scim2-parse-filter';
import type { ScimPredicate } from '../db/scim.repository.js';
import { ScimError, badRequest } from './scim.errors.js';
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA } from './scim.schemas.js';

/**
 * SCIM filters (RFC 7644 §3.4.2.2) -> SQL over the stored resources. The filter is parsed by
 * scim2-parse-filter; every value reaches SQL as a bound parameter and every attribute name as
 * a quoted jsonpath key checked against the RFC's ATTRNAME grammar, so a filter cannot inject.
 *
 * Attributes with a column (id, userName, externalId, active, displayName, meta dates, group
 * members) use it and its index: `userName eq` is one index probe on 100k users. Any other
 * attribute is read from the stored resource with jsonpath in lax mode, so a multi-valued
 * attribute matches when any of its values does. String comparisons ignore case except for
 * `id` and `externalId` (caseExact in RFC 7643 §3.1, §4).
 */
export function compileFilter(text: string, resourceType: 'User' | 'Group'): ScimPredicate {
  let ast: Filter;
  try {
    ast = parseStrings(text);
  } catch (error) {
    if (error instanceof ScimError) throw error;
    const lenient = unquotedComparison(text);
    if (!lenient) throw badRequest('invalidFilter', `the filter ${JSON.stringify(text)} cannot be parsed: ${(error as Error).message}`);
    ast = lenient;
  }
  return compile(ast, resourceType === 'User' ? USER_COLUMNS : GROUP_COLUMNS, resourceType === 'User' ? USER_SCHEMA : GROUP_SCHEMA);
}

/**
 * Parses with scim2-parse-filter, but with string values decoded as the JSON strings RFC 7644
 * §3.4.2.2 says they are: the library keeps a backslash before anything but a quote as is, so
 * `"corp\\alice"` would be `corp\\alice` and `"\\"` an error. Each string is swapped for a
 * placeholder the library passes through, then put back decoded.
 */
function parseStrings(text: string): Filter {
  const nonce = `s${randomBytes(8).toString('hex')}_`;
  const values: string[] = [];
  const masked = text.replace(/"(?:[^"\\]|\\.)*"/g, (literal) => {
    let value: unknown;
    try {
      value = JSON.parse(literal);
    } catch {
      throw badRequest('invalidFilter', `${literal} in the filter is not a JSON string`);
    }
    values.push(value as string);
    return `"${nonce}${values.length - 1}"`;
  });
  const restore = (f: Filter): Filter => {
    const node = f as Filter & { compValue?: unknown; filters?: Filter[]; filter?: Filter; valFilter?: Filter };
    if (typeof node.compValue === 'string' && node.compValue.startsWith(nonce)) node.compValue = values[Number(node.compValue.slice(nonce.length))]!;
    node.filters?.forEach(restore);
    if (node.filter) restore(node.filter);
    if (node.valFilter) restore(node.valFilter);
    return f;
  };
  let ast: Filter;
  try {
    ast = parse(masked);
  } catch (error) {
    // The library's message quotes the masked text: put the client's own strings back.
    const message = (error as Error).message.replace(new RegExp(`${nonce}(\\d+)`, 'g'), (_, i: string) => JSON.stringify(values[Number(i)]).slice(1, -1));
    throw new Error(message);
  }
  return restore(ast);
}

const SIMPLE = /^\s*([A-Za-z][\w.:$-]*)\s+(eq|ne|co|sw|ew|gt|ge|lt|le)\s+(.+?)\s*$/i;

/**
 * One comparison whose value is not quoted as the RFC's grammar wants, as some clients send
 * it: `userName eq ann@example.com` (authentik before 2025.10) or `userName eq 'ann'`. The
 * value is taken as a string, bound as a parameter like any other.
 */
function unquotedComparison(text: string): Filter | undefined {
  const m = SIMPLE.exec(text);
  if (!m || m[3]!.startsWith('"')) return undefined;
  const single = /^'(.*)'$/.exec(m[3]!);
  const value = single ? single[1]! : m[3]!;
  if (!single && /[\s()\[\]"]/.test(value)) return undefined;
  return { op: m[2]!.toLowerCase(), attrPath: m[1]!, compValue: value } as Filter;
}

type Compare = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
type Value = string | number | boolean | null;

/** A column a filter attribute maps to, and how it compares. */
interface Column {
  readonly kind: 'text' | 'textCaseExact' | 'boolean' | 'timestamp' | 'uuid' | 'members' | 'groups';
  readonly sql: RawBuilder<unknown>;
}

const USER_COLUMNS: ReadonlyMap<string, Column> = new Map([
  ['id', { kind: 'uuid', sql: sql`id` }],
  ['username', { kind: 'text', sql: sql`user_name` }],
  ['externalid', { kind: 'textCaseExact', sql: sql`external_id` }],
  ['active', { kind: 'boolean', sql: sql`active` }],
  // A User's groups are computed from the Groups' members (readOnly, RFC 7643 §4.1.2).
  ['groups.value', { kind: 'groups', sql: sql`id` }],
  ['groups', { kind: 'groups', sql: sql`id` }],
  ['meta.created', { kind: 'timestamp', sql: sql`created_at` }],
  ['meta.lastmodified', { kind: 'timestamp', sql: sql`updated_at` }],
]);

const GROUP_COLUMNS: ReadonlyMap<string, Column> = new Map([
  ['id', { kind: 'uuid', sql: sql`id` }],
  ['displayname', { kind: 'text', sql: sql`display_name` }],
  ['externalid', { kind: 'textCaseExact', sql: sql`external_id` }],
  ['members.value', { kind: 'members', sql: sql`id` }],
  ['members', { kind: 'members', sql: sql`id` }],
  ['meta.created', { kind: 'timestamp', sql: sql`created_at` }],
  ['meta.lastmodified', { kind: 'timestamp', sql: sql`updated_at` }],
]);

const ATTR_NAME = /^[A-Za-z$][\w$-]*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function compile(f: Filter, columns: ReadonlyMap<string, Column>, coreSchema: string): RawBuilder<SqlBool> {
  switch (f.op) {
    case 'and': {
      const parts = mergeValuePaths(f.filters);
      return sql<SqlBool>`(${sql.join(parts.map((p) => compile(p, columns, coreSchema)), sql` and `)})`;
    }
    case 'or':
      return sql<SqlBool>`(${sql.join(f.filters.map((p) => compile(p, columns, coreSchema)), sql` or `)})`;
    case 'not':
      return sql<SqlBool>`not coalesce(${compile(f.filter, columns, coreSchema)}, false)`;
    case '[]': {
      const path = attributePath(f.attrPath, coreSchema);
      if (columns === GROUP_COLUMNS && path.length === 1 && path[0]!.toLowerCase() === 'members') return membersMatch(f.valFilter);
      // [*]: each element on its own, so the value filter and what follows it test the same one.
      return sql<SqlBool>`exists (select 1 from jsonb_path_query(resource, ${`${jsonPath(path)}[*]`}::jsonpath) e where ${compileElement(f.valFilter, [])})`;
    }
    case 'pr': {
      const column = columns.get(f.attrPath.toLowerCase().replace(`${coreSchema.toLowerCase()}:`, ''));
      if (column?.kind === 'members') return sql<SqlBool>`exists (select 1 from scim_group_members m where m.group_id = id)`;
      if (column?.kind === 'groups') return sql<SqlBool>`exists (select 1 from scim_group_members m where m.user_id = id)`;
      if (column) return sql<SqlBool>`(${column.sql} is not null)`;
      return present(sql`resource`, attributePath(f.attrPath, coreSchema));
    }
    default: {
      const { op, attrPath, compValue } = f as { op: Compare; attrPath: string; compValue: Value };
      if (!isCompare(op)) throw badRequest('invalidFilter', `the filter operator "${op}" is not one of eq, ne, co, sw, ew, gt, ge, lt, le, pr`);
      const column = columns.get(attrPath.toLowerCase().replace(`${coreSchema.toLowerCase()}:`, ''));
      if (column) return compareColumn(column, op, compValue, attrPath);
      return compareJson(sql`resource`, attributePath(attrPath, coreSchema), op, compValue);
    }
  }
}

/**
 * scim2-parse-filter reads `emails[type eq "work"].value eq "x"` as `emails[type eq "work"]`
 * and `emails.value eq "x"`; the RFC means both of one element. Rejoins such pairs.
 */
function mergeValuePaths(filters: Filter[]): Filter[] {
  const out: Filter[] = [];
  for (let i = 0; i < filters.length; i++) {
    const f = filters[i]!;
    const next = filters[i + 1] as { op: string; attrPath?: string } | undefined;
    if (f.op === '[]' && next && next.attrPath?.toLowerCase().startsWith(`${f.attrPath.toLowerCase()}.`)) {
      const sub = { ...next, attrPath: next.attrPath.slice(f.attrPath.length + 1) } as Filter;
      out.push({ op: '[]', attrPath: f.attrPath, valFilter: { op: 'and', filters: [f.valFilter, sub] } } as Filter);
      i++;
    } else out.push(f);
  }
  return out;
}

/** A value filter evaluated on one element `e` of a multi-valued attribute. */
function compileElement(f: Filter, prefix: string[]): RawBuilder<SqlBool> {
  switch (f.op) {
    case 'and':
      return sql<SqlBool>`(${sql.join(f.filters.map((p) => compileElement(p, prefix)), sql` and `)})`;
    case 'or':
      return sql<SqlBool>`(${sql.join(f.filters.map((p) => compileElement(p, prefix)), sql` or `)})`;
    case 'not':
      return sql<SqlBool>`not coalesce(${compileElement(f.filter, prefix)}, false)`;
    case '[]':
      throw badRequest('invalidFilter', 'a value filter cannot hold another value filter');
    case 'pr':
      return present(sql`e`, [...prefix, ...plainPath(f.attrPath)]);
    default: {
      const { op, attrPath, compValue } = f as { op: Compare; attrPath: string; compValue: Value };
      if (!isCompare(op)) throw badRequest('invalidFilter', `the filter operator "${op}" is not one of eq, ne, co, sw, ew, gt, ge, lt, le, pr`);
      return compareJson(sql`e`, [...prefix, ...plainPath(attrPath)], op, compValue);
    }
  }
}

/** `members[value eq "id"]` (and `or`s of those) on groups: a membership lookup. */
function membersMatch(f: Filter): RawBuilder<SqlBool> {
  const ids = memberIds(f);
  if (ids.length === 0) return sql<SqlBool>`false`;
  return sql<SqlBool>`exists (select 1 from scim_group_members m where m.group_id = id and m.user_id::text in (${sql.join(ids)}))`;
}

/** The ids a `value eq "id"` filter (or an `or` of them) names; other forms are refused. */
export function memberIds(f: Filter): string[] {
  if (f.op === 'or') return f.filters.flatMap(memberIds);
  if (f.op === 'eq' && f.attrPath.toLowerCase() === 'value' && typeof f.compValue === 'string') return [f.compValue.toLowerCase()];
  throw badRequest('invalidFilter', 'a members value filter must be value eq "<id>", or such filters joined with or');
}

function isCompare(op: string): op is Compare {
  return ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'].includes(op);
}

function compareColumn(column: Column, op: Compare, value: Value, attrPath: string): RawBuilder<SqlBool> {
  switch (column.kind) {
    case 'members':
    case 'groups': {
      if (typeof value !== 'string') throw badRequest('invalidFilter', `${attrPath} compares with an id string`);
      const match =
        column.kind === 'members'
          ? sql<SqlBool>`exists (select 1 from scim_group_members m where m.group_id = id and m.user_id::text = ${value.toLowerCase()})`
          : sql<SqlBool>`exists (select 1 from scim_group_members m where m.user_id = id and m.group_id::text = ${value.toLowerCase()})`;
      if (op === 'eq') return match;
      if (op === 'ne') return sql<SqlBool>`not ${match}`;
      throw badRequest('invalidFilter', `${attrPath} supports only eq and ne`);
    }
    case 'boolean': {
      if (typeof value !== 'boolean') throw badRequest('invalidFilter', `${attrPath} compares with true or false, not ${JSON.stringify(value)}`);
      if (op === 'eq') return sql<SqlBool>`(${column.sql} = ${value})`;
      if (op === 'ne') return sql<SqlBool>`(${column.sql} <> ${value})`;
      throw badRequest('invalidFilter', `${attrPath} supports only eq and ne`);
    }
    case 'timestamp': {
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw badRequest('invalidFilter', `${attrPath} compares with a date-time such as "2026-11-29T00:00:00Z"`);
      const operator = { eq: '=', ne: '<>', gt: '>', ge: '>=', lt: '<', le: '<=' }[op as 'eq'];
      if (!operator) throw badRequest('invalidFilter', `${attrPath} supports eq, ne, gt, ge, lt and le`);
      return sql<SqlBool>`(${column.sql} ${sql.raw(operator)} ${new Date(value).toISOString()}::timestamptz)`;
    }
    case 'uuid': {
      if (value === null) return sql<SqlBool>`${op === 'ne'}`;
      if (typeof value !== 'string') throw badRequest('invalidFilter', `${attrPath} compares with a string`);
      // Ids are caseExact; a malformed one matches nothing rather than failing the cast.
      return textCompare(sql`${column.sql}::text`, op, UUID.test(value) ? value.toLowerCase() : value, true, attrPath);
    }
    default: {
      if (value === null) return op === 'eq' ? sql<SqlBool>`(${column.sql} is null)` : sql<SqlBool>`(${column.sql} is not null)`;
      if (typeof value !== 'string') throw badRequest('invalidFilter', `${attrPath} compares with a string, not ${JSON.stringify(value)}`);
      // userName eq: the unique index's own key, so the lookup is one index probe.
      if (column.kind === 'text' && op === 'eq' && column.sql === USER_COLUMNS.get('username')!.sql) {
        return sql<SqlBool>`(user_name_key = lower(normalize(${value}::text, NFC)))`;
      }
      if (column.kind === 'text' && op === 'eq' && column.sql === GROUP_COLUMNS.get('displayname')!.sql) {
        return sql<SqlBool>`(lower(display_name) = lower(${value}::text))`;
      }
      return textCompare(column.sql, op, value, column.kind === 'textCaseExact', attrPath);
    }
  }
}

function textCompare(expr: RawBuilder<unknown>, op: Compare, value: string, caseExact: boolean, attrPath: string): RawBuilder<SqlBool> {
  const l = caseExact ? expr : sql`lower(${expr})`;
  const r = caseExact ? sql`${value}::text` : sql`lower(${value}::text)`;
  switch (op) {
    case 'eq':
      return sql<SqlBool>`(${l} = ${r})`;
    case 'ne':
      return sql<SqlBool>`(${l} is distinct from ${r})`;
    case 'co':
      return sql<SqlBool>`(strpos(${l}, ${r}) > 0)`;
    case 'sw':
      return sql<SqlBool>`starts_with(${l}, ${r})`;
    case 'ew':
      return sql<SqlBool>`(right(${l}, length(${r})) = ${r})`;
    case 'gt':
      return sql<SqlBool>`(${l} > ${r})`;
    case 'ge':
      return sql<SqlBool>`(${l} >= ${r})`;
    case 'lt':
      return sql<SqlBool>`(${l} < ${r})`;
    case 'le':
      return sql<SqlBool>`(${l} <= ${r})`;
  }
  throw badRequest('invalidFilter', `${attrPath}: unknown operator ${String(op)}`);
}

/** Compares every value a jsonpath reaches from `base`; true when one matches (ne: when none equals). */
function compareJson(base: RawBuilder<unknown>, path: string[], op: Compare, value: Value): RawBuilder<SqlBool> {
  // Each value of a multi-valued attribute ([*]: lax mode takes a single value as itself); a
  // complex one (an element of `emails`) compares by its `value` sub-attribute, as RFC 7644
  // §3.4.2.2's own example `emails co "example.com"` does.
  const values = sql`jsonb_path_query(${base}, ${`${jsonPath(path)}[*]`}::jsonpath) as x(j) cross join lateral (select case when jsonb_typeof(j) = 'object' then coalesce(j -> 'value', j) else j end) as w(v)`;
  if (op === 'ne') return sql<SqlBool>`not ${compareJson(base, path, 'eq', value)}`;
  if (value === null) return op === 'eq' ? sql<SqlBool>`not exists (select 1 from ${values} where v <> 'null'::jsonb)` : sql<SqlBool>`false`;
  const attr = path.join('.');
  let test: RawBuilder<SqlBool>;
  if (typeof value === 'boolean') {
    if (op !== 'eq') throw badRequest('invalidFilter', `${attr} compares with true or false only with eq or ne`);
    test = sql<SqlBool>`(v = ${JSON.stringify(value)}::jsonb)`;
  } else if (typeof value === 'number') {
    const operator = { eq: '=', gt: '>', ge: '>=', lt: '<', le: '<=' }[op as 'eq'];
    if (!operator) throw badRequest('invalidFilter', `${attr} compares with a number only with eq, ne, gt, ge, lt or le`);
    test = sql<SqlBool>`(jsonb_typeof(v) = 'number' and (v #>> '{}')::numeric ${sql.raw(operator)} ${value})`;
  } else {
    const caseExact = path.length === 1 && path[0]!.toLowerCase() === 'externalid';
    test = sql<SqlBool>`(jsonb_typeof(v) = 'string' and ${textCompare(sql`(v #>> '{}')`, op, value, caseExact, attr)})`;
  }
  return sql<SqlBool>`exists (select 1 from ${values} where ${test})`;
}

function present(base: RawBuilder<unknown>, path: string[]): RawBuilder<SqlBool> {
  return sql<SqlBool>`exists (select 1 from jsonb_path_query(${base}, ${jsonPath(path)}::jsonpath) v where v not in ('null'::jsonb, '""'::jsonb, '[]'::jsonb, '{}'::jsonb))`;
}

/** An attribute path as stored keys: a schema URN prefix becomes the extension's key (core ones drop it). */
function attributePath(attrPath: string, coreSchema: string): string[] {
  const lower = attrPath.toLowerCase();
  if (lower.startsWith(`${coreSchema.toLowerCase()}:`)) return plainPath(attrPath.slice(coreSchema.length + 1));
  if (lower.startsWith(`${ENTERPRISE_USER_SCHEMA.toLowerCase()}:`)) return [ENTERPRISE_USER_SCHEMA, ...plainPath(attrPath.slice(ENTERPRISE_USER_SCHEMA.length + 1))];
  if (lower.startsWith('urn:')) {
    // Another extension: its URN is everything up to the last colon.
    const at = attrPath.lastIndexOf(':');
    const urn = attrPath.slice(0, at);
    if (!/^urn:[\w.:-]+$/.test(urn)) throw badRequest('invalidFilter', `"${attrPath}" is not an attribute path`);
    return [urn, ...plainPath(attrPath.slice(at + 1))];
  }
  return plainPath(attrPath);
}

function plainPath(attrPath: string): string[] {
  const parts = attrPath.split('.');
  for (const p of parts) if (!ATTR_NAME.test(p)) throw badRequest('invalidFilter', `"${attrPath}" is not an attribute path`);
  return parts;
}

/** `$."a"."b"` in lax mode: arrays on the way are unwrapped, so each element is reached. */
function jsonPath(path: string[]): string {
  return `lax $${path.map((p) => `."${p.replace(/["\\]/g, (c) => `\\${c}`)}"`).join('')}`;
}
