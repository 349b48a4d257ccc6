/**
 * The normalized directory model every connector produces and the planner consumes.
 * Pure data: no IO, no provider specifics beyond the raw attributes kept verbatim.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** The fields a user's identity and profile are compared on, wherever the user comes from. */
interface UserFields {
  /** The IdP's immutable id. */
  readonly externalId: string;
  readonly userName: string;
  readonly email: string | null;
  readonly givenName: string | null;
  readonly familyName: string | null;
  readonly displayName: string | null;
  /** Stable hash of the named fields and raw attributes (not `active`/`status`); equal hash, nothing to update. */
  readonly fingerprint: string;
}

/** A user as the IdP reports it, normalized. */
export interface DirectoryUser extends UserFields {
  /** False when the IdP reports the user deactivated, suspended or deprovisioned. */
  readonly active: boolean;
  /** The IdP's own status word (Okta `SUSPENDED`, authentik `inactive`), kept for the change log. */
  readonly status: string;
  /** Every raw profile attribute the IdP sent, so nothing is lost. */
  readonly attributes: JsonObject;
}

export interface DirectoryGroup {
  readonly externalId: string;
  readonly name: string;
  readonly description: string | null;
  readonly attributes: JsonObject;
  readonly fingerprint: string;
  /** The IdP's version of the membership (Okta lastMembershipUpdated), when it has one. */
  readonly membersVersion?: string | null;
}

/**
 * Everything one integration's scope contains at one moment. Only complete snapshots
 * exist: a connector that could not read every page throws instead of returning one.
 */
export interface Snapshot {
  readonly users: ReadonlyMap<string, DirectoryUser>;
  readonly groups: ReadonlyMap<string, DirectoryGroup>;
  /** group externalId -> member user externalIds (members outside the scope already dropped). */
  readonly memberships: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * Groups whose members were not re-read because their version matched what the tenant
   * already holds. Only `completeSnapshot` may see these; the planner needs them filled in.
   */
  readonly unreadMembers?: ReadonlySet<string>;
}

/** What the tenant holds locally for one integration, keyed by the IdP's external ids. */
export interface LocalUser extends UserFields {
  /** Tenant access is active; false means deprovisioned (suspend mode keeps the row). */
  readonly active: boolean;
}

export interface LocalGroup {
  readonly externalId: string;
  readonly name: string;
  readonly description: string | null;
  readonly fingerprint: string;
}

export interface LocalState {
  readonly users: ReadonlyMap<string, LocalUser>;
  readonly groups: ReadonlyMap<string, LocalGroup>;
  readonly memberships: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * IdP users whose access this integration removed (remove-access and delete modes) and who
   * are still locked: when the IdP provisions them again, that is a reprovision, not a create.
   */
  readonly lockedOut: ReadonlySet<string>;
}

export const USER_FIELDS = ['userName', 'email', 'givenName', 'familyName', 'displayName'] as const;
export type UserField = (typeof USER_FIELDS)[number];

export function emptyLocalState(): LocalState {
  return { users: new Map(), groups: new Map(), memberships: new Map(), lockedOut: new Set() };
}
