import { randomInt } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { createTestDatabase, testConfig } from '../support/env.js';
import { approveNow, runNow } from '../support/fixtures.js';
import { type DeprovisionMode, type Projection, SpecModel, canonicalGroups, canonicalUsers } from '../support/spec-model.js';
import { startTestServer } from '../support/test-server.js';
import {
  ACME,
  ENTERPRISE,
  GROUP_SCHEMA,
  PATCH_OP,
  ScimClient,
  USER_SCHEMA,
  createScimIntegration,
  diff,
  errorProblems,
  json,
  listProblems,
  unassigned,
} from './scim-oracle.js';

/**
 * Random sequences of SCIM requests (the way Okta, Entra and authentik push) against one
 * `scim` integration; an independent model written from RFC 7643/7644 predicts every status
 * and every resource, and SPEC's state model (test/support/spec-model.ts, fed with what the
 * SCIM model says was pushed) predicts the tenant after each run.
 *
 * Replay: DIRSYNC_SCIM_PROPERTY_SEED=<seed> (printed at start) [DIRSYNC_SCIM_PROPERTY_PATH=<path>]
 * [DIRSYNC_SCIM_PROPERTY_RUNS=<n>]; DIRSYNC_SCIM_PROPERTY_SHRINK=1 lets fast-check shrink.
 */

const SEED = process.env.DIRSYNC_SCIM_PROPERTY_SEED !== undefined ? Number(process.env.DIRSYNC_SCIM_PROPERTY_SEED) : randomInt(2 ** 31 - 1);
const RUNS = Number(process.env.DIRSYNC_SCIM_PROPERTY_RUNS ?? 30);
/**
 * Debugging aid only: comma-separated findings to steer around while looking for others
 * (`patch-primary`: no PATCH adds a primary email; `patch-ext-schemas`: no PATCH adds
 * the enterprise extension to a user without it; `user-groups`: a User's "groups" may be absent). The default generates everything.
 */
/** What the histories exercised (printed at the end, so that a seed that never reaches a case shows it). */
const tally = new Map<string, number>();
const count = (key: string, n = 1) => tally.set(key, (tally.get(key) ?? 0) + n);
const AVOID = new Set((process.env.DIRSYNC_SCIM_PROPERTY_AVOID ?? '').split(',').filter(Boolean));

let db: Db;
let config: Config;
let drop: () => Promise<void>;
let app: FastifyInstance;
let close: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
  ({ app, close } = await startTestServer(db, config));
});
afterAll(async () => {
  await close?.();
  await drop?.();
});

// ---- generated histories ----------------------------------------------------------------

/** Letters with simple Unicode case pairs (no ß, no dotted/dotless i: their case maps are not 1:1). */
const NAME_CHARS = ['a', 'b', 'k', 'o', 'Z', 'Q', 'ä', 'Ö', 'é', 'Ø', 'ł', 'Ж', 'ω'];
const TEXT_CHARS = [...NAME_CHARS, 'ß', ' ', '"', "'", '\\', '-', '日', '😀', '<'];

const word = (chars: string[], max = 6) => fc.array(fc.constantFrom(...chars), { minLength: 1, maxLength: max }).map((c) => c.join(''));
const text = word(TEXT_CHARS, 8).map((s) => s.trim() || 'x');

interface EmailSpec {
  type: 'work' | 'home' | 'other' | null;
  primary: boolean;
}
interface Profile {
  externalId: string | null;
  name: { givenName?: string; familyName?: string; middleName?: string } | null;
  displayName: string | null;
  title: string | null;
  emails: EmailSpec[];
  addresses: { locality: string; type: string }[] | null;
  active: boolean | null;
  enterprise: { employeeNumber?: string; department?: string } | null;
  acme: { badge: string; level: number; tags: string[] } | null;
  unknown: string | null;
  password: string | null;
}

const opt = <T>(arb: fc.Arbitrary<T>, freq = 2) => fc.option(arb, { nil: null, freq });

const profileArb: fc.Arbitrary<Profile> = fc.record({
  externalId: opt(word(['x', 'y', '1', '2', '9'], 8)),
  name: opt(
    fc.record({ givenName: text, familyName: text, middleName: text }, { requiredKeys: [] }).filter((n) => Object.keys(n).length > 0),
    4,
  ),
  displayName: opt(text, 3),
  title: opt(text),
  emails: fc.array(fc.record({ type: fc.constantFrom('work', 'home', 'other', null), primary: fc.boolean() }), { maxLength: 3 }).map((es) => {
    // RFC 7643 §2.4: "primary" true appears no more than once.
    let seen = false;
    return es.map((e) => {
      const primary = e.primary && !seen;
      seen ||= primary;
      return { ...e, primary };
    });
  }),
  addresses: opt(fc.array(fc.record({ locality: text, type: fc.constantFrom('work', 'home') }), { minLength: 1, maxLength: 2 })),
  active: fc.option(fc.boolean(), { nil: null, freq: 2 }),
  enterprise: opt(fc.record({ employeeNumber: word(['1', '2', '3', '7'], 5), department: text }, { requiredKeys: [] }).filter((e) => Object.keys(e).length > 0)),
  acme: opt(fc.record({ badge: text, level: fc.integer({ min: -5, max: 1000 }), tags: fc.array(text, { minLength: 1, maxLength: 3 }) })),
  unknown: opt(text),
  password: opt(text),
});

type NameSpec = { k: 'fresh'; base: string } | { k: 'variantOf'; of: number; flips: number } | { k: 'same' } | { k: 'ownVariant'; flips: number };

type UserOpSpec =
  | { k: 'replaceNoPath'; displayName: string | null; title: string | null; active: boolean | 'True' | 'False' | null; given: string; family: string; withName: boolean }
  | { k: 'replaceAttr'; attr: 'displayName' | 'title' | 'nickName'; v: string }
  | { k: 'replaceSub'; attr: 'givenName' | 'familyName'; v: string }
  | { k: 'replaceNamePartial'; v: string }
  | { k: 'addEmail'; type: 'work' | 'home' | 'other'; primary: boolean }
  | { k: 'replaceEmailByType'; type: 'work' | 'home' | 'other' }
  | { k: 'removeEmailByType'; type: 'work' | 'home' | 'other' }
  | { k: 'replaceEmails'; emails: EmailSpec[] }
  | { k: 'removeAttr'; attr: 'displayName' | 'title' | 'name.familyName' | 'name.givenName' | 'nickName' | 'emails' }
  | { k: 'active'; v: boolean | 'True' | 'False'; noPath: boolean }
  | { k: 'department'; v: string }
  | { k: 'userName'; name: NameSpec }
  | { k: 'addNoPath'; nickName: string; addEmail: boolean };

type GroupOpSpec =
  | { k: 'addMembers'; members: number[] }
  | { k: 'removeMember'; pick: number }
  | { k: 'removeAllMembers' }
  | { k: 'replaceMembers'; members: number[] }
  | { k: 'rename'; noPath: boolean };

type Command =
  | { k: 'createUser'; name: NameSpec; profile: Profile }
  | { k: 'putUser'; target: number; name: NameSpec; profile: Profile }
  | { k: 'patchUser'; target: number; ops: UserOpSpec[]; opCase: number }
  | { k: 'deleteUser'; target: number }
  | { k: 'createGroup'; members: number[] }
  | { k: 'putGroup'; target: number; members: number[] }
  | { k: 'patchGroup'; target: number; ops: GroupOpSpec[]; opCase: number }
  | { k: 'deleteGroup'; target: number }
  | { k: 'lookup'; target: number; flips: number }
  /** Deprovision and reprovision one user across runs: active false, run, then back by PATCH or by a PUT without "active". */
  | { k: 'cycle'; target: number; off: boolean | 'False'; on: 'patch' | 'patchString' | 'putWithoutActive' }
  | { k: 'run' };

const idx = fc.nat(1000);
const flips = fc.nat(2 ** 16);
const freshName: fc.Arbitrary<NameSpec> = word(NAME_CHARS, 5).map((base) => ({ k: 'fresh' as const, base }));
const createName: fc.Arbitrary<NameSpec> = fc.oneof(
  { weight: 3, arbitrary: freshName },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('variantOf' as const), of: idx, flips }) },
);
const putName: fc.Arbitrary<NameSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ k: 'same' as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('ownVariant' as const), flips }) },
  { weight: 1, arbitrary: freshName },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('variantOf' as const), of: idx, flips }) },
);
const emailType = fc.constantFrom('work' as const, 'home' as const, 'other' as const);
const boolish = fc.constantFrom(true, false, 'True' as const, 'False' as const);

const userOp: fc.Arbitrary<UserOpSpec> = fc.oneof(
  fc.record({ k: fc.constant('replaceNoPath' as const), displayName: opt(text, 2), title: opt(text), active: fc.option(boolish, { nil: null }), given: text, family: text, withName: fc.boolean() }),
  fc.record({ k: fc.constant('replaceAttr' as const), attr: fc.constantFrom('displayName' as const, 'title' as const, 'nickName' as const), v: text }),
  fc.record({ k: fc.constant('replaceSub' as const), attr: fc.constantFrom('givenName' as const, 'familyName' as const), v: text }),
  fc.record({ k: fc.constant('replaceNamePartial' as const), v: text }),
  fc.record({ k: fc.constant('addEmail' as const), type: emailType, primary: fc.boolean() }),
  fc.record({ k: fc.constant('replaceEmailByType' as const), type: emailType }),
  fc.record({ k: fc.constant('removeEmailByType' as const), type: emailType }),
  fc.record({ k: fc.constant('replaceEmails' as const), emails: profileArb.map((p) => p.emails) }),
  fc.record({ k: fc.constant('removeAttr' as const), attr: fc.constantFrom('displayName' as const, 'title' as const, 'name.familyName' as const, 'name.givenName' as const, 'nickName' as const, 'emails' as const) }),
  fc.record({ k: fc.constant('active' as const), v: boolish, noPath: fc.boolean() }),
  fc.record({ k: fc.constant('active' as const), v: boolish, noPath: fc.boolean() }),
  fc.record({ k: fc.constant('active' as const), v: boolish, noPath: fc.boolean() }),
  fc.record({ k: fc.constant('department' as const), v: text }),
  fc.record({ k: fc.constant('userName' as const), name: putName }),
  fc.record({ k: fc.constant('addNoPath' as const), nickName: text, addEmail: fc.boolean() }),
);
const members = fc.array(idx, { maxLength: 4 });
const groupOp: fc.Arbitrary<GroupOpSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('addMembers' as const), members: members }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('removeMember' as const), pick: idx }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('removeAllMembers' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('replaceMembers' as const), members: members }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rename' as const), noPath: fc.boolean() }) },
);

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('createUser' as const), name: createName, profile: profileArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('putUser' as const), target: idx, name: putName, profile: profileArb }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('patchUser' as const), target: idx, ops: fc.array(userOp, { minLength: 1, maxLength: 3 }), opCase: flips }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('deleteUser' as const), target: idx }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('createGroup' as const), members }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('putGroup' as const), target: idx, members }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('patchGroup' as const), target: idx, ops: fc.array(groupOp, { minLength: 1, maxLength: 3 }), opCase: flips }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('deleteGroup' as const), target: idx }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('lookup' as const), target: idx, flips }) },
  { weight: 3, arbitrary: fc.constant({ k: 'run' as const }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('cycle' as const), target: idx, off: fc.constantFrom(false as const, 'False' as const), on: fc.constantFrom('patch' as const, 'patchString' as const, 'putWithoutActive' as const) }) },
);

const history = fc.record({
  mode: fc.constantFrom<DeprovisionMode>('suspend', 'remove-access', 'delete'),
  threshold: fc.constantFrom(undefined, '20', '100'),
  // A few users first, so that the rest of the history has someone to act on.
  commands: fc
    .tuple(fc.array(fc.record({ k: fc.constant('createUser' as const), name: freshName, profile: profileArb }), { minLength: 2, maxLength: 4 }), fc.array(command, { minLength: 3, maxLength: 21 }))
    .map(([first, rest]) => [...first, ...rest] as Command[]),
});
interface History {
  mode: DeprovisionMode;
  threshold: string | undefined;
  commands: Command[];
}

// ---- the SCIM model (RFC 7643 / 7644) ------------------------------------------------------

type Json = Record<string, unknown>;
interface Email {
  value: string;
  type?: string;
  primary?: boolean;
}
interface UserRes {
  id: string;
  /** Every attribute as the client sent it (canonical names), minus password; no schemas/id/meta. */
  body: Json;
  deleted: boolean;
}
interface GroupRes {
  id: string;
  displayName: string;
  /** Member user ids, in the order pushed. */
  members: string[];
  deleted: boolean;
}

/** Flip the case of each letter by the bits of `seed` (a case variant of the same login). */
function recase(s: string, seed: number): string {
  let i = 0;
  return [...s].map((c) => ((seed >> i++ % 16) & 1 ? c.toUpperCase() : c.toLowerCase())).join('');
}
/** RFC 7643 §4.1.1: userName is caseExact false, uniqueness server. SPEC: Unicode case-insensitive. */
const sameLogin = (a: string, b: string) => a.normalize('NFC').toLowerCase() === b.normalize('NFC').toLowerCase();
const opName = (op: string, seed: number, i: number) => {
  const v = (seed >> (2 * i)) % 3;
  return v === 0 ? op : v === 1 ? op[0]!.toUpperCase() + op.slice(1) : op.toUpperCase();
};
const bool = (v: boolean | 'True' | 'False') => v === true || v === 'True';

class World {
  users: UserRes[] = [];
  groups: GroupRes[] = [];
  spec = new SpecModel();
  serial = 0;
  runs = 0;
  constructor(
    readonly h: History,
    readonly c: ScimClient,
    readonly tenantId: string,
    readonly tenantSlug: string,
    readonly domain: string,
  ) {
    this.spec.addIntegration(c.integrationId, tenantSlug, h.mode);
  }
  live(): UserRes[] {
    return this.users.filter((u) => !u.deleted);
  }
  liveGroups(): GroupRes[] {
    return this.groups.filter((g) => !g.deleted);
  }
  next(): number {
    return ++this.serial;
  }
  fail(message: string): never {
    throw new Error(`${message}\n\nseed ${SEED} (DIRSYNC_SCIM_PROPERTY_SEED=${SEED}), mode ${this.h.mode}, threshold ${this.h.threshold}\nrequests so far (last 40):\n${this.c.transcript()}`);
  }
  expectStatus(res: LightMyRequestResponse, expected: number[], why: string): void {
    count(`${res.statusCode}`);
    if (!expected.includes(res.statusCode)) this.fail(`expected ${expected.join(' or ')} (${why}), got ${res.statusCode} ${res.body.slice(0, 500)}`);
  }
  expectError(res: LightMyRequestResponse, status: number, scimType: string | undefined, why: string): void {
    count(`${res.statusCode}${scimType ? ` ${scimType}` : ''}`);
    const p = errorProblems(res, status, scimType);
    if (p.length) this.fail(`expected a SCIM error ${status}${scimType ? ` ${scimType}` : ''} (${why}): ${p.join('; ')}`);
  }

  resolveName(spec: NameSpec, self: UserRes | undefined): string {
    switch (spec.k) {
      case 'fresh':
        return `${spec.base}${this.next()}@${this.domain}`;
      case 'same':
        return self!.body.userName as string;
      case 'ownVariant':
        return recase(self!.body.userName as string, spec.flips);
      case 'variantOf': {
        const others = this.users.filter((u) => u !== self);
        if (others.length === 0) return `solo${this.next()}@${this.domain}`;
        return recase(others[spec.of % others.length]!.body.userName as string, spec.flips);
      }
    }
  }
  clash(userName: string, self: UserRes | undefined): boolean {
    return this.live().some((u) => u !== self && sameLogin(u.body.userName as string, userName));
  }

  email(spec: EmailSpec): Email {
    const e: Email = { value: `m${this.next()}@${this.domain}` };
    if (spec.type) e.type = spec.type;
    if (spec.primary) e.primary = true;
    return e;
  }

  /** The request body for POST/PUT, and what the service provider must keep of it. */
  userBody(userName: string, p: Profile): { request: Json; kept: Json } {
    const request: Json = { schemas: [USER_SCHEMA], userName };
    if (p.externalId !== null) request.externalId = p.externalId;
    if (p.name !== null) request.name = p.name;
    if (p.displayName !== null) request.displayName = p.displayName;
    if (p.title !== null) request.title = p.title;
    if (p.emails.length) request.emails = p.emails.map((e) => this.email(e));
    if (p.addresses !== null) request.addresses = p.addresses;
    if (p.active !== null) request.active = p.active;
    if (p.enterprise !== null) {
      request[ENTERPRISE] = p.enterprise;
      (request.schemas as string[]).push(ENTERPRISE);
    }
    if (p.acme !== null) {
      request[ACME] = p.acme;
      (request.schemas as string[]).push(ACME);
    }
    // An attribute no schema defines: SPEC (Identity) "nothing the IdP sends is lost".
    if (p.unknown !== null) request.acmeFavouriteColour = p.unknown;
    // RFC 7643 §4.1.1: password is writeOnly, "returned" never.
    if (p.password !== null) request.password = p.password;
    const kept = structuredClone(request);
    delete kept.schemas;
    delete kept.password;
    return { request, kept };
  }

  pickUser(target: number): UserRes | undefined {
    return this.users.length ? this.users[target % this.users.length] : undefined;
  }
  pickGroup(target: number): GroupRes | undefined {
    return this.groups.length ? this.groups[target % this.groups.length] : undefined;
  }
  memberIds(picks: number[]): string[] {
    const live = this.live();
    if (!live.length) return [];
    return [...new Set(picks.map((p) => live[p % live.length]!.id))];
  }

  // ---- commands ---------------------------------------------------------------------------

  async createUser(cmd: Extract<Command, { k: 'createUser' }>): Promise<void> {
    const userName = this.resolveName(cmd.name, undefined);
    const { request, kept } = this.userBody(userName, cmd.profile);
    const res = await this.c.send('POST', '/Users', request);
    if (this.clash(userName, undefined)) {
      // RFC 7644 §3.3: a duplicate userName is 409 with scimType "uniqueness".
      this.expectError(res, 409, 'uniqueness', `POST /Users with userName "${userName}" equal but for case to an existing user (RFC 7643 §4.1.1 caseExact false; RFC 7644 §3.3)`);
      return;
    }
    this.expectStatus(res, [201], 'RFC 7644 §3.3: a created resource is answered 201');
    const body = json(res);
    if (typeof body.id !== 'string' || body.id === '') this.fail(`POST /Users returned no id: ${res.body}`);
    const location = res.headers.location;
    if (typeof location !== 'string' || !location.endsWith(`/Users/${body.id}`)) this.fail(`RFC 7644 §3.3: the Location header must be the new resource's URI, got ${show(location)}`);
    const user: UserRes = { id: body.id as string, body: kept, deleted: false };
    this.users.push(user);
    this.checkUser(body, user, 'POST /Users response');
  }

  async putUser(cmd: Extract<Command, { k: 'putUser' }>): Promise<void> {
    const user = this.pickUser(cmd.target);
    if (!user) return this.createUser({ k: 'createUser', name: { k: 'fresh', base: 'put' }, profile: cmd.profile });
    const userName = this.resolveName(cmd.name, user);
    const { request, kept } = this.userBody(userName, cmd.profile);
    request.id = user.id;
    const res = await this.c.send('PUT', `/Users/${user.id}`, request);
    if (user.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: every operation on a deleted resource is 404');
    if (this.clash(userName, user)) return this.expectError(res, 409, 'uniqueness', `PUT renames to "${userName}", another user's login but for case (RFC 7644 §3.12: uniqueness applies to PUT)`);
    this.expectStatus(res, [200], 'RFC 7644 §3.5.1: a replaced resource is answered 200');
    // RFC 7644 §3.5.1: PUT replaces every attribute; what was not sent is cleared.
    user.body = kept;
    this.checkUser(json(res), user, 'PUT /Users response');
  }

  async deleteUser(cmd: Extract<Command, { k: 'deleteUser' }>): Promise<void> {
    const user = this.pickUser(cmd.target);
    if (!user) return;
    const res = await this.c.send('DELETE', `/Users/${user.id}`);
    if (user.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: a deleted resource is 404 for every operation');
    this.expectStatus(res, [204], 'RFC 7644 §3.6: DELETE answers 204');
    user.deleted = true;
    const after = await this.c.send('GET', `/Users/${user.id}`);
    this.expectError(after, 404, undefined, 'RFC 7644 §3.6: GET of a deleted resource is 404');
  }

  /** One PATCH op against a working copy of the user; null when the op does not fit the user (skipped). */
  userOp(op: UserOpSpec, b: Json, self: UserRes, i: number, seed: number): { op: Json; conflict?: string } | null {
    const name = (o: string) => opName(o, seed, i);
    const emails = () => (b.emails as Email[] | undefined) ?? [];
    switch (op.k) {
      case 'replaceNoPath': {
        const value: Json = {};
        if (op.displayName !== null) value.displayName = op.displayName;
        if (op.title !== null) value.title = op.title;
        if (op.active !== null) value.active = op.active;
        // The whole name, every sub-attribute it has: whether a path-less replace merges a complex
        // value (RFC 7644 §3.5.2.3) or replaces it, the result is the same (replaceNamePartial
        // tests the merge where the RFC is explicit).
        if (op.withName || Object.keys(value).length === 0) value.name = { ...((b.name as Json) ?? {}), givenName: op.given, familyName: op.family };
        for (const [k, v] of Object.entries(value)) {
          if (k === 'active') b.active = bool(v as boolean);
          else if (k === 'name') b.name = { ...((b.name as Json) ?? {}), ...(v as Json) };
          else b[k] = v;
        }
        return { op: { op: name('replace'), value } };
      }
      case 'replaceAttr':
        b[op.attr] = op.v;
        return { op: { op: name('replace'), path: op.attr, value: op.v } };
      case 'replaceSub':
        b.name = { ...((b.name as Json) ?? {}), [op.attr]: op.v };
        return { op: { op: name('replace'), path: `name.${op.attr}`, value: op.v } };
      case 'replaceNamePartial':
        // RFC 7644 §3.5.2.3: sub-attributes not in "value" are left unchanged.
        b.name = { ...((b.name as Json) ?? {}), givenName: op.v };
        return { op: { op: name('replace'), path: 'name', value: { givenName: op.v } } };
      case 'addEmail': {
        const e = this.email({ type: op.type, primary: op.primary && !AVOID.has('patch-primary') });
        // RFC 7644 §3.5.2: setting "primary" true sets it false on every other value.
        const rest = emails().map((x) => (e.primary === true && x.primary === true ? { ...x, primary: false } : x));
        b.emails = [...rest, e];
        return { op: { op: name('add'), path: 'emails', value: [e] } };
      }
      case 'replaceEmailByType': {
        if (!emails().some((e) => e.type === op.type)) return null; // no match: RFC says 400 noTarget (bad-input.test.ts)
        const value = `r${this.next()}@${this.domain}`;
        b.emails = emails().map((e) => (e.type === op.type ? { ...e, value } : e));
        return { op: { op: name('replace'), path: `emails[type eq "${op.type}"].value`, value } };
      }
      case 'removeEmailByType': {
        if (!emails().some((e) => e.type === op.type)) return null;
        const rest = emails().filter((e) => e.type !== op.type);
        if (rest.length) b.emails = rest;
        else delete b.emails;
        return { op: { op: name('remove'), path: `emails[type eq "${op.type}"]` } };
      }
      case 'replaceEmails': {
        const value = op.emails.map((e) => this.email(e));
        if (value.length === 0) return null;
        b.emails = value;
        return { op: { op: name('replace'), path: 'emails', value } };
      }
      case 'removeAttr': {
        const [top, sub] = op.attr.split('.') as [string, string | undefined];
        if (sub) {
          const n = b.name as Json | undefined;
          if (!n || n[sub] === undefined) return null;
          const rest = { ...n };
          delete rest[sub];
          if (Object.keys(rest).length) b.name = rest;
          else delete b.name;
        } else {
          if (b[top] === undefined) return null;
          delete b[top];
        }
        return { op: { op: name('remove'), path: op.attr } };
      }
      case 'active':
        b.active = bool(op.v);
        return op.noPath ? { op: { op: name('replace'), value: { active: op.v } } } : { op: { op: name('replace'), path: 'active', value: op.v } };
      case 'department':
        if (AVOID.has('patch-ext-schemas') && b[ENTERPRISE] === undefined) return null;
        b[ENTERPRISE] = { ...((b[ENTERPRISE] as Json) ?? {}), department: op.v };
        return { op: { op: name('replace'), path: `${ENTERPRISE}:department`, value: op.v } };
      case 'userName': {
        const userName = this.resolveName(op.name, self);
        b.userName = userName;
        return { op: { op: name('replace'), path: 'userName', value: userName }, conflict: this.clash(userName, self) ? userName : undefined };
      }
      case 'addNoPath': {
        // RFC 7644 §3.5.2.1: no path: the value's attributes are added; a single-valued one is
        // replaced, a multi-valued one gets the new values appended.
        const value: Json = { nickName: op.nickName };
        b.nickName = op.nickName;
        if (op.addEmail) {
          const e = this.email({ type: 'other', primary: false });
          value.emails = [e];
          b.emails = [...emails(), e];
        }
        return { op: { op: name('add'), value } };
      }
    }
  }

  async patchUser(cmd: Extract<Command, { k: 'patchUser' }>): Promise<void> {
    const user = this.pickUser(cmd.target);
    if (!user) return;
    const working = structuredClone(user.body);
    const ops: Json[] = [];
    let conflict: string | undefined;
    let renamed = false;
    for (const [i, spec] of cmd.ops.entries()) {
      if (spec.k === 'userName' && renamed) continue; // one rename per request keeps the clash check exact
      const made = this.userOp(spec, working, user, i, cmd.opCase);
      if (!made) continue;
      count(`patch op ${spec.k}`);
      renamed ||= spec.k === 'userName';
      ops.push(made.op);
      conflict ??= made.conflict;
    }
    if (ops.length === 0) ops.push(this.userOp({ k: 'replaceAttr', attr: 'title', v: `t${this.next()}` }, working, user, 0, cmd.opCase)!.op);
    const res = await this.c.send('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: ops });
    if (user.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: every operation on a deleted resource is 404');
    if (conflict !== undefined) {
      // RFC 7644 §3.5.2: a PATCH is atomic; nothing of it applies when one op fails.
      return this.expectError(res, 409, 'uniqueness', `PATCH renames to "${conflict}", another user's login but for case (RFC 7644 §3.12)`);
    }
    this.expectStatus(res, [200, 204], 'RFC 7644 §3.5.2: a successful PATCH is 200 with the resource or 204');
    user.body = working;
    if (res.statusCode === 200) this.checkUser(json(res), user, 'PATCH /Users response');
  }

  async createGroup(cmd: Extract<Command, { k: 'createGroup' }>): Promise<void> {
    const displayName = `Group ${this.next()} ${cmd.members.length % 2 ? 'Ωmega' : 'ops'}`;
    const memberIds = this.memberIds(cmd.members);
    const res = await this.c.send('POST', '/Groups', {
      schemas: [GROUP_SCHEMA],
      displayName,
      members: memberIds.map((value) => ({ value, display: 'ignored display' })),
    });
    this.expectStatus(res, [201], 'RFC 7644 §3.3: a created group is answered 201');
    const body = json(res);
    if (typeof body.id !== 'string') this.fail(`POST /Groups returned no id: ${res.body}`);
    const g: GroupRes = { id: body.id as string, displayName, members: memberIds, deleted: false };
    this.groups.push(g);
    this.checkGroup(body, g, 'POST /Groups response');
  }

  async putGroup(cmd: Extract<Command, { k: 'putGroup' }>): Promise<void> {
    const g = this.pickGroup(cmd.target);
    if (!g) return this.createGroup({ k: 'createGroup', members: cmd.members });
    const displayName = `Renamed ${this.next()}`;
    const memberIds = this.memberIds(cmd.members);
    const res = await this.c.send('PUT', `/Groups/${g.id}`, { schemas: [GROUP_SCHEMA], id: g.id, displayName, members: memberIds.map((value) => ({ value })) });
    if (g.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: every operation on a deleted resource is 404');
    this.expectStatus(res, [200], 'RFC 7644 §3.5.1: PUT answers 200');
    g.displayName = displayName;
    g.members = memberIds;
    this.checkGroup(json(res), g, 'PUT /Groups response');
  }

  async patchGroup(cmd: Extract<Command, { k: 'patchGroup' }>): Promise<void> {
    const g = this.pickGroup(cmd.target);
    if (!g) return;
    let members = this.liveMembers(g);
    let displayName = g.displayName;
    const ops: Json[] = [];
    for (const [i, op] of cmd.ops.entries()) {
      const name = (o: string) => opName(o, cmd.opCase, i);
      switch (op.k) {
        case 'addMembers': {
          const add = this.memberIds(op.members);
          if (!add.length) continue;
          // RFC 7644 §3.5.2.1: a value already there is not added again.
          members = [...members, ...add.filter((id) => !members.includes(id))];
          ops.push({ op: name('add'), path: 'members', value: add.map((value) => ({ value })) });
          break;
        }
        case 'removeMember': {
          if (!members.length) continue;
          const id = members[op.pick % members.length]!;
          members = members.filter((m) => m !== id);
          ops.push({ op: name('remove'), path: `members[value eq "${id}"]` });
          break;
        }
        case 'removeAllMembers':
          if (!members.length) continue;
          members = [];
          ops.push({ op: name('remove'), path: 'members' });
          break;
        case 'replaceMembers': {
          const to = this.memberIds(op.members);
          members = to;
          ops.push({ op: name('replace'), path: 'members', value: to.map((value) => ({ value })) });
          break;
        }
        case 'rename':
          displayName = `Patched ${this.next()}`;
          ops.push(op.noPath ? { op: name('replace'), value: { displayName } } : { op: name('replace'), path: 'displayName', value: displayName });
          break;
      }
    }
    if (!ops.length) {
      displayName = `Patched ${this.next()}`;
      ops.push({ op: 'replace', path: 'displayName', value: displayName });
    }
    const res = await this.c.send('PATCH', `/Groups/${g.id}`, { schemas: [PATCH_OP], Operations: ops });
    if (g.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: every operation on a deleted resource is 404');
    this.expectStatus(res, [200, 204], 'RFC 7644 §3.5.2: a successful PATCH is 200 with the resource or 204');
    g.displayName = displayName;
    g.members = members;
    if (res.statusCode === 200) this.checkGroup(json(res), g, 'PATCH /Groups response');
  }

  async deleteGroup(cmd: Extract<Command, { k: 'deleteGroup' }>): Promise<void> {
    const g = this.pickGroup(cmd.target);
    if (!g) return;
    const res = await this.c.send('DELETE', `/Groups/${g.id}`);
    if (g.deleted) return this.expectError(res, 404, undefined, 'RFC 7644 §3.6: a deleted resource is 404 for every operation');
    this.expectStatus(res, [204], 'RFC 7644 §3.6: DELETE answers 204');
    g.deleted = true;
  }

  async lookup(cmd: Extract<Command, { k: 'lookup' }>): Promise<void> {
    const user = this.pickUser(cmd.target);
    if (!user) return;
    const variant = recase(user.body.userName as string, cmd.flips);
    // Okta's lookup before a create (IDP-FACTS): filter, startIndex=1, count=100.
    const res = await this.c.send('GET', `/Users?filter=${encodeURIComponent(`userName eq ${JSON.stringify(variant)}`)}&startIndex=1&count=100`);
    this.expectStatus(res, [200], 'RFC 7644 §3.4.2: a query answers 200');
    const body = json(res);
    const p = listProblems(body);
    const want = this.live().filter((u) => sameLogin(u.body.userName as string, variant));
    const got = ((body.Resources ?? []) as Json[]).map((r) => r.id);
    if (body.totalResults !== want.length || got.length !== want.length || !want.every((u) => got.includes(u.id))) {
      p.push(`filter userName eq ${JSON.stringify(variant)} (RFC 7643 §4.1.1 caseExact false: case-insensitive) should find ${JSON.stringify(want.map((u) => u.id))}, got totalResults ${body.totalResults} ids ${JSON.stringify(got)}`);
    }
    for (const r of (body.Resources ?? []) as Json[]) {
      const u = this.users.find((x) => x.id === r.id);
      if (u) p.push(...this.userProblems(r, u, 'filtered list'));
    }
    if (p.length) this.fail(p.join('\n'));
  }

  async cycle(cmd: Extract<Command, { k: 'cycle' }>): Promise<void> {
    const live = this.live();
    if (!live.length) return;
    const user = live[cmd.target % live.length]!;
    await this.run();
    await this.patchUser({ k: 'patchUser', target: this.users.indexOf(user), ops: [{ k: 'active', v: cmd.off, noPath: cmd.target % 2 === 0 }], opCase: cmd.target });
    await this.run();
    if (cmd.on === 'putWithoutActive') {
      // RFC 7644 §3.5.1: PUT replaces everything; "active" not sent means active (the contract).
      const request: Json = { schemas: [USER_SCHEMA, ...[ENTERPRISE, ACME].filter((u) => user.body[u] !== undefined)], ...structuredClone(user.body) };
      delete request.active;
      const res = await this.c.send('PUT', `/Users/${user.id}`, request);
      this.expectStatus(res, [200], 'RFC 7644 §3.5.1: PUT answers 200');
      const kept = structuredClone(request);
      delete kept.schemas;
      user.body = kept;
      this.checkUser(json(res), user, 'PUT /Users response');
    } else {
      await this.patchUser({ k: 'patchUser', target: this.users.indexOf(user), ops: [{ k: 'active', v: cmd.on === 'patch' ? true : 'True', noPath: false }], opCase: cmd.target >> 3 });
    }
    await this.run();
  }

  // ---- checks -----------------------------------------------------------------------------

  liveMembers(g: GroupRes): string[] {
    const live = new Set(this.live().map((u) => u.id));
    return g.members.filter((m) => live.has(m));
  }

  userProblems(actual: Json, user: UserRes, where: string): string[] {
    const groupsOf = this.liveGroups().filter((g) => this.liveMembers(g).includes(user.id)).map((g) => g.id);
    const p = diff(actual, user.body, where, (path, key, value) => {
      if (path === where) {
        if (key === 'id') return value === user.id;
        if (key === 'schemas' || key === 'meta') return true;
        // RFC 7643 §4.1.2 "groups" is readOnly, computed by the server: checked below.
        if (key === 'groups') return true;
        // Absent "active" means active (the feature's contract).
        if (key === 'active') return value === true && user.body.active === undefined;
        return false;
      }
      // Server-added sub-attributes that say nothing new.
      if (key === 'primary') return value === false;
      // RFC 7643 §4.1.1: name.formatted may be built by the service provider from the parts.
      if (key === 'formatted' && path.endsWith('.name')) return typeof value === 'string';
      return false;
    });
    if (actual.id !== user.id) p.push(`${where}.id: expected ${user.id}, got ${show(actual.id)}`);
    if ('password' in actual) p.push(`${where}: password returned (RFC 7643 §4.1.1: returned "never")`);
    const schemas = actual.schemas as unknown;
    const needed = [USER_SCHEMA, ...[ENTERPRISE, ACME].filter((u) => !unassigned(user.body[u]))];
    if (!Array.isArray(schemas) || !needed.every((s) => schemas.includes(s))) p.push(`${where}.schemas: ${show(schemas)} must list ${show(needed)} (RFC 7643 §3)`);
    const meta = actual.meta as Json | undefined;
    if (!meta || meta.resourceType !== 'User' || typeof meta.location !== 'string' || !meta.location.endsWith(`/Users/${user.id}`)) {
      p.push(`${where}.meta: ${show(meta)}: resourceType "User" and location ending /Users/${user.id} (RFC 7643 §3.1)`);
    }
    // RFC 7643 §4.1.2 / §7: "groups" is returned by default (the endpoint's own /Schemas says so):
    // a member's representation lists its groups.
    if (unassigned(actual.groups) && groupsOf.length && !AVOID.has('user-groups') && !where.startsWith('attributes=')) {
      p.push(`${where}.groups: absent, but the user is a member of ${show(groupsOf)} (RFC 7643 §4.1.2, "returned": "default")`);
    }
    if (!unassigned(actual.groups)) {
      const got = (actual.groups as Json[]).map((g) => g.value as string).sort();
      if (show(got) !== show([...groupsOf].sort())) p.push(`${where}.groups: ${show(got)}, but the user is a member of ${show(groupsOf)}`);
    }
    return p;
  }

  checkUser(actual: Json, user: UserRes, where: string): void {
    const p = this.userProblems(actual, user, where);
    if (p.length) this.fail(`${where} differs from what was pushed:\n  ${p.join('\n  ')}\nexpected (attributes pushed): ${show(user.body)}\nactual: ${show(actual)}`);
  }

  groupProblems(actual: Json, g: GroupRes, where: string, withMembers = true): string[] {
    const p: string[] = [];
    if (actual.id !== g.id) p.push(`${where}.id: expected ${g.id}, got ${show(actual.id)}`);
    if (actual.displayName !== g.displayName) p.push(`${where}.displayName: expected ${show(g.displayName)}, got ${show(actual.displayName)}`);
    const schemas = actual.schemas;
    if (!Array.isArray(schemas) || !schemas.includes(GROUP_SCHEMA)) p.push(`${where}.schemas: ${show(schemas)} lacks ${GROUP_SCHEMA}`);
    const meta = actual.meta as Json | undefined;
    if (!meta || meta.resourceType !== 'Group' || typeof meta.location !== 'string' || !meta.location.endsWith(`/Groups/${g.id}`)) {
      p.push(`${where}.meta: ${show(meta)}: resourceType "Group" and location ending /Groups/${g.id}`);
    }
    if (withMembers) {
      // Members as pushed; a member whose user was deleted may or may not still be listed
      // (RFC 7644 §3.6 leaves referential cleanup open), but no other id may appear.
      const got = ((actual.members ?? []) as Json[]).map((m) => m.value as string);
      const want = this.liveMembers(g);
      const allowed = new Set(g.members);
      const missing = want.filter((m) => !got.includes(m));
      const stray = got.filter((m) => !allowed.has(m));
      if (missing.length || stray.length || new Set(got).size !== got.length) {
        p.push(`${where}.members: expected ${show(want)}, got ${show(got)}`);
      }
    }
    for (const k of Object.keys(actual)) {
      if (!['id', 'schemas', 'meta', 'displayName', 'members', 'externalId'].includes(k) && !unassigned(actual[k])) p.push(`${where}.${k}: never sent, returned as ${show(actual[k])}`);
    }
    return p;
  }

  checkGroup(actual: Json, g: GroupRes, where: string): void {
    const p = this.groupProblems(actual, g, where);
    if (p.length) this.fail(`${where} differs from what was pushed:\n  ${p.join('\n  ')}\nactual: ${show(actual)}`);
  }

  /** Every resource read back one by one and as lists (paged, attributes, excludedAttributes). */
  async checkReads(): Promise<void> {
    const p: string[] = [];
    for (const u of this.users) {
      const res = await this.c.send('GET', `/Users/${u.id}`);
      if (u.deleted) p.push(...errorProblems(res, 404).map((x) => `GET deleted /Users/${u.id}: ${x}`));
      else if (res.statusCode !== 200) p.push(`GET /Users/${u.id}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      else p.push(...this.userProblems(json(res), u, `GET /Users/${u.id}`));
    }
    for (const g of this.groups) {
      const res = await this.c.send('GET', `/Groups/${g.id}`);
      if (g.deleted) p.push(...errorProblems(res, 404).map((x) => `GET deleted /Groups/${g.id}: ${x}`));
      else if (res.statusCode !== 200) p.push(`GET /Groups/${g.id}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      else p.push(...this.groupProblems(json(res), g, `GET /Groups/${g.id}`));
    }
    // Paging (RFC 7644 §3.4.2.4): 1-based startIndex, at most `count` per page, every user once.
    const seen: string[] = [];
    const live = this.live();
    for (let start = 1, guard = 0; guard < 50; guard++) {
      const res = await this.c.send('GET', `/Users?startIndex=${start}&count=2`);
      if (res.statusCode !== 200) {
        p.push(`GET /Users?startIndex=${start}&count=2: ${res.statusCode}`);
        break;
      }
      const body = json(res);
      p.push(...listProblems(body).map((x) => `page ${start}: ${x}`));
      if (body.totalResults !== live.length) p.push(`page ${start}: totalResults ${body.totalResults}, expected ${live.length}`);
      if (body.startIndex !== start) p.push(`page ${start}: startIndex ${show(body.startIndex)}, expected ${start}`);
      const page = (body.Resources ?? []) as Json[];
      if (page.length > 2) p.push(`page ${start}: ${page.length} resources, count was 2`);
      for (const r of page) {
        seen.push(r.id as string);
        const u = this.users.find((x) => x.id === r.id);
        if (!u) p.push(`page ${start}: unknown id ${show(r.id)}`);
        else p.push(...this.userProblems(r, u, `page ${start} /Users/${u.id}`));
      }
      if (page.length === 0 || start + page.length > live.length) break;
      start += page.length;
    }
    if (show([...seen].sort()) !== show(live.map((u) => u.id).sort())) p.push(`paging through /Users saw ${show(seen)}, expected each of ${show(live.map((u) => u.id))} once`);

    // attributes=userName (RFC 7644 §3.4.2.5): only the requested attributes and those returned "always" (id).
    const only = await this.c.send('GET', '/Users?attributes=userName&count=1000');
    if (only.statusCode !== 200) p.push(`GET /Users?attributes=userName: ${only.statusCode}`);
    else {
      for (const r of (json(only).Resources ?? []) as Json[]) {
        const u = this.users.find((x) => x.id === r.id);
        if (!u) p.push(`attributes=userName: unknown id ${show(r.id)}`);
        else if (r.userName !== u.body.userName) p.push(`attributes=userName: ${u.id} userName ${show(r.userName)}, expected ${show(u.body.userName)}`);
        for (const k of ['emails', 'name', 'displayName', 'title', 'addresses', 'externalId', ENTERPRISE, ACME, 'acmeFavouriteColour']) {
          if (!unassigned(r[k])) p.push(`attributes=userName: ${show(r.id)} still has ${k}`);
        }
      }
    }
    // Okta's group listing: excludedAttributes=members.
    const groups = await this.c.send('GET', '/Groups?excludedAttributes=members&count=1000');
    if (groups.statusCode !== 200) p.push(`GET /Groups?excludedAttributes=members: ${groups.statusCode}`);
    else {
      const body = json(groups);
      p.push(...listProblems(body).map((x) => `/Groups: ${x}`));
      const resources = (body.Resources ?? []) as Json[];
      if (body.totalResults !== this.liveGroups().length) p.push(`/Groups totalResults ${body.totalResults}, expected ${this.liveGroups().length}`);
      for (const r of resources) {
        const g = this.groups.find((x) => x.id === r.id);
        if (!g) p.push(`/Groups: unknown id ${show(r.id)}`);
        else p.push(...this.groupProblems(r, g, `/Groups excludedAttributes=members ${g.id}`, false));
        if (!unassigned(r.members)) p.push(`/Groups excludedAttributes=members: ${show(r.id)} still lists members`);
      }
      // Okta looks a group up by displayName (caseExact false).
      const g = this.liveGroups()[0];
      if (g) {
        const res = await this.c.send('GET', `/Groups?filter=${encodeURIComponent(`displayName eq ${JSON.stringify(g.displayName.toUpperCase())}`)}`);
        const got = res.statusCode === 200 ? ((json(res).Resources ?? []) as Json[]).map((r) => r.id) : [];
        const want = this.liveGroups().filter((x) => x.displayName.toLowerCase() === g.displayName.toLowerCase()).map((x) => x.id);
        if (res.statusCode !== 200 || show(got.sort()) !== show(want.sort())) p.push(`displayName eq (case-insensitive, RFC 7643 §4.2) -> ${res.statusCode} ${show(got)}, expected ${show(want)}`);
      }
    }
    if (p.length) this.fail(`reading back what was pushed:\n  ${p.join('\n  ')}`);
  }

  /** SPEC's rules applied to what was pushed: the integration's scope is every live SCIM resource. */
  projection(): Projection {
    const users: Projection['users'] = new Map();
    for (const u of this.live()) {
      const emails = (u.body.emails as Email[] | undefined) ?? [];
      const email = emails.find((e) => e.primary === true) ?? emails.find((e) => e.type === 'work') ?? emails[0];
      const name = (u.body.name as Json | undefined) ?? {};
      const active = u.body.active !== false;
      users.set(u.id, {
        id: u.id,
        userName: u.body.userName as string,
        email: email?.value ?? null,
        givenName: (name.givenName as string | undefined) ?? null,
        familyName: (name.familyName as string | undefined) ?? null,
        displayName: (u.body.displayName as string | undefined) ?? null,
        active,
        status: active ? 'active' : 'inactive',
      });
    }
    const groups: Projection['groups'] = new Map();
    const members: Projection['members'] = new Map();
    for (const g of this.liveGroups()) {
      groups.set(g.id, { id: g.id, name: g.displayName });
      members.set(g.id, new Set(this.liveMembers(g)));
    }
    return { users, groups, members, bad: new Set() };
  }

  /** A run as a push asks for one (targeted: what was written since), or a full one. */
  async run(mode: 'targeted' | 'full' = 'targeted'): Promise<void> {
    this.runs += 1;
    // SPEC "Run": what a targeted run plans for the subjects it names is what a full run plans;
    // with every write named, the two plans count alike (a dry run records the full plan).
    const full = mode === 'targeted' ? await runNow({ db, config }, this.c.integrationId, { dryRun: true }) : undefined;
    let run = await runNow({ db, config }, this.c.integrationId, { trigger: mode === 'targeted' ? 'scim' : 'manual' });
    count(`${run.mode} runs`);
    if (full && run.status === 'succeeded' && show(full.counts) !== show(run.counts)) {
      this.fail(`a targeted run counted ${show(run.counts)}; a full dry run of the same state planned ${show(full.counts)}`);
    }
    this.c.log.push(`(run ${run.id}: ${run.status} ${show(run.counts)} ${show(run.warnings)} ${run.error ?? ''})`);
    for (const [k, v] of Object.entries(run.counts as unknown as Record<string, number>)) if (v) count(k, v);
    if (run.status === 'held') {
      count('held runs');
      run = await approveNow({ db, config }, run.id);
      this.c.log.push(`(approved: ${run.status} ${show(run.counts)})`);
    }
    if (run.status !== 'succeeded') this.fail(`the run did not succeed: ${show(run)}`);
    if (run.warnings.length) this.fail(`SPEC Safety: warnings name skipped records; nothing pushed here is unreadable, yet: ${show(run.warnings)}`);
    this.spec.cleanRun(this.c.integrationId, this.projection());
    const repo = new DirectoryRepository(db);
    const users = canonicalUsers((await repo.listTenantUsers(this.tenantId)) as unknown as Record<string, unknown>[]);
    const groups = canonicalGroups((await repo.listTenantGroups(this.tenantId)) as unknown as Record<string, unknown>[]);
    const wantUsers = this.spec.users(this.tenantSlug);
    const wantGroups = this.spec.groups(this.tenantSlug);
    if (show(users) !== show(wantUsers) || show(groups) !== show(wantGroups)) {
      this.fail(
        `after run ${this.runs} (mode ${this.h.mode}) the tenant differs from SPEC's model of what was pushed\n` +
          `users expected: ${show(wantUsers)}\nusers actual:   ${show(users)}\n` +
          `groups expected: ${show(wantGroups)}\ngroups actual:   ${show(groups)}`,
      );
    }
  }
}

function show(v: unknown): string {
  return JSON.stringify(v);
}

async function runHistory(h: History): Promise<void> {
  const integration = await createScimIntegration(db, config, { deprovision: h.mode, threshold: h.threshold });
  const client = new ScimClient(app, integration.integrationId, integration.token);
  const w = new World(h, client, integration.tenantId, integration.tenantSlug, `s${SEED}i${integration.integrationId.slice(0, 8)}.test`);
  for (const cmd of h.commands) {
    switch (cmd.k) {
      case 'createUser':
        await w.createUser(cmd);
        break;
      case 'putUser':
        await w.putUser(cmd);
        break;
      case 'patchUser':
        await w.patchUser(cmd);
        break;
      case 'deleteUser':
        await w.deleteUser(cmd);
        break;
      case 'createGroup':
        await w.createGroup(cmd);
        break;
      case 'putGroup':
        await w.putGroup(cmd);
        break;
      case 'patchGroup':
        await w.patchGroup(cmd);
        break;
      case 'deleteGroup':
        await w.deleteGroup(cmd);
        break;
      case 'lookup':
        await w.lookup(cmd);
        break;
      case 'run':
        await w.run();
        break;
      case 'cycle':
        await w.cycle(cmd);
        break;
    }
  }
  await w.checkReads();
  await w.run();
  // SPEC "Run": a targeted run plans for what it names exactly what a full run would; after
  // targeted runs, a full read of the whole scope finds nothing left to do.
  const full = await runNow({ db, config }, integration.integrationId, { dryRun: true });
  const left = Object.entries(full.counts ?? {}).filter(([, n]) => n > 0);
  if (full.status !== 'succeeded' || left.length > 0) w.fail(`after targeted runs, a full dry run still plans ${show(left)} (${full.status} ${full.error ?? ''})`);
}

describe('examples the property found, one request each', () => {
  it('a PATCH that adds a primary email demotes the old primary (RFC 7644 §3.5.2), and the tenant gets the new one', async () => {
    const t = await createScimIntegration(db, config);
    const c = new ScimClient(app, t.integrationId, t.token);
    const created = await c.send('POST', '/Users', { schemas: [USER_SCHEMA], userName: 'prim@ex.test', emails: [{ value: 'old@ex.test', type: 'work', primary: true }] });
    const id = json(created).id as string;
    const res = await c.send('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'emails', value: [{ value: 'new@ex.test', type: 'home', primary: true }] }] });
    if (![200, 204].includes(res.statusCode)) throw new Error(`PATCH -> ${res.statusCode} ${res.body}`);
    const emails = json(await c.send('GET', `/Users/${id}`)).emails as Email[];
    const primaries = emails.filter((e) => e.primary === true).map((e) => e.value);
    // "a PATCH operation that sets a value's "primary" sub-attribute to "true" SHALL cause the
    // server to automatically set "primary" to "false" for any other values in the array."
    if (show(primaries) !== show(['new@ex.test'])) throw new Error(`primary emails after the PATCH: ${show(primaries)}, expected ["new@ex.test"] (RFC 7644 §3.5.2)`);
    await runNow({ db, config }, t.integrationId);
    const [account] = await new DirectoryRepository(db).listTenantUsers(t.tenantId);
    if (account?.email !== 'new@ex.test') throw new Error(`tenant email ${show(account?.email)}, expected the primary one, "new@ex.test"`);
  });

  it('a PATCH that sets an enterprise attribute on a user without the extension lists the extension in "schemas" (RFC 7643 §3)', async () => {
    const t = await createScimIntegration(db, config);
    const c = new ScimClient(app, t.integrationId, t.token);
    const id = json(await c.send('POST', '/Users', { schemas: [USER_SCHEMA], userName: 'ext@ex.test' })).id as string;
    const res = await c.send('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: `${ENTERPRISE}:department`, value: 'R&D' }] });
    if (![200, 204].includes(res.statusCode)) throw new Error(`PATCH -> ${res.statusCode} ${res.body}`);
    const got = json(await c.send('GET', `/Users/${id}`));
    if ((got[ENTERPRISE] as Json | undefined)?.department !== 'R&D') throw new Error(`department not stored: ${show(got)}`);
    // "schemas": the URIs of the schemas "that define the attributes present in the current JSON structure".
    if (!(got.schemas as string[]).includes(ENTERPRISE)) throw new Error(`schemas ${show(got.schemas)} lack ${ENTERPRISE} though the resource carries its attributes (RFC 7643 §3)`);
  });
});

describe('a member in its User resource', () => {
  it('lists the groups it belongs to in "groups" (RFC 7643 §4.1.2; "returned": "default" in RFC 7643 §8.7.1 and in this endpoint\'s own /Schemas)', async () => {
    const t = await createScimIntegration(db, config);
    const c = new ScimClient(app, t.integrationId, t.token);
    const id = json(await c.send('POST', '/Users', { schemas: [USER_SCHEMA], userName: 'member@ex.test' })).id as string;
    const gid = json(await c.send('POST', '/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Members', members: [{ value: id }] })).id as string;
    const schemas = json(await c.send('GET', '/Schemas'));
    const userSchema = ((schemas.Resources ?? schemas) as Json[]).find((r) => r.id === USER_SCHEMA);
    const declared = ((userSchema?.attributes ?? []) as Json[]).find((a) => a.name === 'groups');
    const got = json(await c.send('GET', `/Users/${id}`));
    const values = ((got.groups ?? []) as Json[]).map((g) => g.value);
    if (show(values) !== show([gid])) throw new Error(`GET /Users/${id} groups ${show(got.groups)}, expected [{value: "${gid}"}]; /Schemas declares groups as ${show(declared)}`);
  });
});

describe('SCIM service provider against RFC 7643/7644 and SPEC (property)', () => {
  it(
    'predicts every status and resource of random SCIM pushes, and the tenant after each run',
    async () => {
      process.stdout.write(`scim property: seed ${SEED} (replay with DIRSYNC_SCIM_PROPERTY_SEED=${SEED})\n`);
      await fc.assert(
        fc.asyncProperty(history, async (h) => runHistory(h)),
        {
          seed: SEED,
          numRuns: RUNS,
          path: process.env.DIRSYNC_SCIM_PROPERTY_PATH,
          endOnFailure: process.env.DIRSYNC_SCIM_PROPERTY_SHRINK !== '1',
        },
      );
      process.stdout.write(`scim property exercised: ${JSON.stringify(Object.fromEntries([...tally].sort()))}\n`);
    },
    120_000,
  );
});
