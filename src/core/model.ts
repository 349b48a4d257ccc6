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
 * An IdP record in scope that cannot be taken as it is (SPEC "Per-record isolation"): a value
 * Postgres cannot store, an over-long or missing login, a clash with another record. It is
 * evidence that the record exists, so it is never deprovisioned for being unreadable.
 */
export interface SkippedRecord {
  readonly kind: 'user' | 'group';
  /** The IdP's id, or null when even that could not be read. */
  readonly externalId: string | null;
  /** What an admin knows the record by: a login or group name when readable, else the id. */
  readonly subject: string;
  /** One sentence: what is wrong and where to fix it. */
  readonly reason: string;
  /**
   * A user whose status could be read: whether that status keeps access. A status that
   * deprovisions still applies, so bad data never keeps anyone in. Absent when unreadable.
   */
  readonly active?: boolean;
}

/**
 * Everything one integration's scope contains at one moment. Only complete snapshots
 * exist: a connector that could not read every page throws instead of returning one.
 */
export interface Snapshot {
  readonly users: ReadonlyMap<string, DirectoryUser>;
  readonly groups: ReadonlyMap<string, DirectoryGroup>;
  /**
   * group externalId -> member user externalIds. Members outside the scope are already
   * dropped; members skipped as unreadable are kept (they are in scope).
   */
  readonly memberships: ReadonlyMap<string, ReadonlySet<string>>;
  /** Records in scope that could not be taken as they are; empty when all could. */
  readonly skipped: readonly SkippedRecord[];
  /**
   * Why the read looks incomplete although every page answered (authentik bindings naming
   * groups the groups listing lacks): every destructive operation is then held.
   */
  readonly suspicious: readonly string[];
  /**
   * Groups whose members were not re-read because their version matched what the tenant
   * already holds. Only `completeSnapshot` may see these; the planner needs them filled in.
   */
  readonly unreadMembers?: ReadonlySet<string>;
}

/** A tenant account this integration owns, keyed by the IdP's external id. */
export interface LocalUser extends UserFields {
  /** The account is active; false means deprovisioned (suspend mode keeps the account). */
  readonly active: boolean;
}

/**
 * A tenant account this integration does not own, found by normalized userName: adopted when
 * unowned (no owner, or a disabled one) and not locked, a per-record conflict when another
 * enabled integration owns it (SPEC "Adoption"). A locked unowned account is not offered: a
 * new identity with its login gets an account of its own and lifts no lock.
 */
export interface OtherAccount {
  readonly accountId: string;
  /** The integration that owns it, when that integration is enabled; null when nobody enabled does. */
  readonly ownedByEnabled: string | null;
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
  /** The tenant's accounts other integrations own or nobody does, by normalized userName. */
  readonly others: ReadonlyMap<string, OtherAccount>;
}

/**
 * An account as the IdP user it was applied from: equal fields and fingerprint, so a plan finds
 * nothing to do for it. How a narrowed read stands in for users it did not read whole.
 */
export function accountAsRead(account: LocalUser): DirectoryUser {
  return { ...account, status: account.active ? 'active' : 'inactive', attributes: {} };
}

/** A group as the tenant holds it, standing in for a read of it: a plan finds nothing to do for it. */
export function groupAsRead(group: LocalGroup): DirectoryGroup {
  return { ...group, attributes: {} };
}

export const USER_FIELDS = ['userName', 'email', 'givenName', 'familyName', 'displayName'] as const;
export type UserField = (typeof USER_FIELDS)[number];

export function emptyLocalState(): LocalState {
  return { users: new Map(), groups: new Map(), memberships: new Map(), lockedOut: new Set(), others: new Map() };
}

const ASCII = /^[\x00-\x7f]*$/;

/** Why IdP users whose userNames normalize alike are all skipped: which of them is the person cannot be told. */
export function userNameClash(externalIds: readonly string[], userName: string): string {
  return `IdP users ${[...externalIds].sort().join(' and ')} have the same userName "${userName}" (compared case-insensitively); rename one in the IdP`;
}

/**
 * A userName as people are matched by it (SPEC: "normalized userName, Unicode
 * case-insensitive"): NFC, then lower-cased code point by code point, as Postgres's
 * lower(normalize(x, NFC)) keys people and accounts. Code point by code point because that is
 * how Postgres folds: a final capital sigma becomes σ (toLowerCase gives ς by context), and İ
 * becomes i (toLowerCase gives i + a combining dot).
 */
export function userNameKey(userName: string): string {
  // ASCII (nearly every login): NFC changes nothing and both fold alike.
  if (ASCII.test(userName)) return userName.toLowerCase();
  let key = '';
  for (const c of userName.normalize('NFC')) key += c === '\u0130' ? 'i' : c.toLowerCase();
  return key;
}
