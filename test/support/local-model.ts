import type { DirectoryUser, LocalGroup, LocalState, LocalUser, OtherAccount, SkippedRecord, Snapshot } from '../../src/core/model.js';
import type { Plan } from '../../src/core/plan.js';
import type { Policy } from '../../src/core/policy.js';

/**
 * Two independent pieces for the planner's property tests, both written from
 * /work/shared/SPEC.md ("Identity: accounts and people", "Group", "Deprovision", "Safety")
 * and the planner's exported *types* only, never from the body of `plan()` or from apply:
 *
 * - `oracle(state, snapshot, policy)`: what one integration's slice of a tenant must hold
 *   after a clean, applied run that read `snapshot`, starting from any valid `state`.
 * - `applyPlan(state, plan, policy)`: each typed operation of a Plan applied literally, with
 *   the meaning SPEC gives it. It throws when an operation has no meaning in the state it is
 *   applied to (updating an account that does not exist, creating one twice...), so a plan
 *   that only "works" because apply is forgiving fails.
 *
 * Where SPEC is silent, the choice is marked "SPEC is silent" with the reason; where more than
 * one reading is defensible the oracle leaves that part open (see `Expected.allowed` and the
 * `clash` option) instead of guessing what the planner does.
 */

/** SPEC: people are matched by "normalized userName (Unicode case-insensitive)": NFC, lower case. */
export function loginKey(userName: string): string {
  return userName.normalize('NFC').toLowerCase();
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

export interface Expected {
  /** The integration's accounts by IdP id: fields, fingerprint, active. Exact. */
  readonly users: ReadonlyMap<string, LocalUser>;
  /** The integration's groups by IdP group id. Exact. */
  readonly groups: ReadonlyMap<string, LocalGroup>;
  /** Memberships that must exist, group id -> account ids. */
  readonly required: ReadonlyMap<string, ReadonlySet<string>>;
  /** Memberships that may exist (a superset of `required`); anything else must not. */
  readonly allowed: ReadonlyMap<string, ReadonlySet<string>>;
  /** IdP ids whose account was removed and who are still locked out. Exact. */
  readonly lockedOut: ReadonlySet<string>;
  /** The tenant's accounts this integration does not own, after adoptions. Exact. */
  readonly others: ReadonlyMap<string, OtherAccount>;
  /** Records read but not taken because another enabled integration owns their login. */
  readonly conflicts: ReadonlySet<string>;
  /** Records whose login normalizes like another record's in the same snapshot. */
  readonly clashing: ReadonlySet<string>;
}

export interface OracleOptions {
  /**
   * Two records of one snapshot whose logins normalize alike. SPEC lists "a clash with
   * another record" among the reasons to skip a record, but also says logins never identify
   * anyone and a reused login is simply a new account, and it does not say whether two
   * records whose logins differ only by case or normalization clash. Both readings are
   * computed: `skip` (neither is taken; a readable deprovisioning status still applies) and
   * `take` (each is taken on its own, as identity is by IdP id alone).
   */
  readonly clash: 'skip' | 'take';
}

/** `take` cannot say which of two new records adopts one unowned account: no defensible answer. */
export class Ambiguous extends Error {}

function accountOf(u: DirectoryUser, active: boolean): LocalUser {
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

export function oracle(state: LocalState, snap: Snapshot, policy: Policy, options: OracleOptions = { clash: 'skip' }): Expected {
  // SPEC Deprovision: suspend keeps the account inactive; remove-access and delete remove it
  // (delete also removes the person, which is outside one integration's slice). The lock SPEC
  // records in every mode is, in this slice, the inactive account (suspend) or `lockedOut`.
  const removes = policy.deprovisionMode !== 'suspend';

  const skippedUsers = new Map<string, SkippedRecord>();
  const skippedGroups = new Set<string>();
  for (const r of snap.skipped) {
    // SPEC is silent on a record whose id could not be read: it cannot be tied to an account,
    // so it protects none (an account absent from the snapshot is out of scope).
    if (r.externalId === null) continue;
    if (r.kind === 'user') skippedUsers.set(r.externalId, r);
    else skippedGroups.add(r.externalId);
  }

  // SPEC Adoption / Safety: a record whose login an account of *another enabled* integration
  // holds is a per-record conflict: skipped, never created or renamed. An identity whose own
  // account already holds that login (created before the other integration was enabled) is
  // matched to nothing new: SPEC is silent, and taking it neither creates nor renames anything.
  const conflicts = new Set<string>();
  for (const u of snap.users.values()) {
    const other = state.others.get(loginKey(u.userName));
    const own = state.users.get(u.externalId);
    if (other && other.ownedByEnabled !== null && !(own && loginKey(own.userName) === loginKey(u.userName))) conflicts.add(u.externalId);
  }
  const byKey = new Map<string, string[]>();
  // Logins that normalize alike clash within the read itself, whatever else the tenant holds:
  // the reader cannot know of conflicts, so a conflicting record still clashes.
  for (const u of snap.users.values()) {
    const k = loginKey(u.userName);
    byKey.set(k, [...(byKey.get(k) ?? []), u.externalId]);
  }
  const clashing = new Set([...byKey.values()].filter((ids) => ids.length > 1).flat());
  /** Records read (id and status readable) but not taken as they are. */
  const untaken = new Set([...conflicts, ...(options.clash === 'skip' ? clashing : [])]);

  const users = new Map<string, LocalUser>(state.users);
  const lockedOut = new Set(state.lockedOut);
  const others = new Map(state.others);
  const claims = new Map<string, string[]>();

  const deprovision = (id: string) => {
    // SPEC Deprovision; only an account that still has access is deprovisioned (once).
    const account = users.get(id)!;
    if (removes) {
      users.delete(id);
      lockedOut.add(id);
    } else users.set(id, { ...account, active: false });
  };

  const ids = new Set([...state.users.keys(), ...state.lockedOut, ...snap.users.keys()]);
  for (const id of ids) {
    const account = state.users.get(id);
    const record = snap.users.get(id);
    const skipped = skippedUsers.get(id);
    if (record && !untaken.has(id)) {
      if (account) {
        // SPEC Identity: identified only by the IdP id; the account holds every attribute
        // exactly as that IdP reports it (a rename is an update of the same account).
        if (record.active) users.set(id, accountOf(record, true)); // update, or reprovision of an inactive account
        else if (account.active && removes) deprovision(id);
        else users.set(id, accountOf(record, false)); // deprovisioned (suspend), or already was: attributes still follow the IdP
      } else if (record.active) {
        // A new identity, or (in lockedOut) the same identity provisioned again: SPEC
        // "the lock is lifted and access restored". SPEC Adoption: an unowned account with the
        // same normalized userName is adopted, never duplicated (a reprovision too: the
        // account that identity had is gone).
        const other = others.get(loginKey(record.userName));
        if (other && other.ownedByEnabled === null) claims.set(loginKey(record.userName), [...(claims.get(loginKey(record.userName)) ?? []), id]);
        users.set(id, accountOf(record, true));
        lockedOut.delete(id);
      }
      // README: "Users the IdP reports inactive and the tenant never had are not created"
      // (SPEC is silent); an inactive identity still locked out stays locked out.
    } else if (record) {
      // SPEC Safety: "A status that deprovisions still applies when the record's id and status
      // are readable". Nothing else of the record is taken.
      if (account?.active && !record.active) deprovision(id);
    } else if (skipped) {
      // SPEC Safety: a skipped record "is never deprovisioned for being unreadable", but a
      // readable status that deprovisions still applies.
      if (account?.active && skipped.active === false) deprovision(id);
    } else if (account?.active) {
      deprovision(id); // SPEC Deprovision: "when it leaves the scope"
    }
  }
  for (const [key, claimants] of claims) {
    if (claimants.length > 1) throw new Ambiguous(`${claimants.join(' and ')} would both adopt the account of ${key}`);
    others.delete(key);
  }

  // SPEC Group: a group belongs to the integration, identified by the IdP's group id. A
  // skipped group is left as it is: never deleted for being unreadable, nor created.
  const groups = new Map<string, LocalGroup>();
  for (const [id, g] of state.groups) if (skippedGroups.has(id) && !snap.groups.has(id)) groups.set(id, g);
  for (const [id, g] of snap.groups) {
    groups.set(id, { externalId: id, name: g.name, description: g.description, fingerprint: g.fingerprint });
  }

  // SPEC Group: "In every deprovision mode a group's members mirror the IdP: a membership the
  // IdP removed is removed, one it still lists is kept." A membership needs an account.
  const inScope = (u: string) => snap.users.has(u) || skippedUsers.has(u);
  /** Records with an account that were not taken: their listed memberships are kept, adding one is left open (SPEC is silent). */
  const notTaken = (u: string) => untaken.has(u) || (skippedUsers.has(u) && !snap.users.has(u));
  const required = new Map<string, Set<string>>();
  const allowed = new Map<string, Set<string>>();
  for (const id of groups.keys()) {
    const before = state.memberships.get(id) ?? new Set<string>();
    const need = new Set<string>();
    const may = new Set<string>();
    if (snap.groups.has(id)) {
      for (const u of snap.memberships.get(id) ?? []) {
        if (!users.has(u)) continue;
        may.add(u);
        if (!notTaken(u) || before.has(u)) need.add(u);
      }
    } else {
      // A skipped group: its members could not be read. Nothing is added; memberships of
      // accounts still in scope are kept; those of accounts that left the scope may go.
      for (const u of before) {
        if (!users.has(u)) continue;
        may.add(u);
        if (inScope(u)) need.add(u);
      }
    }
    required.set(id, need);
    allowed.set(id, may);
  }

  return { users, groups, required, allowed, lockedOut, others, conflicts, clashing };
}

/** Every way `actual` differs from what the oracle allows; empty when it matches. */
export function differences(actual: LocalState, expected: Expected): string[] {
  const out: string[] = [];
  const show = (u: LocalUser | undefined) =>
    u ? JSON.stringify({ userName: u.userName, email: u.email, givenName: u.givenName, active: u.active, fp: u.fingerprint.slice(0, 6) }) : 'none';
  for (const id of new Set([...actual.users.keys(), ...expected.users.keys()])) {
    const a = actual.users.get(id);
    const e = expected.users.get(id);
    const same =
      a && e
        ? a.userName === e.userName &&
          a.email === e.email &&
          a.givenName === e.givenName &&
          a.familyName === e.familyName &&
          a.displayName === e.displayName &&
          a.active === e.active &&
          a.fingerprint === e.fingerprint
        : a === e;
    if (!same) out.push(`account ${id}: expected ${show(e)}, got ${show(a)}`);
  }
  const sorted = (s: Iterable<string>) => [...s].sort().join(',');
  if (sorted(actual.groups.keys()) !== sorted(expected.groups.keys())) {
    out.push(`groups: expected [${sorted(expected.groups.keys())}], got [${sorted(actual.groups.keys())}]`);
  }
  for (const [id, e] of expected.groups) {
    const a = actual.groups.get(id);
    if (a && (a.name !== e.name || a.description !== e.description || a.fingerprint !== e.fingerprint)) {
      out.push(`group ${id}: expected ${JSON.stringify(e)}, got ${JSON.stringify(a)}`);
    }
  }
  for (const [g, members] of actual.memberships) {
    for (const u of members) if (!expected.allowed.get(g)?.has(u)) out.push(`membership ${g}/${u} should not exist`);
  }
  for (const [g, members] of expected.required) {
    for (const u of members) if (!actual.memberships.get(g)?.has(u)) out.push(`membership ${g}/${u} missing`);
  }
  if (sorted(actual.lockedOut) !== sorted(expected.lockedOut)) {
    out.push(`lockedOut: expected [${sorted(expected.lockedOut)}], got [${sorted(actual.lockedOut)}]`);
  }
  const othersOf = (m: ReadonlyMap<string, OtherAccount>) =>
    sorted([...m].map(([k, o]) => `${k}=${o.accountId}/${o.ownedByEnabled ?? 'unowned'}`));
  if (othersOf(actual.others) !== othersOf(expected.others)) {
    out.push(`others: expected [${othersOf(expected.others)}], got [${othersOf(actual.others)}]`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Applying a plan literally
// ---------------------------------------------------------------------------------------

export interface Applied {
  readonly state: LocalState;
  /**
   * Memberships an account removal or a group deletion took with it that the plan did not
   * list in `membershipsRemoved` (SPEC Safety: each one counts and is in the change log).
   */
  readonly unlisted: readonly string[];
}

/** An operation that means nothing in the state it is applied to: a planner bug. */
export class PlanViolation extends Error {}

function violation(message: string): never {
  throw new PlanViolation(message);
}

/**
 * Applies each typed operation with the meaning SPEC gives it. Order: explicit membership
 * removals, then user operations, group deletions (taking their remaining memberships),
 * group creations and updates, and membership additions last (they need both ends).
 */
export function applyPlan(state: LocalState, p: Plan, policy: Policy): Applied {
  const users = new Map<string, LocalUser>(state.users);
  const groups = new Map<string, LocalGroup>(state.groups);
  const memberships = new Map<string, Set<string>>([...state.memberships].map(([g, m]) => [g, new Set(m)]));
  const lockedOut = new Set(state.lockedOut);
  const others = new Map(state.others);
  const unlisted: string[] = [];
  const members = (g: string) => memberships.get(g) ?? new Set<string>();

  for (const m of p.membershipsRemoved) {
    if (!members(m.groupExternalId).has(m.userExternalId)) violation(`removes ${m.groupExternalId}/${m.userExternalId}, which does not exist`);
    members(m.groupExternalId).delete(m.userExternalId);
  }

  const grant = (g: Plan['usersCreated'][number], kind: string) => {
    // SPEC Adoption: the unowned account with that normalized userName becomes this identity's.
    if (g.adopts !== null) {
      const key = loginKey(g.userName);
      const other = others.get(key);
      if (!other || other.accountId !== g.adopts) violation(`${kind} ${g.externalId} adopts ${g.adopts}, not the account of ${key}`);
      if (other.ownedByEnabled !== null) violation(`${kind} ${g.externalId} adopts ${g.adopts}, owned by enabled ${other.ownedByEnabled}`);
      others.delete(key);
    }
    users.set(g.externalId, accountOf(g, true));
  };
  for (const g of p.usersCreated) {
    if (users.has(g.externalId)) violation(`creates ${g.externalId}, which already has an account`);
    if (lockedOut.has(g.externalId)) violation(`creates ${g.externalId}, which is locked out: that is a reprovision`);
    grant(g, 'create');
  }
  for (const g of p.usersReprovisioned) {
    // SPEC: "When the IdP provisions the same identity again, the lock is lifted and access restored".
    const account = users.get(g.externalId);
    if (account ? account.active : !lockedOut.has(g.externalId)) violation(`reprovisions ${g.externalId}, which was not deprovisioned`);
    lockedOut.delete(g.externalId);
    grant(g, 'reprovision');
  }
  for (const u of p.usersUpdated) {
    const id = u.user.externalId;
    const account = users.get(id) ?? violation(`updates ${id}, which has no account`);
    if (u.changed.length === 0) violation(`updates ${id} with nothing changed`);
    // Only the fields the update names change; the fingerprint is the profile's as a whole.
    const next: Record<string, unknown> = { ...account, fingerprint: u.user.fingerprint };
    for (const f of u.changed) if (f !== 'attributes') next[f] = u.user[f];
    users.set(id, next as unknown as LocalUser);
  }
  const removes = policy.deprovisionMode !== 'suspend';
  for (const d of p.usersDeprovisioned) {
    const account = users.get(d.externalId) ?? violation(`deprovisions ${d.externalId}, which has no account`);
    if (!account.active) violation(`deprovisions ${d.externalId} again`);
    if (removes) {
      // SPEC: "the account and its memberships are removed"; the lock stays.
      users.delete(d.externalId);
      lockedOut.add(d.externalId);
      for (const [g, m] of memberships) if (m.delete(d.externalId)) unlisted.push(`${g}/${d.externalId} (account removed)`);
    } else {
      // SPEC: "the account is kept but marked inactive"; `user` refreshes its attributes.
      users.set(d.externalId, d.user ? accountOf(d.user, false) : { ...account, active: false });
    }
  }

  for (const g of p.groupsDeleted) {
    if (!groups.delete(g.externalId)) violation(`deletes group ${g.externalId}, which does not exist`);
    for (const u of members(g.externalId)) unlisted.push(`${g.externalId}/${u} (group deleted)`);
    memberships.delete(g.externalId);
  }
  for (const g of p.groupsCreated) {
    if (groups.has(g.externalId)) violation(`creates group ${g.externalId}, which exists`);
    groups.set(g.externalId, { externalId: g.externalId, name: g.name, description: g.description, fingerprint: g.fingerprint });
  }
  for (const u of p.groupsUpdated) {
    const g = groups.get(u.group.externalId) ?? violation(`updates group ${u.group.externalId}, which does not exist`);
    if (u.changed.length === 0) violation(`updates group ${g.externalId} with nothing changed`);
    const next: Record<string, unknown> = { ...g, fingerprint: u.group.fingerprint };
    for (const f of u.changed) if (f !== 'attributes') next[f] = u.group[f];
    groups.set(g.externalId, next as unknown as LocalGroup);
  }
  for (const m of p.membershipsAdded) {
    if (!groups.has(m.groupExternalId)) violation(`adds ${m.groupExternalId}/${m.userExternalId}: no such group`);
    if (!users.has(m.userExternalId)) violation(`adds ${m.groupExternalId}/${m.userExternalId}: no such account`);
    if (members(m.groupExternalId).has(m.userExternalId)) violation(`adds ${m.groupExternalId}/${m.userExternalId} twice`);
    if (!memberships.has(m.groupExternalId)) memberships.set(m.groupExternalId, new Set());
    memberships.get(m.groupExternalId)!.add(m.userExternalId);
  }
  for (const [g, m] of memberships) {
    if (!groups.has(g) && m.size > 0) violation(`memberships left in group ${g}, which does not exist`);
    for (const u of m) if (!users.has(u)) violation(`membership ${g}/${u} left without its account`);
  }
  return { state: { users, groups, memberships, lockedOut, others }, unlisted };
}
