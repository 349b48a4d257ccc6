import fc from 'fast-check';
import type { DirectoryGroup, DirectoryUser, LocalState, LocalUser, OtherAccount, SkippedRecord, Snapshot } from '../../src/core/model.js';
import type { Policy } from '../../src/core/policy.js';
import { group, localGroup, localUser, user } from './builders.js';
import { loginKey } from './local-model.js';

/**
 * Generators for the planner's property tests. Logins are independent of IdP ids: a small
 * pool of names (some with accents, so NFC and case both matter) in several spellings, so
 * renames, recases, swaps, reused logins and logins that normalize alike all happen. Local
 * states are generated directly, not produced by the planner.
 */

export const USER_IDS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
export const GROUP_IDS = ['g0', 'g1', 'g2', 'g3'];
/** Composed forms; `nfd` spells them decomposed. */
const NAMES = ['ann', 'bob', 'jos\u00e9', '\u00e5sa', 'zo\u00eb', 'kim', 'lee', 'max'];
const SPELLINGS = ['same', 'upper', 'title', 'nfd', 'nfd-upper'] as const;
type Spelling = (typeof SPELLINGS)[number];
const GROUP_NAMES = ['Admins', 'Staff', 'Ops', 'Dev'];

export const OTHER_INTEGRATION = 'int-b';

function spell(name: string, how: Spelling): string {
  switch (how) {
    case 'same':
      return name;
    case 'upper':
      return name.toUpperCase();
    case 'title':
      return name[0]!.toUpperCase() + name.slice(1);
    case 'nfd':
      return name.normalize('NFD');
    case 'nfd-upper':
      return name.toUpperCase().normalize('NFD');
  }
}

const login = fc.record({ name: fc.constantFrom(...NAMES), how: fc.constantFrom(...SPELLINGS) }).map(({ name, how }) => spell(name, how));

interface Profile {
  email: string | null;
  givenName: string | null;
  dept: string;
}

const profile: fc.Arbitrary<Profile> = fc.record({
  email: fc.constantFrom(null, 'a@x.io', 'b@x.io'),
  givenName: fc.constantFrom(null, 'A', 'B'),
  dept: fc.constantFrom('x', 'y'),
});

function directoryUser(id: string, userName: string, p: Profile, active: boolean): DirectoryUser {
  return user(id, { userName, email: p.email, givenName: p.givenName, familyName: 'T', displayName: null, attributes: { dept: p.dept }, active });
}

function directoryGroup(id: string, name: string, description: string | null, dept: string): DirectoryGroup {
  return group(id, { name, description, attributes: { dept } });
}

// ---------------------------------------------------------------------------------------
// Local states, generated directly
// ---------------------------------------------------------------------------------------

export const localState: fc.Arbitrary<LocalState> = fc
  .record({
    accounts: fc.uniqueArray(
      fc.record({ id: fc.constantFrom(...USER_IDS), login, profile, active: fc.boolean() }),
      { selector: (a) => a.id, maxLength: USER_IDS.length },
    ),
    locked: fc.subarray(USER_IDS),
    groups: fc.uniqueArray(
      fc.record({ id: fc.constantFrom(...GROUP_IDS), name: fc.constantFrom(...GROUP_NAMES), description: fc.constantFrom(null, 'd'), dept: fc.constantFrom('x', 'y') }),
      { selector: (g) => g.id, maxLength: GROUP_IDS.length },
    ),
    members: fc.array(fc.tuple(fc.constantFrom(...GROUP_IDS), fc.constantFrom(...USER_IDS)), { maxLength: 16 }),
    others: fc.array(fc.record({ login, ownedByEnabled: fc.constantFrom<string | null>(null, OTHER_INTEGRATION) }), { maxLength: 3 }),
    /** Whether a group with no members has an (empty) entry in `memberships`. */
    emptyEntries: fc.boolean(),
  })
  .map((d) => {
    const users = new Map<string, LocalUser>(d.accounts.map((a) => [a.id, localUser(directoryUser(a.id, a.login, a.profile, a.active), a.active)]));
    const groups = new Map(d.groups.map((g) => [g.id, localGroup(directoryGroup(g.id, g.name, g.description, g.dept))]));
    const memberships = new Map<string, Set<string>>();
    if (d.emptyEntries) for (const g of groups.keys()) memberships.set(g, new Set());
    // Any account may be a member, active or not; whether it is still in scope is the snapshot's business.
    for (const [g, u] of d.members) if (groups.has(g) && users.has(u)) (memberships.get(g) ?? memberships.set(g, new Set()).get(g)!).add(u);
    // A locked-out identity has no account (its account was removed).
    const lockedOut = new Set(d.locked.filter((id) => !users.has(id)));
    const others = new Map<string, OtherAccount>();
    for (const o of d.others) {
      const key = loginKey(o.login);
      if (!others.has(key)) others.set(key, { accountId: `acct-${key}`, ownedByEnabled: o.ownedByEnabled });
    }
    return { users, groups, memberships, lockedOut, others };
  });

// ---------------------------------------------------------------------------------------
// Snapshots, described relative to a local state
// ---------------------------------------------------------------------------------------

const userChange = fc.record({
  // `absent` first: a counterexample shrinks towards fewer users.
  status: fc.oneof(
    { weight: 2, arbitrary: fc.constant('absent' as const) },
    { weight: 5, arbitrary: fc.constant('active' as const) },
    { weight: 2, arbitrary: fc.constant('inactive' as const) },
    { weight: 1, arbitrary: fc.constant('skipped' as const) },
  ),
  /** keep the login; spell it differently (case, NFC); rename; reuse another account's login. */
  loginChange: fc.constantFrom('keep', 'keep', 'respell', 'rename', 'reuse'),
  respelling: fc.constantFrom(...SPELLINGS),
  newLogin: login,
  reuseFrom: fc.nat(USER_IDS.length - 1),
  keepProfile: fc.boolean(),
  profile,
  /** A skipped record's readable status, when it has one. */
  skippedActive: fc.constantFrom<boolean | undefined>(true, false, undefined),
});

const groupChange = fc.record({
  status: fc.oneof(
    { weight: 1, arbitrary: fc.constant('absent' as const) },
    { weight: 5, arbitrary: fc.constant('present' as const) },
    { weight: 1, arbitrary: fc.constant('skipped' as const) },
  ),
  rename: fc.option(fc.constantFrom(...GROUP_NAMES), { nil: null }),
  description: fc.constantFrom(null, 'd'),
  dept: fc.constantFrom('x', 'y'),
  keep: fc.boolean(),
});

export interface SnapshotChange {
  users: (typeof userChange extends fc.Arbitrary<infer T> ? T : never)[];
  groups: (typeof groupChange extends fc.Arbitrary<infer T> ? T : never)[];
  /** Two ids whose logins are swapped after everything else. */
  swap: [number, number] | null;
  members: [string, string][];
  /** A group membership the IdP kept: each current membership survives unless dropped. */
  dropMembers: boolean[];
  unreadableRecord: boolean;
}

export const snapshotChange: fc.Arbitrary<SnapshotChange> = fc.record({
  users: fc.array(userChange, { minLength: USER_IDS.length, maxLength: USER_IDS.length }),
  groups: fc.array(groupChange, { minLength: GROUP_IDS.length, maxLength: GROUP_IDS.length }),
  swap: fc.option(fc.tuple(fc.nat(USER_IDS.length - 1), fc.nat(USER_IDS.length - 1)), { nil: null }),
  members: fc.array(fc.tuple(fc.constantFrom(...GROUP_IDS), fc.constantFrom(...USER_IDS)), { maxLength: 12 }),
  dropMembers: fc.array(fc.boolean(), { minLength: 24, maxLength: 24 }),
  unreadableRecord: fc.boolean(),
});

/** The titlecase/upper/NFD spellings of a login whatever it was spelled like before. */
function respell(userName: string, how: Spelling): string {
  return spell(loginKey(userName), how);
}

export function buildSnapshot(base: LocalState, change: SnapshotChange): Snapshot {
  const logins = USER_IDS.map((id, i) => {
    const c = change.users[i]!;
    const current = base.users.get(id)?.userName;
    const reused = base.users.get(USER_IDS[c.reuseFrom]!)?.userName;
    if (c.loginChange === 'keep' && current) return current;
    if (c.loginChange === 'respell' && current) return respell(current, c.respelling);
    if (c.loginChange === 'reuse' && reused) return respell(reused, c.respelling);
    return c.newLogin;
  });
  if (change.swap) {
    const [a, b] = change.swap;
    [logins[a], logins[b]] = [logins[b]!, logins[a]!];
  }
  const users: DirectoryUser[] = [];
  const skipped: SkippedRecord[] = [];
  USER_IDS.forEach((id, i) => {
    const c = change.users[i]!;
    const current = base.users.get(id);
    const p =
      c.keepProfile && current
        ? { email: current.email, givenName: current.givenName, dept: current.fingerprint === directoryUser(id, current.userName, { email: current.email, givenName: current.givenName, dept: 'x' }, true).fingerprint ? 'x' : 'y' }
        : c.profile;
    if (c.status === 'active' || c.status === 'inactive') users.push(directoryUser(id, logins[i]!, p, c.status === 'active'));
    if (c.status === 'skipped') {
      skipped.push({
        kind: 'user',
        externalId: id,
        subject: logins[i]!,
        reason: 'a profile attribute holds a NUL character',
        ...(c.skippedActive === undefined ? {} : { active: c.skippedActive }),
      });
    }
  });
  if (change.unreadableRecord) skipped.push({ kind: 'user', externalId: null, subject: '(no id)', reason: 'the record has no id' });

  const groups: DirectoryGroup[] = [];
  GROUP_IDS.forEach((id, i) => {
    const c = change.groups[i]!;
    const current = base.groups.get(id);
    if (c.status === 'skipped') {
      skipped.push({ kind: 'group', externalId: id, subject: current?.name ?? id, reason: 'the group name is too long' });
      return;
    }
    if (c.status === 'absent') return;
    const name = c.rename ?? current?.name ?? GROUP_NAMES[i]!;
    if (c.keep && current && !c.rename) {
      const dept = current.fingerprint === directoryGroup(id, current.name, current.description, 'x').fingerprint ? 'x' : 'y';
      groups.push(directoryGroup(id, current.name, current.description, dept));
    } else groups.push(directoryGroup(id, name, c.description, c.dept));
  });

  // Members: in scope only (taken or skipped users); skipped members are kept (Snapshot docs).
  const userIds = new Set(users.map((u) => u.externalId));
  const inScope = new Set([...userIds, ...skipped.filter((s) => s.kind === 'user' && s.externalId).map((s) => s.externalId!)]);
  const memberships = new Map<string, Set<string>>();
  for (const g of groups) memberships.set(g.externalId, new Set());
  let k = 0;
  for (const [g, members] of base.memberships) {
    for (const u of members) {
      if (!change.dropMembers[k++ % change.dropMembers.length] && memberships.has(g) && inScope.has(u)) memberships.get(g)!.add(u);
    }
  }
  for (const [g, u] of change.members) if (memberships.has(g) && inScope.has(u)) memberships.get(g)!.add(u);

  return {
    users: new Map(users.map((u) => [u.externalId, u])),
    groups: new Map(groups.map((g) => [g.externalId, g])),
    memberships,
    skipped,
    suspicious: [],
  };
}

export const policies = fc.constantFrom<Policy>(
  { deprovisionMode: 'suspend' },
  { deprovisionMode: 'remove-access' },
  { deprovisionMode: 'delete' },
);

/** A directly generated local state and two successive reads of the IdP. */
export const world = fc
  .record({ state: localState, first: snapshotChange, second: snapshotChange, policy: policies })
  .map(({ state, first, second, policy }) => {
    const snap1 = buildSnapshot(state, first);
    return { state, snapshots: [snap1, buildSnapshot(state, second)], policy };
  });

// ---------------------------------------------------------------------------------------
// Printing a counterexample
// ---------------------------------------------------------------------------------------

export function describeState(s: LocalState): unknown {
  return {
    users: [...s.users.values()].map((u) => `${u.externalId}:${JSON.stringify(u.userName)}${u.active ? '' : ' (inactive)'} ${u.email}/${u.givenName}/${u.fingerprint.slice(0, 6)}`),
    groups: [...s.groups.values()].map((g) => `${g.externalId}:${g.name}`),
    memberships: [...s.memberships].map(([g, m]) => `${g}=[${[...m].join(',')}]`),
    lockedOut: [...s.lockedOut],
    others: [...s.others].map(([k, o]) => `${JSON.stringify(k)}=${o.accountId}/${o.ownedByEnabled ?? 'unowned'}`),
  };
}

export function describeSnapshot(s: Snapshot): unknown {
  return {
    users: [...s.users.values()].map((u) => `${u.externalId}:${JSON.stringify(u.userName)}${u.active ? '' : ' (inactive)'} ${u.email}/${u.givenName}/${u.fingerprint.slice(0, 6)}`),
    groups: [...s.groups.values()].map((g) => `${g.externalId}:${g.name}`),
    memberships: [...s.memberships].map(([g, m]) => `${g}=[${[...m].join(',')}]`),
    skipped: s.skipped.map((r) => `${r.kind}:${r.externalId}${r.active === undefined ? '' : ` active=${r.active}`}`),
  };
}
