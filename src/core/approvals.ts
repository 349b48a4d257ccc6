import type { JsonObject } from './model.js';
import type { GroupDelete, Membership, UserDeprovision } from './plan.js';

/**
 * A destructive operation, as held plans and approvals name it: what an admin approves is
 * "deprovision this IdP user", "delete this group", "remove this member from this group",
 * each identified by IdP ids (never by names, which change).
 */
export type DestructiveOp =
  | { readonly kind: 'user.deprovisioned'; readonly externalId: string }
  | { readonly kind: 'group.deleted'; readonly externalId: string }
  | { readonly kind: 'membership.removed'; readonly groupExternalId: string; readonly userExternalId: string };

export type DestructiveKind = DestructiveOp['kind'];

/** The destructive operation each planned item is. */
export const destructive = {
  deprovision: (d: Pick<UserDeprovision, 'externalId'>): DestructiveOp => ({ kind: 'user.deprovisioned', externalId: d.externalId }),
  groupDelete: (g: Pick<GroupDelete, 'externalId'>): DestructiveOp => ({ kind: 'group.deleted', externalId: g.externalId }),
  membershipRemove: (m: Pick<Membership, 'groupExternalId' | 'userExternalId'>): DestructiveOp => ({
    kind: 'membership.removed',
    groupExternalId: m.groupExternalId,
    userExternalId: m.userExternalId,
  }),
};

/**
 * How an operation is written in the change log: its `external_id` column (a membership is
 * `group/user`) and the detail that names its parts exactly, whatever characters ids hold.
 */
export function changeLogId(op: DestructiveOp): string {
  return op.kind === 'membership.removed' ? `${op.groupExternalId}/${op.userExternalId}` : op.externalId;
}

/** The membership's ids as change-log detail, so reading it back never splits an id. */
export function membershipDetail(m: Pick<Membership, 'groupExternalId' | 'userExternalId'>): JsonObject {
  return { group: m.groupExternalId, user: m.userExternalId };
}

/** A change-log row back to the operation it records; undefined for a kind that is not destructive. */
export function destructiveFromChange(kind: string, externalId: string, detail: JsonObject | null): DestructiveOp | undefined {
  switch (kind) {
    case 'user.deprovisioned':
    case 'group.deleted':
      return { kind, externalId };
    case 'membership.removed': {
      if (typeof detail?.group === 'string' && typeof detail.user === 'string') {
        return { kind, groupExternalId: detail.group, userExternalId: detail.user };
      }
      // Rows written before the detail named the ids: Okta and authentik ids hold no '/'.
      const at = externalId.indexOf('/');
      return at < 0 ? undefined : { kind, groupExternalId: externalId.slice(0, at), userExternalId: externalId.slice(at + 1) };
    }
    default:
      return undefined;
  }
}

/** A set of destructive operations, compared by value. */
export class DestructiveSet implements Iterable<DestructiveOp> {
  private readonly ops = new Map<string, DestructiveOp>();

  constructor(ops: Iterable<DestructiveOp> = []) {
    for (const op of ops) this.add(op);
  }

  add(op: DestructiveOp): void {
    this.ops.set(key(op), op);
  }

  has(op: DestructiveOp): boolean {
    return this.ops.has(key(op));
  }

  get size(): number {
    return this.ops.size;
  }

  [Symbol.iterator](): Iterator<DestructiveOp> {
    return this.ops.values();
  }
}

function key(op: DestructiveOp): string {
  return JSON.stringify(op.kind === 'membership.removed' ? [op.kind, op.groupExternalId, op.userExternalId] : [op.kind, op.externalId]);
}
