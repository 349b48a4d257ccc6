import type { JsonObject } from '../core/model.js';

/**
 * What the host app hears of every applied change (SPEC "Event"):
 * `{"id","cursor","type","tenant","integrationId","runId","occurredAt","data"}`.
 */
export interface DirsyncEvent {
  /** Unique and stable: the Standard Webhooks `webhook-id` of its deliveries. */
  readonly id: string;
  /** Opaque; reading after it never skips an event (see EventRepository.after). */
  readonly cursor: string;
  readonly type: EventType;
  /** The tenant's slug. */
  readonly tenant: string;
  readonly integrationId: string;
  /** The run that applied the change; null for a change no run made (the integration's deletion). */
  readonly runId: string | null;
  /** ISO 8601: when the change was applied. */
  readonly occurredAt: string;
  /** The account (or group) as `dirsync users`/`groups` show it, with its id and the person's id, and what the type adds. */
  readonly data: JsonObject;
}

export const EVENT_TYPES = [
  'user.created',
  'user.updated',
  'user.deprovisioned',
  'user.reprovisioned',
  'user.deleted',
  'group.created',
  'group.updated',
  'group.deleted',
  'group.user_added',
  'group.user_removed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** A position in the feed: after the transaction `txid`, row `id` (see migration 2026-11-30T0200-events). */
export interface Cursor {
  readonly txid: string;
  readonly id: string;
}

/** The cursor as the API and CLI show it: `<txid>.<id>`, both decimal. */
export function formatCursor(cursor: Cursor): string {
  return `${cursor.txid}.${cursor.id}`;
}

/** Feed order: negative when `a` comes before `b`, 0 when they are the same position. */
export function compareCursors(a: Cursor, b: Cursor): number {
  const byTxid = BigInt(a.txid) - BigInt(b.txid);
  const delta = byTxid !== 0n ? byTxid : BigInt(a.id) - BigInt(b.id);
  return delta < 0n ? -1 : delta > 0n ? 1 : 0;
}

/** Reads a cursor a client sends back; undefined when it is not one this feed gave out. */
export function parseCursor(text: string): Cursor | undefined {
  const m = /^(\d{1,20})\.(\d{1,19})$/.exec(text);
  if (!m) return undefined;
  // Both are bigint-range in Postgres (xid8 is unsigned 64-bit; ids are bigserial).
  if (BigInt(m[1]!) > 18446744073709551615n || BigInt(m[2]!) > 9223372036854775807n) return undefined;
  return { txid: m[1]!, id: m[2]! };
}

/** The change-log row an event is read from. */
export interface ChangeRow {
  readonly id: string;
  readonly txid: string;
  readonly kind: string;
  /** The change's subject id: the IdP id of a user or group (a membership's are in its detail). */
  readonly externalId: string;
  readonly tenantSlug: string;
  readonly integrationId: string;
  readonly runId: string | null;
  readonly createdAt: Date;
  readonly detail: JsonObject | null;
}

/**
 * A change-log row as an event. The change-log kinds name memberships `membership.*`; events
 * use SPEC's `group.user_added`/`group.user_removed`. A deprovision in delete mode (the
 * account and, without other accounts, the person removed) is `user.deleted`; in the other
 * modes `user.deprovisioned`. Both carry `mode`, `reason` and the `lock`.
 */
export function toEvent(row: ChangeRow): DirsyncEvent {
  const { of, ids: stored, group: groupId, user: userId, ...rest } = (row.detail ?? {}) as JsonObject & { of?: JsonObject; ids?: StoredIds };
  const described = (of ?? {}) as { account?: JsonObject; group?: JsonObject; lock?: JsonObject };
  const ids: StoredIds = stored ?? {};
  const membership = row.kind.startsWith('membership.');
  const data: JsonObject = {};
  // Only what SPEC's Event names: the change log's other details (the IdP status, a group's
  // description beside its group) stay in the change log.
  for (const key of EVENT_DETAILS) if (rest[key] !== undefined) data[key] = rest[key];
  // As of the change: attributes as planned, ids (and active, locked) as the tenant held them
  // right after it in the same transaction, or right before it for a subject it removed.
  if (described.account || ids.accountId) {
    const externalId = membership ? (userId as string) : row.externalId;
    const account: JsonObject = { id: null, personId: null, externalId, ...withoutNulls(described.account ?? {}) };
    if (ids.accountId) Object.assign(account, { id: ids.accountId, personId: ids.personId ?? null, active: ids.active ?? account.active, locked: ids.locked ?? account.locked });
    data.account = account;
  }
  if (described.group || ids.groupId) {
    const externalId = membership ? (groupId as string) : row.externalId;
    data.group = { id: null, externalId, ...withoutNulls(described.group ?? {}), ...(ids.groupId ? { id: ids.groupId } : {}) };
  }
  // A rename can move the account to another person (SPEC "Identity"): said as a change, so
  // the host app knows whose access in this tenant moved.
  const personBefore = described.account?.personId;
  if (row.kind === 'user.updated' && typeof personBefore === 'string' && ids.personId && personBefore !== ids.personId) {
    data.changes = { ...((data.changes as JsonObject | undefined) ?? {}), personId: { previous: personBefore, new: ids.personId } };
  }
  const lock = ids.lock ?? described.lock;
  if (lock && (row.kind === 'user.deprovisioned' || row.kind === 'user.reprovisioned')) {
    // Timestamps as occurredAt shows them (ISO 8601, UTC, milliseconds).
    data.lock = typeof lock.since === 'string' ? { ...lock, since: new Date(lock.since).toISOString() } : lock;
  }
  return {
    id: row.id,
    cursor: formatCursor(row),
    type: eventType(row.kind, rest),
    tenant: row.tenantSlug,
    integrationId: row.integrationId,
    runId: row.runId,
    occurredAt: row.createdAt.toISOString(),
    data,
  };
}

/**
 * The change details an event carries besides its subject: `mode`, `reason` (deprovisions),
 * `changed`, `changes` (updates), `members` (a group's deletion), `with` (a membership removal
 * that went with its group or its user), `adopted` (a created user who took over an account
 * nobody owned: its id).
 */
const EVENT_DETAILS = ['mode', 'reason', 'changed', 'changes', 'members', 'with', 'adopted'] as const;

/** What recordApplied stored of the subject in the tenant right after the change. */
interface StoredIds {
  readonly accountId?: string;
  readonly personId?: string;
  readonly active?: boolean;
  readonly locked?: boolean;
  readonly groupId?: string;
  readonly lock?: JsonObject;
}

/** Ids read before a removal are kept; a null read now does not hide them. */
function withoutNulls(object: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(object)) if (v !== null || (k !== 'id' && k !== 'personId')) out[k] = v;
  return out;
}

function eventType(kind: string, detail: JsonObject): EventType {
  switch (kind) {
    case 'membership.added':
      return 'group.user_added';
    case 'membership.removed':
      return 'group.user_removed';
    case 'user.deprovisioned':
      return detail.mode === 'delete' ? 'user.deleted' : 'user.deprovisioned';
    default:
      return kind as EventType;
  }
}
