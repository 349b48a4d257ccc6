import type { AkUser, FakeAuthentik } from './fake-authentik.js';
import type { FakeOkta, FakeUser } from './fake-okta.js';

/**
 * A pure, in-memory reference model of what /work/shared/SPEC.md ("Concepts": Identity,
 * Group, Deprovision; "Safety": per-record isolation) says the tenant tables must hold.
 *
 * Written from the spec and the README's field mappings alone, never from the
 * implementation: it is the oracle the property and fault tests compare the tables with.
 * Where the spec is silent the choice made is marked "SPEC is silent" with the reason.
 *
 * The projections read only a fake IdP's own model (its maps of users, groups, members,
 * apps and bindings), never its wire format and never a production connector.
 */

// ---------------------------------------------------------------------------------------
// Projections
// ---------------------------------------------------------------------------------------

export interface ProjectedUser {
  /** The IdP's immutable id (Okta user id; authentik user pk as a string). */
  id: string;
  /** null when the IdP record has no usable login (a bad record). */
  userName: string | null;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  /** The IdP's own status word (Okta status; authentik `active`/`inactive`). */
  status: string;
}

export interface ProjectedGroup {
  id: string;
  name: string;
}

export interface Projection {
  /** Every IdP user in the integration's scope, keyed by IdP id. */
  users: Map<string, ProjectedUser>;
  /** The integration's groups, keyed by IdP group id. */
  groups: Map<string, ProjectedGroup>;
  /** IdP group id -> IdP ids of its members (in scope only). */
  members: Map<string, Set<string>>;
  /**
   * Ids of in-scope records that cannot be taken as they are (SPEC, Safety: a value Postgres
   * cannot store such as a NUL character, a missing id or login). The id and the status of
   * such a record are still readable here, so a deprovisioning status still applies.
   */
  bad: Set<string>;
}

/** A login longer than this cannot be indexed (README: "a login too long to index"). */
export const MAX_LOGIN_LENGTH = 512;

const OKTA_INACTIVE = new Set(['SUSPENDED', 'DEPROVISIONED']);

/** README ("What a run does"): a text field that is a number or a boolean is taken as its text; anything else that is not text is absent. */
function str(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(hasNul);
  if (value && typeof value === 'object') return Object.entries(value).some(([k, v]) => k.includes('\u0000') || hasNul(v));
  return false;
}

function usableLogin(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

function isBadLogin(login: string | null): boolean {
  return login === null || login.length > MAX_LOGIN_LENGTH;
}

export function oktaUser(u: FakeUser): ProjectedUser {
  const p = u.profile as Record<string, unknown>;
  const givenName = str(p.firstName);
  const familyName = str(p.lastName);
  // README: displayName, or "first last" when Okta has none.
  const displayName = str(p.displayName) ?? ([givenName, familyName].filter((s) => s).join(' ') || null);
  return {
    id: u.id,
    userName: usableLogin(p.login),
    email: str(p.email),
    givenName,
    familyName,
    displayName,
    active: !OKTA_INACTIVE.has(u.status),
    status: u.status,
  };
}

/**
 * SPEC Scope, Okta: the users assigned to the app directly or through an assigned group, and
 * the groups assigned to the app; without an app id every user (DEPROVISIONED ones too, which
 * README says are read) and every group.
 */
export function oktaProjection(okta: FakeOkta, appId?: string): Projection {
  let userIds: string[];
  let groupIds: string[];
  if (appId !== undefined) {
    const app = okta.apps.get(appId);
    if (!app) throw new Error(`the Okta app ${appId} does not exist: the scope vanished, no projection`);
    userIds = [...app.users];
    for (const g of app.groups) for (const u of okta.members.get(g) ?? []) userIds.push(u);
    groupIds = [...app.groups];
  } else {
    userIds = [...okta.users.keys()];
    groupIds = [...okta.groups.keys()];
  }
  const users = new Map<string, ProjectedUser>();
  const bad = new Set<string>();
  for (const id of userIds) {
    const u = okta.users.get(id);
    if (!u || users.has(id)) continue;
    const projected = oktaUser(u);
    users.set(id, projected);
    if (isBadLogin(projected.userName) || hasNul(u.profile)) bad.add(id);
  }
  const groups = new Map<string, ProjectedGroup>();
  const members = new Map<string, Set<string>>();
  for (const id of groupIds) {
    const g = okta.groups.get(id);
    if (!g) continue;
    groups.set(id, { id, name: g.profile.name });
    members.set(id, new Set([...(okta.members.get(id) ?? [])].filter((u) => users.has(u))));
  }
  return { users, groups, members, bad };
}

const GIVEN_KEYS = ['givenName', 'given_name', 'firstName', 'first_name'];
const FAMILY_KEYS = ['familyName', 'family_name', 'sn', 'surname', 'lastName', 'last_name'];
const SERVICE_TYPES = new Set(['service_account', 'internal_service_account']);

export function authentikUser(u: AkUser): ProjectedUser {
  const attrs = u.attributes ?? {};
  const pick = (keys: string[]) => {
    for (const k of keys) {
      const v = attrs[k];
      if (typeof v === 'string' && v !== '') return v;
    }
    return null;
  };
  // README: authentik's `name` is read trimmed, and a blank one is absent; so is an empty email.
  const name = str(u.name)?.trim() ?? '';
  const cut = name.lastIndexOf(' ');
  // README: givenName/familyName from the source's attributes, failing those from splitting
  // `name` at its last space. SPEC is silent on a name without a space: the whole name is
  // taken as the given name and the family name is left empty (null).
  const givenName = pick(GIVEN_KEYS) ?? (cut > 0 ? name.slice(0, cut) : name || null);
  const familyName = pick(FAMILY_KEYS) ?? (cut > 0 ? name.slice(cut + 1) : null);
  const active = u.is_active === true;
  return {
    id: String(u.pk),
    userName: usableLogin(u.username),
    email: str(u.email) || null,
    givenName,
    familyName,
    displayName: name || null,
    active,
    status: active ? 'active' : 'inactive',
  };
}

/**
 * SPEC Scope, authentik, with README's evaluation rules: enabled bindings to a user or a group
 * decide (policy bindings are ignored, disabled ones do not count), `negate` inverts, engine
 * mode `any` needs one passing binding and `all` every one, a group binding admits that group's
 * members and its descendants' members, and an application without such a binding is open to
 * everyone. Service accounts are not people. The tenant's groups are the groups bound to the
 * application (all groups without an application, or when it has no group binding but is
 * open); a group's members include its child groups' members, restricted to the scope.
 *
 * SPEC is silent on whether a negated group binding makes its group a tenant group: it is
 * taken as bound (it is a binding to that group), its members restricted to the scope.
 */
export function authentikProjection(ak: FakeAuthentik, appSlug?: string): Projection {
  const people = [...ak.users.values()].filter((u) => !SERVICE_TYPES.has(u.type));
  const childrenOf = new Map<string, string[]>();
  for (const g of ak.groups.values()) for (const p of g.parents) childrenOf.set(p, [...(childrenOf.get(p) ?? []), g.pk]);
  const below = (pk: string): Set<string> => {
    const seen = new Set<string>();
    const stack = [pk];
    while (stack.length) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(childrenOf.get(next) ?? []));
    }
    return seen;
  };
  const inGroup = (u: AkUser, pk: string) => {
    const all = below(pk);
    return u.groups.some((g) => all.has(g));
  };

  let scope = people;
  let groupPks = [...ak.groups.keys()];
  if (appSlug !== undefined) {
    const app = ak.apps.get(appSlug);
    if (!app) throw new Error(`the authentik application ${appSlug} does not exist: the scope vanished, no projection`);
    const bindings = ak.bindings.filter((b) => b.target === app.pk && b.enabled && (b.user !== null || b.group !== null));
    if (bindings.length > 0) {
      const passes = (u: AkUser) =>
        bindings.map((b) => (b.user !== null ? b.user === u.pk : inGroup(u, b.group!)) !== b.negate);
      scope = people.filter((u) => (app.policy_engine_mode === 'all' ? passes(u).every(Boolean) : passes(u).some(Boolean)));
      groupPks = [...new Set(bindings.filter((b) => b.group !== null).map((b) => b.group!))];
    }
  }
  const users = new Map<string, ProjectedUser>();
  const bad = new Set<string>();
  for (const u of scope) {
    const projected = authentikUser(u);
    users.set(projected.id, projected);
    if (isBadLogin(projected.userName) || hasNul(u.username) || hasNul(u.name) || hasNul(u.email) || hasNul(u.attributes) || typeof u.is_active !== 'boolean') {
      bad.add(projected.id);
    }
  }
  const groups = new Map<string, ProjectedGroup>();
  const members = new Map<string, Set<string>>();
  for (const pk of groupPks) {
    const g = ak.groups.get(pk);
    if (!g) continue; // a binding naming a group the listing lacks: the vanished-scope case, not a group
    groups.set(pk, { id: pk, name: g.name });
    members.set(pk, new Set(scope.filter((u) => inGroup(u, pk)).map((u) => String(u.pk))));
  }
  return { users, groups, members, bad };
}

// ---------------------------------------------------------------------------------------
// The state model
// ---------------------------------------------------------------------------------------

export type DeprovisionMode = 'suspend' | 'remove-access' | 'delete';

/** SPEC: people are linked by normalized userName, Unicode case-insensitively. */
export function normalizeUserName(userName: string): string {
  return userName.normalize('NFC').toLowerCase();
}

export interface ModelIntegration {
  id: string;
  tenant: string;
  mode: DeprovisionMode;
  enabled: boolean;
}

export interface Owner {
  integrationId: string;
  idpId: string;
}

export interface ModelAccount {
  /** The model's own serial number: accounts have no natural key once unowned. */
  key: number;
  tenant: string;
  /** The IdP identity the account belongs to; null for an account no integration provisioned (an SSO login). */
  owner: Owner | null;
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
}

export interface ModelGroup {
  tenant: string;
  integrationId: string;
  idpId: string;
  name: string;
  /** Account keys. */
  members: Set<number>;
}

export interface ModelLock {
  tenant: string;
  integrationId: string;
  idpId: string;
  /** The person (normalized userName) locked out of the tenant. */
  person: string;
  reason: 'out-of-scope' | 'idp-status';
}

export interface ModelWarning {
  externalId: string;
  reason: 'bad-record' | 'clash' | 'conflict';
}

/** What a clean run did, for the tests that check holds. */
export interface RunOutcome {
  warnings: ModelWarning[];
  /** Destructive operations per kind (SPEC Safety: every destructive kind is guarded). */
  destructive: { deprovisions: number; groupDeletions: number; membershipRemovals: number };
  /** The tenant's counts before the run, per destructive kind. */
  before: { activeAccounts: number; groups: number; memberships: number };
}

export interface UserView {
  userName: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  active: boolean;
  locked: boolean;
  groups: string[];
}

export interface GroupView {
  name: string;
  members: string[];
}

interface State {
  tenants: Set<string>;
  integrations: Map<string, ModelIntegration>;
  accounts: Map<number, ModelAccount>;
  groups: ModelGroup[];
  locks: ModelLock[];
  /** Normalized userNames of the people (global users) that exist. */
  people: Set<string>;
  nextKey: number;
}

const caseless = (a: string, b: string) => {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
};
const plain = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class SpecModel {
  private s: State = {
    tenants: new Set(),
    integrations: new Map(),
    accounts: new Map(),
    groups: [],
    locks: [],
    people: new Set(),
    nextKey: 1,
  };

  clone(): SpecModel {
    const copy = new SpecModel();
    copy.s = structuredClone(this.s);
    return copy;
  }

  addTenant(slug: string): void {
    this.s.tenants.add(slug);
  }

  addIntegration(id: string, tenant: string, mode: DeprovisionMode = 'suspend', enabled = true): void {
    this.s.tenants.add(tenant);
    this.s.integrations.set(id, { id, tenant, mode, enabled });
  }

  setEnabled(id: string, enabled: boolean): void {
    this.integration(id).enabled = enabled;
  }

  /** SPEC: a change of mode applies to later deprovisions only. */
  setMode(id: string, mode: DeprovisionMode): void {
    this.integration(id).mode = mode;
  }

  /** An account no integration provisioned: created by an SSO login before any sync. */
  addUnownedAccount(tenant: string, user: { userName: string } & Partial<Omit<ModelAccount, 'key' | 'tenant' | 'owner' | 'userName'>>): void {
    const key = this.s.nextKey++;
    this.s.accounts.set(key, {
      key,
      tenant,
      owner: null,
      email: null,
      givenName: null,
      familyName: null,
      displayName: null,
      active: true,
      ...user,
    });
    this.s.people.add(normalizeUserName(user.userName));
  }

  hasPerson(userName: string): boolean {
    return this.s.people.has(normalizeUserName(userName));
  }

  locks(tenant: string): ModelLock[] {
    return this.s.locks.filter((l) => l.tenant === tenant).map((l) => ({ ...l }));
  }

  accounts(tenant: string): ModelAccount[] {
    return [...this.s.accounts.values()].filter((a) => a.tenant === tenant).map((a) => ({ ...a, owner: a.owner && { ...a.owner } }));
  }

  /**
   * A successful full run of `integrationId` that read `projection` (SPEC Identity, Group,
   * Deprovision, Safety), with destructive operations applied (a held run once approved).
   * `badIds` are the records that cannot be taken as they are (default: `projection.bad`).
   */
  cleanRun(integrationId: string, projection: Projection, badIds: Iterable<string> = projection.bad): RunOutcome {
    const integration = this.integration(integrationId);
    if (!integration.enabled) throw new Error(`integration ${integrationId} is disabled: it runs nothing`);
    const tenant = integration.tenant;
    const bad = new Set(badIds);
    const warnings: ModelWarning[] = [];
    const destructive = { deprovisions: 0, groupDeletions: 0, membershipRemovals: 0 };
    const before = this.counts(tenant);
    const skipped = new Set<string>();

    // Two good records whose logins are equal but for case or normalization clash: neither can
    // be taken (SPEC: "a clash with another record"). SPEC is silent on which one wins; the
    // defensible reading is that neither does, so neither is changed, created or deprovisioned
    // for it.
    const byKey = new Map<string, string[]>();
    for (const r of projection.users.values()) {
      if (bad.has(r.id) || r.userName === null) continue;
      const k = normalizeUserName(r.userName);
      byKey.set(k, [...(byKey.get(k) ?? []), r.id]);
    }
    const clashing = new Set([...byKey.values()].filter((ids) => ids.length > 1).flat());

    const deprovision = (account: ModelAccount, reason: ModelLock['reason']) => {
      const owner = account.owner!;
      destructive.deprovisions += 1;
      this.s.locks = this.s.locks.filter((l) => !(l.tenant === tenant && l.integrationId === owner.integrationId && l.idpId === owner.idpId));
      this.s.locks.push({ tenant, integrationId: owner.integrationId, idpId: owner.idpId, person: normalizeUserName(account.userName), reason });
      if (integration.mode === 'suspend') {
        account.active = false; // memberships still mirror the IdP (phase 3)
        return;
      }
      for (const g of this.s.groups) if (g.members.delete(account.key)) destructive.membershipRemovals += 1;
      this.s.accounts.delete(account.key);
      if (integration.mode === 'delete') this.dropPersonIfUnused(normalizeUserName(account.userName));
    };

    // Phase 1: users, identified only by IdP id.
    for (const r of projection.users.values()) {
      const account = this.owned(integrationId, r.id);
      const unreadable = bad.has(r.id) || r.userName === null;
      const conflict =
        !unreadable && !clashing.has(r.id)
          ? [...this.s.accounts.values()].some(
              (a) =>
                a.tenant === tenant &&
                a.owner !== null &&
                a.owner.integrationId !== integrationId &&
                this.s.integrations.get(a.owner.integrationId)?.enabled === true &&
                normalizeUserName(a.userName) === normalizeUserName(r.userName!),
            )
          : false;
      if (unreadable || clashing.has(r.id) || conflict) {
        skipped.add(r.id);
        warnings.push({ externalId: r.id, reason: unreadable ? 'bad-record' : clashing.has(r.id) ? 'clash' : 'conflict' });
        // SPEC Safety: a deprovisioning status still applies when the id and status are
        // readable: bad data must never keep someone in. (Applied to clashes and conflicts too:
        // their id and status are readable.)
        if (account && account.active && !r.active) deprovision(account, 'idp-status');
        continue;
      }
      const userName = r.userName!;
      const attributes = {
        userName,
        email: r.email,
        givenName: r.givenName,
        familyName: r.familyName,
        displayName: r.displayName,
      };
      if (account) {
        Object.assign(account, attributes); // a rename relinks the account to the person of the new login
        this.s.people.add(normalizeUserName(userName));
        if (r.active && !account.active) {
          account.active = true; // reprovision: the same identity, its lock lifted
          this.liftLock(tenant, integrationId, r.id);
        } else if (!r.active && account.active) {
          deprovision(account, 'idp-status');
        }
        continue;
      }
      // README: users the IdP reports inactive and the tenant never had are not created.
      // SPEC is silent on an inactive record matching an adoptable account; it adopts nothing
      // (adoption is by "the integration that provisions it", and an inactive record provisions
      // no one), so the test histories never build that case.
      if (!r.active) continue;
      const lock = this.lockOf(tenant, integrationId, r.id);
      if (lock) {
        // Reprovision after remove-access / delete: the same identity gets its access back.
        this.createAccount(tenant, { integrationId, idpId: r.id }, attributes);
        this.liftLock(tenant, integrationId, r.id);
        continue;
      }
      const candidate = [...this.s.accounts.values()].find(
        (a) =>
          a.tenant === tenant &&
          normalizeUserName(a.userName) === normalizeUserName(userName) &&
          (a.owner === null || this.s.integrations.get(a.owner.integrationId)?.enabled !== true) &&
          // SPEC: a reused login "inherits no lifted lock"; an account still locked for the
          // identity that left is not handed to a new identity. SPEC is silent on a locked
          // account left by a disabled integration; it is not adopted (the new identity gets a
          // fresh account), the most conservative reading.
          !(a.owner !== null && this.lockOf(tenant, a.owner.integrationId, a.owner.idpId)),
      );
      if (candidate) {
        // Adoption. SPEC: "no account ever holds a membership its own IdP identity does not
        // have", so memberships in the old integration's groups do not follow the account.
        for (const g of this.s.groups) if (g.integrationId !== integrationId) g.members.delete(candidate.key);
        Object.assign(candidate, attributes, { owner: { integrationId, idpId: r.id }, active: true });
        this.s.people.add(normalizeUserName(userName));
        continue;
      }
      this.createAccount(tenant, { integrationId, idpId: r.id }, attributes);
    }

    // Accounts of this integration whose identity left the scope.
    for (const account of [...this.s.accounts.values()]) {
      if (account.owner?.integrationId !== integrationId || projection.users.has(account.owner.idpId)) continue;
      if (account.active) deprovision(account, 'out-of-scope');
    }

    // Phase 2: groups, identified by IdP group id.
    const kept: ModelGroup[] = [];
    for (const g of this.s.groups) {
      if (g.integrationId === integrationId && !projection.groups.has(g.idpId)) {
        destructive.groupDeletions += 1;
        destructive.membershipRemovals += g.members.size; // the memberships a deleted group takes with it
        continue;
      }
      kept.push(g);
    }
    this.s.groups = kept;
    for (const pg of projection.groups.values()) {
      const existing = this.s.groups.find((g) => g.integrationId === integrationId && g.idpId === pg.id);
      if (existing) existing.name = pg.name;
      else this.s.groups.push({ tenant, integrationId, idpId: pg.id, name: pg.name, members: new Set() });
    }

    // Phase 3: memberships mirror the IdP in every mode. A skipped record's memberships are
    // left as they are (SPEC: the record is skipped; SPEC is silent on its memberships, and
    // "nothing changes for it" is the reading taken).
    for (const g of this.s.groups) {
      if (g.integrationId !== integrationId) continue;
      const want = new Set<number>();
      for (const idpId of projection.members.get(g.idpId) ?? []) {
        if (skipped.has(idpId)) continue;
        const account = this.owned(integrationId, idpId);
        if (account) want.add(account.key);
      }
      for (const key of g.members) {
        const owner = this.s.accounts.get(key)?.owner;
        if (owner && owner.integrationId === integrationId && skipped.has(owner.idpId)) want.add(key);
      }
      for (const key of g.members) if (!want.has(key)) destructive.membershipRemovals += 1;
      g.members = want;
    }
    return { warnings, destructive, before };
  }

  /** What `dirsync users --tenant` prints, minus the generated ids. */
  users(tenant: string): UserView[] {
    return [...this.s.accounts.values()]
      .filter((a) => a.tenant === tenant)
      .map((a) => ({
        userName: a.userName,
        email: a.email,
        givenName: a.givenName,
        familyName: a.familyName,
        displayName: a.displayName,
        active: a.active,
        locked: a.owner !== null && this.lockOf(tenant, a.owner.integrationId, a.owner.idpId) !== undefined,
        groups: this.s.groups.filter((g) => g.tenant === tenant && g.members.has(a.key)).map((g) => g.name).sort(plain),
      }))
      .sort(compareUsers);
  }

  /** What `dirsync groups --tenant` prints, minus the generated ids. */
  groups(tenant: string): GroupView[] {
    return this.s.groups
      .filter((g) => g.tenant === tenant)
      .map((g) => ({ name: g.name, members: [...g.members].map((k) => this.s.accounts.get(k)!.userName).sort(caseless) }))
      .sort(compareGroups);
  }

  // ---- helpers ------------------------------------------------------------------------

  private integration(id: string): ModelIntegration {
    const found = this.s.integrations.get(id);
    if (!found) throw new Error(`no integration ${id} in the model`);
    return found;
  }

  private counts(tenant: string) {
    const accounts = [...this.s.accounts.values()].filter((a) => a.tenant === tenant);
    const groups = this.s.groups.filter((g) => g.tenant === tenant);
    return {
      activeAccounts: accounts.filter((a) => a.active).length,
      groups: groups.length,
      memberships: groups.reduce((n, g) => n + g.members.size, 0),
    };
  }

  private owned(integrationId: string, idpId: string): ModelAccount | undefined {
    for (const a of this.s.accounts.values()) if (a.owner?.integrationId === integrationId && a.owner.idpId === idpId) return a;
    return undefined;
  }

  private lockOf(tenant: string, integrationId: string, idpId: string): ModelLock | undefined {
    return this.s.locks.find((l) => l.tenant === tenant && l.integrationId === integrationId && l.idpId === idpId);
  }

  private liftLock(tenant: string, integrationId: string, idpId: string): void {
    this.s.locks = this.s.locks.filter((l) => !(l.tenant === tenant && l.integrationId === integrationId && l.idpId === idpId));
  }

  private createAccount(tenant: string, owner: Owner, attributes: Omit<ModelAccount, 'key' | 'tenant' | 'owner' | 'active'>): void {
    const key = this.s.nextKey++;
    this.s.accounts.set(key, { key, tenant, owner, ...attributes, active: true });
    this.s.people.add(normalizeUserName(attributes.userName));
  }

  private dropPersonIfUnused(person: string): void {
    for (const a of this.s.accounts.values()) if (normalizeUserName(a.userName) === person) return;
    this.s.people.delete(person);
  }
}

/** The order SPEC's listings use: users by lower-cased userName (ties broken by the whole entry). */
export function compareUsers(a: UserView, b: UserView): number {
  return caseless(a.userName, b.userName) || plain(JSON.stringify(a), JSON.stringify(b));
}

export function compareGroups(a: GroupView, b: GroupView): number {
  return plain(a.name, b.name) || plain(JSON.stringify(a), JSON.stringify(b));
}

/**
 * Puts a listing as the CLI printed it into the model's canonical form: generated `id`s
 * dropped, inner lists sorted, entries sorted with full tie-breaks. Listing order itself is
 * checked separately (`listingOrderProblems`), so two entries SPEC does not order (two
 * accounts with one login) never fail a comparison.
 */
export function canonicalUsers(list: readonly Record<string, unknown>[]): UserView[] {
  return list
    .map((u) => ({
      userName: u.userName as string,
      email: (u.email ?? null) as string | null,
      givenName: (u.givenName ?? null) as string | null,
      familyName: (u.familyName ?? null) as string | null,
      displayName: (u.displayName ?? null) as string | null,
      active: u.active as boolean,
      locked: u.locked as boolean,
      groups: [...((u.groups as string[]) ?? [])].sort(plain),
    }))
    .sort(compareUsers);
}

export function canonicalGroups(list: readonly Record<string, unknown>[]): GroupView[] {
  return list
    .map((g) => ({ name: g.name as string, members: [...((g.members as string[]) ?? [])].sort(caseless) }))
    .sort(compareGroups);
}

/** SPEC's listing order: users by lower-cased userName, groups by name, members case-insensitively. */
export function listingOrderProblems(users: readonly Record<string, unknown>[], groups: readonly Record<string, unknown>[]): string[] {
  const problems: string[] = [];
  for (let i = 1; i < users.length; i++) {
    const a = String(users[i - 1]!.userName).toLowerCase();
    const b = String(users[i]!.userName).toLowerCase();
    if (a > b) problems.push(`users: ${a} listed before ${b}`);
  }
  for (let i = 1; i < groups.length; i++) {
    const a = String(groups[i - 1]!.name).toLowerCase();
    const b = String(groups[i]!.name).toLowerCase();
    if (a > b) problems.push(`groups: ${a} listed before ${b}`);
  }
  for (const g of groups) {
    const m = (g.members as string[]) ?? [];
    for (let i = 1; i < m.length; i++) if (m[i - 1]!.toLowerCase() > m[i]!.toLowerCase()) problems.push(`group ${String(g.name)}: member ${m[i - 1]} before ${m[i]}`);
  }
  return problems;
}
