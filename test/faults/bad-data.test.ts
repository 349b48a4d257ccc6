import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { type PlanCounts, zeroCounts } from '../../src/core/plan.js';
import type { Db } from '../../src/db/database.js';
import { DirectoryRepository } from '../../src/db/directory.repository.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { createTestDatabase, testConfig, uniqueSlug } from '../support/env.js';
import { type AkGroup, FakeAuthentik } from '../support/fake-authentik.js';
import { type FakeApp, type FakeGroup, FakeOkta } from '../support/fake-okta.js';
import { type TestIntegration, createAuthentikIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';
import { withoutIds } from '../support/builders.js';
import { checkConvergence } from './support/convergence.js';
import { recordFigures } from './support/figures.js';

/**
 * Bad IdP data, served in each IdP's real wire format so the real SDKs parse it: missing and
 * null fields, wrong types, very long and non-ASCII text, logins that differ only in case,
 * members outside the scope, and records repeated across pages. Every case is either handled
 * (and the test name says how) or, where the record cannot be taken as it is, skipped as SPEC's
 * per-record isolation says: the run succeeds with a warning naming the record and field,
 * nothing about that record changes (it is evidence that the record exists), and everything
 * else the run read applies. Every case ends with the convergence check once the data is fixed.
 */

const APP = '0oaBadData';
type Json = Record<string, unknown>;

let db: Db;
let config: Config;
let drop: () => Promise<void>;
const fakes: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.stop()));
});
afterAll(async () => drop());

const deps = () => ({ db, config });

// ---- text that stresses storage and comparison ---------------------------------------------

/** ZWJ sequences, skin tones, flags: several code points per visible character. */
const EMOJI = '👩🏽‍💻🏳️‍🌈🇯🇵🧑‍🤝‍🧑';
const CJK = '山田太郎中文字符漢字테스트';
/** Decomposed (NFD) letters: they must be kept as sent, never normalized. */
const COMBINING = 'Zoe\u0308 A\u030Angstro\u0308m Jose\u0301';
/** Hebrew and Arabic with explicit direction marks and embeddings. */
const RTL = '\u202Bשלום עולם\u202C مرحبا\u200F';

/**
 * `n` code points drawn from `alphabet` by a fixed pseudo-random sequence: no repeating
 * pattern, so Postgres cannot compress it away (a cycled pattern would fit any index).
 */
function long(alphabet: string, n = 10_000): string {
  const points = [...alphabet];
  let state = 0x9e3779b9;
  return Array.from({ length: n }, (_, i) => {
    let c: string;
    // No space at either end: authentik's name is read trimmed.
    do {
      state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
      c = points[(state >>> 8) % points.length]!;
    } while ((i === 0 || i === n - 1) && c.trim() === '');
    return c;
  }).join('');
}

// ---- what a run may not touch, and the figures ----------------------------------------------

interface Tally {
  faults: number;
  changesLost: number;
  wrongfulDeprovisions: number;
  readonly integrations: string[];
}

const newTally = (): Tally => ({ faults: 0, changesLost: 0, wrongfulDeprovisions: 0, integrations: [] });

async function record(scenario: string, tally: Tally): Promise<void> {
  const runs = tally.integrations.length
    ? Number((await db.selectFrom('runs').select((eb) => eb.fn.countAll<string>().as('n')).where('integration_id', 'in', tally.integrations).executeTakeFirstOrThrow()).n)
    : 0;
  recordFigures({ scenario, rounds: 1, faults: tally.faults, runs, changesLost: tally.changesLost, wrongfulDeprovisions: tally.wrongfulDeprovisions });
}

/** What a run could change for the tenant: users with their access and groups, groups with their members, locks. */
async function tenantState(t: TestIntegration) {
  const directory = new DirectoryRepository(db);
  const locks = await db.selectFrom('locks').select(['external_id', 'reason']).where('tenant_id', '=', t.tenantId).orderBy('external_id').execute();
  return { users: await directory.listTenantUsers(t.tenantId), groups: await directory.listTenantGroups(t.tenantId), locks };
}

async function deprovisions(t: TestIntegration): Promise<string[]> {
  const rows = await db
    .selectFrom('run_changes as c')
    .innerJoin('runs as r', 'r.id', 'c.run_id')
    .select('c.external_id')
    .where('r.integration_id', '=', t.integrationId)
    .where('c.kind', '=', 'user.deprovisioned')
    .where('c.state', '=', 'applied')
    .execute();
  return rows.map((r) => r.external_id);
}

/** One warning a run must carry (SPEC, run summary `warnings`): the skipped record's IdP id and the sentence naming it and why. */
interface Warned {
  /** The IdP id, or a matcher where the id itself cannot be read as it is. */
  readonly externalId: unknown;
  readonly reason: RegExp;
}

interface Skipped {
  /** One per skipped record, in the order of their ids. */
  readonly warnings: Warned[];
  /** Accounts of skipped users, by their userName before the run: each stays exactly as it was (fields, active, lock, groups). */
  readonly users?: string[];
  /** Skipped groups, by their name before the run: each stays exactly as it was, members included. */
  readonly groups?: string[];
  /** IdP ids no applied change of the run may name, and whose locks stay as they were (default: the warnings' ids). */
  readonly ids?: string[];
  /** What the first run applies: every other change it read. The second run applies nothing. */
  readonly counts?: Partial<PlanCounts>;
  /** `held` when the skipped record makes other users' absence doubtful (an id that cannot be read), with why. */
  readonly held?: RegExp;
}

const byExternalId = <T extends { externalId: unknown }>(rows: readonly T[]): T[] =>
  [...rows].sort((a, b) => (String(a.externalId) < String(b.externalId) ? -1 : String(a.externalId) > String(b.externalId) ? 1 : 0));

/**
 * SPEC, Safety, per-record isolation, with the bad data in place for two runs. Each run
 * succeeds with a warning naming each skipped record and why; nothing about a skipped record
 * changes (not created if new, not updated, not deprovisioned, memberships and lock as they
 * were; no applied change names it); everything else the run read is applied (`counts`, in
 * the first run); the second run changes nothing more and warns again.
 */
async function expectSkipped(tally: Tally, t: TestIntegration, skipped: Skipped): Promise<RunSummary[]> {
  const ids = new Set(skipped.ids ?? skipped.warnings.map((w) => w.externalId).filter((id): id is string => typeof id === 'string'));
  const summaries: RunSummary[] = [];
  for (const counts of [{ ...zeroCounts(), ...skipped.counts }, zeroCounts()]) {
    const before = await tenantState(t);
    const run = await runNow(deps(), t.integrationId);
    summaries.push(run);
    const touched = (await new RunRepository(db).listChanges(run.id)).filter((c) => c.state === 'applied' && ids.has(c.externalId ?? ''));
    tally.wrongfulDeprovisions += touched.filter((c) => c.kind === 'user.deprovisioned').length;
    expect(run.error).toBeNull();
    expect(run.status).toBe(skipped.held ? 'held' : 'succeeded');
    if (skipped.held) expect(run.heldReason).toMatch(skipped.held);
    expect(byExternalId(run.warnings)).toEqual(
      skipped.warnings.map((w) => ({ externalId: w.externalId, subject: expect.any(String), reason: expect.stringMatching(w.reason) })),
    );
    expect(run.counts).toEqual(counts);
    expect(touched).toEqual([]);
    const after = await tenantState(t);
    for (const userName of skipped.users ?? []) {
      const was = before.users.find((u) => u.userName === userName);
      expect(was, `${userName} has an account before the run`).toBeDefined();
      expect(after.users.find((u) => u.id === was!.id)).toEqual(was);
    }
    for (const name of skipped.groups ?? []) {
      const was = before.groups.find((g) => g.name === name);
      expect(was, `group ${name} exists before the run`).toBeDefined();
      expect(after.groups.find((g) => g.id === was!.id)).toEqual(was);
    }
    expect(after.locks.filter((l) => ids.has(l.external_id ?? ''))).toEqual(before.locks.filter((l) => ids.has(l.external_id ?? '')));
  }
  return summaries;
}

async function expectSucceeded(t: TestIntegration): Promise<RunSummary> {
  const run = await runNow(deps(), t.integrationId);
  expect(run.error).toBeNull();
  expect(run.status).toBe('succeeded');
  return run;
}

/**
 * The convergence check after a handled case; also that a second run plans nothing. Returns
 * that run. `oracleReads` lists, exactly, the differences expected where the check's SPEC
 * projection (test/support/spec-model.ts) reads a value differently from how this case
 * documents handling it; any other difference fails.
 */
async function expectConverged(tally: Tally, t: TestIntegration, keptActive: Iterable<string>, oracleReads: string[] = []): Promise<RunSummary> {
  const report = await checkConvergence(db, config, t.integrationId, keptActive);
  tally.changesLost += report.mismatches.filter((m) => !oracleReads.includes(m)).length;
  tally.wrongfulDeprovisions += report.wrongfulDeprovisions.length;
  expect(report.mismatches).toEqual(oracleReads);
  expect(report.wrongfulDeprovisions).toEqual([]);
  expect(report.changeLogErrors).toEqual([]);
  expect(report.pendingChanges).toBe(0);
  const run = await expectSucceeded(t);
  expect(run.counts).toEqual(zeroCounts());
  return run;
}

/** `text` as a regular expression that matches it literally. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The sentence naming two records whose logins normalize alike; each one's warning quotes one of the two logins. */
const clash = (a: string, b: string, logins: string[]) =>
  new RegExp(`^IdP users ${a} and ${b} have the same userName "(${logins.map(literally).join('|')})" \\(compared case-insensitively\\)`);

// ---- Okta -------------------------------------------------------------------------------------

interface OktaDirectory {
  okta: FakeOkta;
  app: FakeApp;
  domain: string;
  eng: FakeGroup;
  ops: FakeGroup;
  t: TestIntegration;
  /** Rewrites one user's raw JSON wherever Okta serves it (app users, group members, user listings). */
  patchUser(id: string, patch: ((json: Json) => void) | undefined): void;
}

/**
 * Ann (assigned directly), Bob (through Engineering) and Cat (through Ops), in pages of two.
 * Zed is in the org but not assigned.
 */
async function oktaDirectory(tally: Tally): Promise<OktaDirectory> {
  const okta = await new FakeOkta().start();
  fakes.push(okta);
  okta.maxPageSize = 2;
  const domain = `${uniqueSlug('bad')}.test`;
  const app = okta.addApp(APP);
  okta.addUser(`ann.lee@${domain}`, { id: '00uAnn' });
  okta.addUser(`bob.king@${domain}`, { id: '00uBob' });
  okta.addUser(`cat.ray@${domain}`, { id: '00uCat' });
  okta.addUser(`zed.out@${domain}`, { id: '00uZed' });
  const eng = okta.addGroup('Engineering', { id: '00gEng' });
  const ops = okta.addGroup('Ops', { id: '00gOps' });
  okta.addMember(eng.id, '00uAnn');
  okta.addMember(eng.id, '00uBob');
  okta.addMember(ops.id, '00uCat');
  app.users.add('00uAnn');
  app.groups.add(eng.id);
  app.groups.add(ops.id);
  const patches = new Map<string, (json: Json) => void>();
  const serialize = okta.userJson.bind(okta);
  okta.userJson = (u) => {
    const patch = patches.get(u.id);
    if (!patch) return serialize(u);
    // The serialized profile is the fake's own object: patch a copy.
    const json = structuredClone(serialize(u));
    patch(json);
    return json;
  };
  const t = await createOktaIntegration(db, config, okta, { appId: APP });
  tally.integrations.push(t.integrationId);
  return {
    okta,
    app,
    domain,
    eng,
    ops,
    t,
    patchUser: (id, patch) => (patch ? patches.set(id, patch) : patches.delete(id)),
  };
}

/** The same org read whole (no app): users go through the SDK's own models instead of `_embedded`. */
async function orgWide(tally: Tally, okta: FakeOkta): Promise<TestIntegration> {
  const t = await createOktaIntegration(db, config, okta);
  tally.integrations.push(t.integrationId);
  return t;
}

const profileOf = (json: Json) => json.profile as Json;

describe('bad Okta data', () => {
  const tally = newTally();
  afterAll(() => record('bad IdP data: Okta', tally));

  it('stores null or missing email, firstName, lastName and displayName as null; displayName falls back to "firstName lastName"', async () => {
    const d = await oktaDirectory(tally);
    const { okta, domain } = d;
    okta.updateUser('00uAnn', { profile: { email: null, displayName: null } });
    okta.updateUser('00uBob', { profile: { firstName: null, lastName: undefined, displayName: 'Bobby' } });
    // Cat's profile holds her login alone. (Set in the fake's own model, not patched on the wire:
    // the JSON Okta serves is the same, and the convergence check reads that model.)
    okta.users.get('00uCat')!.profile = { login: `cat.ray@${domain}` };
    tally.faults += 3;
    const wholeOrg = await orgWide(tally, okta);
    for (const t of [d.t, wholeOrg]) {
      await expectSucceeded(t);
      const users = withoutIds(await new DirectoryRepository(db).listTenantUsers(t.tenantId));
      expect(users.filter((u) => !u.userName.startsWith('zed'))).toEqual([
        { userName: `ann.lee@${domain}`, email: null, givenName: 'Ann', familyName: 'Lee', displayName: 'Ann Lee', active: true, locked: false, groups: ['Engineering'] },
        { userName: `bob.king@${domain}`, email: `bob.king@${domain}`, givenName: null, familyName: null, displayName: 'Bobby', active: true, locked: false, groups: ['Engineering'] },
        { userName: `cat.ray@${domain}`, email: null, givenName: null, familyName: null, displayName: null, active: true, locked: false, groups: ['Ops'] },
      ]);
      await expectConverged(tally, t, ['00uAnn', '00uBob', '00uCat']);
    }

    // A field the IdP empties is emptied locally too: the IdP is the source of what it holds.
    okta.updateUser('00uAnn', { profile: { email: `ann.lee@${domain}` } });
    await expectSucceeded(d.t);
    okta.updateUser('00uAnn', { profile: { email: null } });
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersUpdated: 1 });
    expect((await tenantState(d.t)).users[0]).toMatchObject({ userName: `ann.lee@${domain}`, email: null });
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat']);
  });

  it.each([
    ['null', (p: Json) => void (p.login = null), /Okta user 00uCat has no profile\.login/],
    ['missing', (p: Json) => void delete p.login, /Okta user 00uCat has no profile\.login/],
    ['blank', (p: Json) => void (p.login = '   '), /Okta user 00uCat has no profile\.login/],
    ['a number', (p: Json) => void (p.login = 12345), /Okta user 00uCat has a profile\.login that is a number \(12345\), not a string/],
    ['an object', (p: Json) => void (p.login = { value: 'cat' }), /Okta user 00uCat has a profile\.login that is an object, not a string/],
  ])('skips a user whose profile.login is %s, with a warning naming it, keeps that account as it was and applies the rest of the run, app-scoped or org-wide', async (_, patch, message) => {
    const d = await oktaDirectory(tally);
    const wholeOrg = await orgWide(tally, d.okta);
    await expectSucceeded(d.t);
    await expectSucceeded(wholeOrg);
    const [cat, bob] = [`cat.ray@${d.domain}`, `bob.king@${d.domain}`];
    d.patchUser('00uCat', (json) => patch(profileOf(json)));
    // Bob leaves Engineering in the same run: the bad record does not hold that back.
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    const warnings = [{ externalId: '00uCat', reason: message }];
    // App-scoped, Engineering was Bob's way in: he leaves the scope. Suspend mode keeps his
    // account, inactive and locked; his membership goes, as the IdP's does.
    await expectSkipped(tally, d.t, { warnings, users: [cat], counts: { usersDeprovisioned: 1, membershipsRemoved: 1 } });
    expect((await tenantState(d.t)).users.find((u) => u.userName === bob)).toMatchObject({ active: false, locked: true, groups: [] });
    // Org-wide, Bob is still in the org: he only leaves Engineering.
    await expectSkipped(tally, wholeOrg, { warnings, users: [cat], counts: { membershipsRemoved: 1 } });
    expect((await tenantState(wholeOrg)).users.find((u) => u.userName === bob)).toMatchObject({ active: true, locked: false, groups: [] });

    d.patchUser('00uCat', undefined);
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat'])).warnings).toEqual([]);
    expect((await expectConverged(tally, wholeOrg, ['00uAnn', '00uBob', '00uCat', '00uZed'])).warnings).toEqual([]);
  });

  it('skips a user with 50,000 profile attributes (over the 1,000 limit), with a warning naming it: not updated, not deprovisioned, the rest of the run applies; a new one is not created', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    const cat = `cat.ray@${d.domain}`;
    const huge = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`custom${i}`, `value ${i}`]));
    d.patchUser('00uCat', (json) => Object.assign(profileOf(json), huge, { displayName: 'Cat Changed' }));
    // Bob leaves Engineering (his way into the app) in the same run: the big record does not hold that back.
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    const warnings = [{ externalId: '00uCat', reason: /^IdP user 00uCat has 50,00\d attributes \(nested ones counted\); at most 1,000 are taken/ }];
    await expectSkipped(tally, d.t, { warnings, users: [cat], counts: { usersDeprovisioned: 1, membershipsRemoved: 1 } });
    expect((await tenantState(d.t)).users.find((u) => u.userName === cat)).toMatchObject({ active: true, locked: false, displayName: 'Cat Ray', groups: ['Ops'] });

    // A user the tenant has never seen is not created from an oversized record.
    const dan = d.okta.addUser(`dan.big@${d.domain}`, { id: '00uDan' });
    d.app.users.add(dan.id);
    d.patchUser('00uDan', (json) => Object.assign(profileOf(json), { bio: 'x'.repeat(70_000) }));
    const run = await runNow(deps(), d.t.integrationId);
    expect(run.status).toBe('succeeded');
    expect(byExternalId(run.warnings).map((w) => [w.externalId, w.reason.split(';')[0]])).toEqual([
      ['00uCat', expect.stringMatching(/^IdP user 00uCat has 50,00\d attributes \(nested ones counted\)$/)],
      ['00uDan', expect.stringMatching(/^IdP user 00uDan has 70,\d{3} bytes of attributes as JSON$/)],
    ]);
    expect((await tenantState(d.t)).users.map((u) => u.userName)).not.toContain(`dan.big@${d.domain}`);

    d.patchUser('00uCat', undefined);
    d.patchUser('00uDan', undefined);
    // Fixed in the IdP (Cat back as she was): Dan is created by the next run.
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersCreated: 1 });
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat', '00uDan'])).warnings).toEqual([]);
  });

  it('skips an assigned group without a profile.name, with a warning naming it: the group and its members stay as they were, the rest of the run applies', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    const name = d.ops.profile.name;
    (d.ops.profile as Json).name = null;
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: '00gOps', reason: /Okta group 00gOps has no profile\.name/ }],
      groups: ['Ops'],
      // Cat reaches the app through Ops: her account and her membership stay.
      users: [`cat.ray@${d.domain}`],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.ops.profile.name = name;
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat'])).warnings).toEqual([]);
  });

  it('skips a user whose status is not text, rather than reading it as ACTIVE: a suspended user stays suspended and locked, and the rest of the run applies', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    const bob = `bob.king@${d.domain}`;
    d.okta.updateUser('00uBob', { status: 'SUSPENDED' });
    await expectSucceeded(d.t);
    expect((await tenantState(d.t)).users[1]).toMatchObject({ userName: bob, active: false, locked: true });
    d.patchUser('00uBob', (json) => void (json.status = 0));
    // Cat leaves the scope in the same run (Ops, her way in, no longer lists her).
    d.okta.removeMember(d.ops.id, '00uCat');
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: '00uBob', reason: /Okta user 00uBob has a status that is a number \(0\), not a string/ }],
      users: [bob],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.patchUser('00uBob', (json) => void (json.status = { value: 'ACTIVE' }));
    tally.faults += 1;
    await expectSkipped(tally, d.t, { warnings: [{ externalId: '00uBob', reason: /Okta user 00uBob has a status that is an object, not a string/ }], users: [bob] });
    d.patchUser('00uBob', undefined);
    expect((await expectConverged(tally, d.t, ['00uAnn'])).warnings).toEqual([]);
  });

  it('turns numbers and booleans in name and email fields into their text', async () => {
    const d = await oktaDirectory(tally);
    d.okta.updateUser('00uCat', { profile: { firstName: 42, lastName: false, displayName: 3.5, email: 7 } });
    tally.faults += 1;
    await expectSucceeded(d.t);
    expect((await tenantState(d.t)).users[2]).toMatchObject({ givenName: '42', familyName: 'false', displayName: '3.5', email: '7' });
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat']);
  });

  it('stores 10,000-character and non-ASCII names, emails and group names exactly as sent', async () => {
    const d = await oktaDirectory(tally);
    const { okta, domain } = d;
    const given = long(`${CJK}${EMOJI}${COMBINING}`);
    const family = long(RTL);
    const email = `${long(`${CJK}${COMBINING}`)}@${domain}`;
    const login = `${CJK}.${EMOJI}.${COMBINING}.ÅSA.${RTL}@${domain}`;
    okta.updateUser('00uCat', { profile: { login, email, firstName: given, lastName: family, displayName: null } });
    okta.updateUser('00uBob', { profile: { displayName: `${EMOJI} ${RTL}` } });
    const groupName = long(`${EMOJI}${CJK}${RTL}`);
    d.ops.profile.name = groupName;
    d.ops.profile.description = long(COMBINING);
    tally.faults += 3;
    await expectSucceeded(d.t);
    const state = await tenantState(d.t);
    const cat = withoutIds(state.users).find((u) => u.userName === login);
    expect(cat).toEqual({ userName: login, email, givenName: given, familyName: family, displayName: `${given} ${family}`, active: true, locked: false, groups: [groupName] });
    expect(state.users.find((u) => u.userName === `bob.king@${domain}`)?.displayName).toBe(`${EMOJI} ${RTL}`);
    expect(state.groups.map((g) => g.name).sort()).toEqual(['Engineering', groupName].sort());
    const description = await db.selectFrom('groups').select('description').where('integration_id', '=', d.t.integrationId).where('external_id', '=', '00gOps').executeTakeFirstOrThrow();
    expect(description.description).toBe(long(COMBINING));
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat']);
  });

  it('skips a user whose login is too long to index (10,000 characters), with a warning naming it, and applies the rest of the run', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    const cat = `cat.ray@${d.domain}`;
    d.okta.updateUser('00uCat', { profile: { login: `${long(CJK)}@${d.domain}` } });
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: '00uCat', reason: /IdP user 00uCat has a userName of 100\d\d characters; at most 512/ }],
      users: [cat],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.okta.updateUser('00uCat', { profile: { login: cat } });
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat'])).warnings).toEqual([]);
  });

  it('skips a record with a NUL character or a lone surrogate in a value, which Postgres cannot store, with a warning naming the record and field; the rest of the run applies', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    const cat = `cat.ray@${d.domain}`;
    const skipsCat = (reason: RegExp, counts: Partial<PlanCounts> = {}) => expectSkipped(tally, d.t, { warnings: [{ externalId: '00uCat', reason }], users: [cat], counts });
    d.okta.updateUser('00uCat', { profile: { displayName: 'Cat\u0000Ray' } });
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    await skipsCat(/IdP user 00uCat has a NUL character in displayName, which Postgres cannot store: remove it in the IdP/, { usersDeprovisioned: 1, membershipsRemoved: 1 });
    // (An undefined profile value is left out of Okta's JSON: Cat's displayName is gone again, as at the start.)
    d.okta.updateUser('00uCat', { profile: { displayName: undefined, costCenter: { code: 'x\u0000' } } });
    tally.faults += 1;
    await skipsCat(/IdP user 00uCat has a NUL character in attributes\.costCenter\.code/);
    // A lone surrogate would be stored as U+FFFD: not as sent, and two such logins would merge.
    d.okta.updateUser('00uCat', { profile: { costCenter: undefined, login: `cat\ud800@${d.domain}` } });
    tally.faults += 1;
    await skipsCat(/IdP user 00uCat has a lone surrogate \(text that is not valid Unicode\) in userName/);
    // The message quotes the id itself: it is recorded with the NUL spelled out.
    //
    // SPEC is ambiguous here. Identity is by the IdP's id alone, and this record's id cannot be
    // read as it is, so 00uCat looks absent from a complete listing (a reading that would
    // deprovision Cat and drop her from Ops). But Safety lists "a missing id" among the records
    // that are skipped as evidence that the user exists, "never deprovisioned for being
    // unreadable", and this record is Cat's in every other field. Asserted: that safe reading.
    // The record is skipped with a warning and Cat's account (active, unlocked, in Ops) is left
    // exactly as it was: a record without a readable id could be any user missing from the read,
    // so their deprovisions are held for an admin rather than applied; the convergence check
    // below also counts any deprovision of 00uCat as wrongful. The warning's externalId is not
    // asserted beyond not holding the NUL itself, which Postgres cannot store.
    d.okta.updateUser('00uCat', { profile: { login: cat } });
    d.patchUser('00uCat', (json) => void (json.id = '00u\u0000Cat'));
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: expect.not.stringContaining('\u0000'), reason: /^IdP user 00u\\0Cat has a NUL character in externalId/ }],
      ids: ['00uCat'],
      users: [cat],
      // The first run holds them; the second keeps holding what the first run holds.
      held: /1 IdP record\(s\) without a readable id may be users missing from the read, so their deprovisions wait|2 removals are still waiting for approval of an earlier held run/,
    });
    d.patchUser('00uCat', undefined);

    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat'])).warnings).toEqual([]);
  });

  it('skips a group whose name holds a NUL character, with a warning naming it: the group and its members stay as they were, the rest of the run applies', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    d.ops.profile.name = 'Ops\u0000';
    d.okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: '00gOps', reason: /IdP group 00gOps has a NUL character in name/ }],
      groups: ['Ops'],
      users: [`cat.ray@${d.domain}`],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.ops.profile.name = 'Ops';
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat'])).warnings).toEqual([]);
  });

  it('skips both users when two logins differ only in case, each with a warning naming both: neither account is created, changed or deprovisioned, and the rest of the run applies', async () => {
    const d = await oktaDirectory(tally);
    const { okta, app, domain } = d;
    await expectSucceeded(d.t);
    const logins = [`ann.lee@${domain}`, `bob.king@${domain}`, `cat.ray@${domain}`];
    app.users.add(okta.addUser(`ANN.LEE@${domain}`, { id: '00uAnnUpper' }).id);
    okta.removeMember(d.eng.id, '00uBob');
    tally.faults += 1;
    const annClash = clash('00uAnn', '00uAnnUpper', [`ann.lee@${domain}`, `ANN.LEE@${domain}`]);
    // Ann's account stays as it was (active, in Engineering); ANN.LEE gets none. Bob's departure applies.
    await expectSkipped(tally, d.t, {
      warnings: [
        { externalId: '00uAnn', reason: annClash },
        { externalId: '00uAnnUpper', reason: annClash },
      ],
      users: [logins[0]!],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    expect((await tenantState(d.t)).users.map((u) => [u.userName, u.active])).toEqual([
      [logins[0], true],
      [logins[1], false],
      [logins[2], true],
    ]);

    // Case folds Postgres applies where JavaScript's toLowerCase differs: dotted capital I
    // (İ lowers to i, not i + combining dot) and a final capital sigma (Σ lowers to σ, not ς).
    okta.users.delete('00uAnnUpper');
    app.users.delete('00uAnnUpper');
    app.users.add(okta.addUser(`ivy@${domain}`, { id: '00uIvy' }).id);
    app.users.add(okta.addUser(`İVY@${domain}`, { id: '00uIvyDot' }).id);
    tally.faults += 1;
    const ivyClash = clash('00uIvy', '00uIvyDot', [`ivy@${domain}`, `İVY@${domain}`]);
    await expectSkipped(tally, d.t, {
      warnings: [
        { externalId: '00uIvy', reason: ivyClash },
        { externalId: '00uIvyDot', reason: ivyClash },
      ],
    });
    okta.updateUser('00uIvyDot', { profile: { login: `ΟΔΥΣ@${domain}` } });
    app.users.add(okta.addUser(`οδυσ@${domain}`, { id: '00uOdys' }).id);
    okta.users.delete('00uIvy');
    app.users.delete('00uIvy');
    tally.faults += 1;
    const odysClash = clash('00uIvyDot', '00uOdys', [`ΟΔΥΣ@${domain}`, `οδυσ@${domain}`]);
    await expectSkipped(tally, d.t, {
      warnings: [
        { externalId: '00uIvyDot', reason: odysClash },
        { externalId: '00uOdys', reason: odysClash },
      ],
    });
    expect((await tenantState(d.t)).users.map((u) => u.userName)).toEqual(logins);

    // Renamed in the IdP: both are readable now and get their accounts.
    okta.updateUser('00uOdys', { profile: { login: `odys@${domain}` } });
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersCreated: 2 });
    expect((await expectConverged(tally, d.t, ['00uAnn', '00uCat', '00uIvyDot', '00uOdys'])).warnings).toEqual([]);
    expect(await deprovisions(d.t)).toEqual(['00uBob']);
  });

  it('drops a group member the app user listing does not include, and does not create that user', async () => {
    const d = await oktaDirectory(tally);
    const { okta, domain } = d;
    okta.addUser(`dan.wu@${domain}`, { id: '00uDan' });
    okta.addMember(d.eng.id, '00uDan');
    // Okta lists Dan in Engineering, but the app's assignments do not (yet) include him.
    okta.rewriteList = (path, items) => (path === `/api/v1/apps/${APP}/users` ? items.filter((i) => i.id !== '00uDan') : items);
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toMatchObject({ usersCreated: 3, membershipsAdded: 3 });
    const state = await tenantState(d.t);
    expect(state.users.map((u) => u.userName)).not.toContain(`dan.wu@${domain}`);
    expect(state.groups.find((g) => g.name === 'Engineering')?.members).toEqual([`ann.lee@${domain}`, `bob.king@${domain}`]);
    // The convergence check's SPEC projection takes Dan as assigned through Engineering; Okta's
    // app listing, which this case follows while the two disagree, does not list him. Exactly
    // that reading differs, and nothing else may.
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat'], [`user dan.wu@${domain} (00uDan): no active account`]);
  });

  it('reads a user listed identically on two pages once', async () => {
    const d = await oktaDirectory(tally);
    // Pages of two: the repeat lands on the last page, the original on the first.
    d.okta.rewriteList = (path, items) => (path === `/api/v1/apps/${APP}/users` || path === `/api/v1/apps/${APP}/groups` ? [...items, structuredClone(items[0]!)] : items);
    tally.faults += 2;
    const run = await expectSucceeded(d.t);
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });
    expect(run.stats).toMatchObject({ idpUsers: 3, idpGroups: 2 });
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat']);
  });

  it('keeps the copy read last when a user appears on two pages with different data (the listing moved while it was read)', async () => {
    const d = await oktaDirectory(tally);
    await expectSucceeded(d.t);
    d.okta.updateUser('00uCat', { profile: { firstName: 'Catherine', displayName: 'Catherine Ray' } });
    // An older copy on the first page, the current one on the last.
    d.okta.rewriteList = (path, items) => {
      if (path !== `/api/v1/apps/${APP}/users`) return items;
      const stale = structuredClone(items.find((i) => i.id === '00uCat')!);
      Object.assign(profileOf((stale._embedded as Json).user as Json), { firstName: 'Cat', displayName: 'Cat Ray', login: 'someone.else@example.test' });
      return [stale, ...items];
    };
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersUpdated: 1 });
    expect((await tenantState(d.t)).users[2]).toMatchObject({ userName: `cat.ray@${d.domain}`, givenName: 'Catherine', displayName: 'Catherine Ray' });
    d.okta.rewriteList = undefined;
    await expectConverged(tally, d.t, ['00uAnn', '00uBob', '00uCat']);
  });
});

// ---- authentik ----------------------------------------------------------------------------------

interface AuthentikDirectory {
  ak: FakeAuthentik;
  domain: string;
  eng: AkGroup;
  ops: AkGroup;
  t: TestIntegration;
  /** Rewrites one user's raw JSON in the users listing. */
  patchUser(pk: number, patch: ((json: Json) => void) | undefined): void;
}

/** Ann (11, bound directly), Bob (12, through Engineering), Cat (13, through Ops), in pages of two; Zed (14) unbound. */
async function authentikDirectory(tally: Tally, mode: 'any' | 'all' = 'any'): Promise<AuthentikDirectory> {
  const ak = await new FakeAuthentik().start();
  fakes.push(ak);
  ak.maxPageSize = 2;
  const domain = `${uniqueSlug('bad')}.test`;
  ak.addUser(`ann.lee@${domain}`, { pk: 11 });
  ak.addUser(`bob.king@${domain}`, { pk: 12 });
  ak.addUser(`cat.ray@${domain}`, { pk: 13 });
  ak.addUser(`zed.out@${domain}`, { pk: 14 });
  const eng = ak.addGroup('Engineering');
  const ops = ak.addGroup('Ops');
  ak.addMember(eng.pk, 11);
  ak.addMember(eng.pk, 12);
  ak.addMember(ops.pk, 13);
  ak.addApp('crm', mode);
  if (mode === 'any') {
    ak.bind('crm', { user: 11 });
    ak.bind('crm', { group: ops.pk });
  }
  ak.bind('crm', { group: eng.pk });
  const patches = new Map<number, (json: Json) => void>();
  ak.rewriteList = (path, items) => {
    if (path !== '/api/v3/core/users/') return items;
    return items.map((item) => {
      const patch = patches.get(item.pk as number);
      if (!patch) return item;
      // Groups and attributes are the fake's own arrays and objects: patch a copy.
      const json = structuredClone(item);
      patch(json);
      return json;
    });
  };
  const t = await createAuthentikIntegration(db, config, ak, { app: 'crm' });
  tally.integrations.push(t.integrationId);
  return { ak, domain, eng, ops, t, patchUser: (pk, patch) => (patch ? patches.set(pk, patch) : patches.delete(pk)) };
}

describe('bad authentik data', () => {
  const tally = newTally();
  afterAll(() => record('bad IdP data: authentik', tally));

  it('stores a null or empty name and a null or missing email as null, taking given and family names from attributes when there', async () => {
    const d = await authentikDirectory(tally);
    const { domain } = d;
    // Set in the fake's own model, not patched on the wire: the JSON authentik serves is the
    // same, and the convergence check reads that model.
    const user = (pk: number) => d.ak.users.get(pk)! as unknown as Json;
    Object.assign(user(11), { name: null, email: null });
    Object.assign(user(12), { name: '', attributes: { given_name: 'Robert', sn: 'King' } });
    delete user(12).email;
    Object.assign(user(13), { name: '   ', email: '', attributes: null });
    tally.faults += 3;
    await expectSucceeded(d.t);
    expect(withoutIds((await tenantState(d.t)).users)).toEqual([
      { userName: `ann.lee@${domain}`, email: null, givenName: null, familyName: null, displayName: null, active: true, locked: false, groups: ['Engineering'] },
      { userName: `bob.king@${domain}`, email: null, givenName: 'Robert', familyName: 'King', displayName: null, active: true, locked: false, groups: ['Engineering'] },
      { userName: `cat.ray@${domain}`, email: null, givenName: null, familyName: null, displayName: null, active: true, locked: false, groups: ['Ops'] },
    ]);
    await expectConverged(tally, d.t, ['11', '12', '13']);
  });

  it.each([
    ['null', null, /authentik user 13 has no username/],
    ['empty', '', /authentik user 13 has no username/],
    ['a number', 12345, /authentik user 13 has a username that is a number \(12345\), not a string/],
  ])('skips a user whose username is %s, with a warning naming it, keeps that account as it was and applies the rest of the run', async (_, username, message) => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    d.patchUser(13, (json) => void (json.username = username));
    // Bob leaves Engineering, his way in, in the same run: he leaves the scope.
    d.ak.removeMember(d.eng.pk, 12);
    tally.faults += 1;
    await expectSkipped(tally, d.t, { warnings: [{ externalId: '13', reason: message }], users: [`cat.ray@${d.domain}`], counts: { usersDeprovisioned: 1, membershipsRemoved: 1 } });
    expect((await tenantState(d.t)).users.find((u) => u.userName === `bob.king@${d.domain}`)).toMatchObject({ active: false, locked: true, groups: [] });
    d.patchUser(13, undefined);
    expect((await expectConverged(tally, d.t, ['11', '13'])).warnings).toEqual([]);
  });

  it('skips a bound group with an empty name, with a warning naming it: the group and its members stay as they were, the rest of the run applies', async () => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    d.ops.name = '';
    d.ak.removeMember(d.eng.pk, 12);
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: d.ops.pk, reason: new RegExp(`authentik group ${d.ops.pk} has no name`) }],
      groups: ['Ops'],
      // Cat is admitted through Ops: her account and her membership stay.
      users: [`cat.ray@${d.domain}`],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.ops.name = 'Ops';
    expect((await expectConverged(tally, d.t, ['11', '13'])).warnings).toEqual([]);
  });

  it('reads is_active "False" as false and "True" as true (a non-empty string is truthy in JavaScript)', async () => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    d.ak.updateUser(12, { is_active: 'False' });
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersDeprovisioned: 1 });
    expect((await tenantState(d.t)).users[1]).toMatchObject({ userName: `bob.king@${d.domain}`, active: false, locked: true });
    await expectConverged(tally, d.t, ['11', '13']);

    d.ak.updateUser(12, { is_active: 'True' });
    d.ak.updateUser(13, { is_active: ' true ' });
    tally.faults += 2;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersReprovisioned: 1 });
    expect((await tenantState(d.t)).users.map((u) => u.active)).toEqual([true, true, true]);
    await expectConverged(tally, d.t, ['11', '13']);
  });

  it.each([
    ['"yes"', 'yes', /authentik user 12 has is_active "yes", which is not true or false/],
    ['1', 1, /authentik user 12 has is_active 1, which is not true or false/],
    ['"0"', '0', /authentik user 12 has is_active "0", which is not true or false/],
  ])('skips a user whose is_active is %s, with a warning naming it, and still deactivates another user in the same run', async (_, value, message) => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    const [bob, cat] = [`bob.king@${d.domain}`, `cat.ray@${d.domain}`];
    d.patchUser(12, (json) => void (json.is_active = value));
    d.ak.updateUser(13, { is_active: false });
    tally.faults += 1;
    // Cat is deprovisioned (suspend mode: inactive and locked); authentik still lists her in Ops,
    // so her membership stays. Bob, unreadable, stays as he was: active.
    await expectSkipped(tally, d.t, { warnings: [{ externalId: '12', reason: message }], users: [bob], counts: { usersDeprovisioned: 1 } });
    expect((await tenantState(d.t)).users.find((u) => u.userName === cat)).toMatchObject({ active: false, locked: true, groups: ['Ops'] });
    d.patchUser(12, undefined);
    expect((await expectConverged(tally, d.t, ['11', '12'])).warnings).toEqual([]);
  });

  it('turns a number given as name or email into its text', async () => {
    const d = await authentikDirectory(tally);
    d.patchUser(13, (json) => {
      json.name = 42;
      json.email = 7;
    });
    tally.faults += 1;
    await expectSucceeded(d.t);
    expect((await tenantState(d.t)).users[2]).toMatchObject({ email: '7', displayName: '42', givenName: '42', familyName: null });
    // The same in the fake's own model, which the convergence check reads.
    d.patchUser(13, undefined);
    d.ak.updateUser(13, { name: 42 as unknown as string, email: 7 as unknown as string });
    await expectConverged(tally, d.t, ['11', '12', '13']);
  });

  it('stores 10,000-character and non-ASCII names, emails, usernames and group names exactly as sent', async () => {
    const d = await authentikDirectory(tally);
    // No space in the family name: it is what follows the last space of `name`.
    const name = `${long(`${CJK}${EMOJI}${COMBINING}`)} ${long(RTL.replace(/ /g, ''))}`;
    const email = `${long(`${CJK}${COMBINING}`)}@${d.domain}`;
    const username = `${CJK}.${EMOJI}.${COMBINING}.ÅSA.${RTL}@${d.domain}`;
    d.ak.updateUser(13, { username, name, email });
    d.ak.updateUser(12, { attributes: { givenName: `${RTL} ${EMOJI}`, familyName: long(COMBINING) } });
    const groupName = long(`${EMOJI}${CJK}${RTL}`);
    d.ops.name = groupName;
    tally.faults += 3;
    await expectSucceeded(d.t);
    const state = await tenantState(d.t);
    expect(withoutIds(state.users).find((u) => u.userName === username)).toEqual({
      userName: username,
      email,
      givenName: long(`${CJK}${EMOJI}${COMBINING}`),
      familyName: long(RTL.replace(/ /g, '')),
      displayName: name,
      active: true,
      locked: false,
      groups: [groupName],
    });
    expect(state.users.find((u) => u.userName === `bob.king@${d.domain}`)).toMatchObject({ givenName: `${RTL} ${EMOJI}`, familyName: long(COMBINING) });
    expect(state.groups.map((g) => g.name).sort()).toEqual(['Engineering', groupName].sort());
    await expectConverged(tally, d.t, ['11', '12', '13']);
  });

  it('skips a user whose username is too long to index (10,000 characters), with a warning naming it, and applies the rest of the run', async () => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    const cat = `cat.ray@${d.domain}`;
    d.ak.updateUser(13, { username: long(`${CJK}${EMOJI}`) });
    d.ak.removeMember(d.eng.pk, 12);
    tally.faults += 1;
    await expectSkipped(tally, d.t, {
      warnings: [{ externalId: '13', reason: /IdP user 13 has a userName of 10000 characters; at most 512/ }],
      users: [cat],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    d.ak.updateUser(13, { username: cat });
    expect((await expectConverged(tally, d.t, ['11', '13'])).warnings).toEqual([]);
  });

  it('skips both users when two usernames differ only in case, each with a warning naming both: neither account is created, changed or deprovisioned, and the rest of the run applies', async () => {
    const d = await authentikDirectory(tally);
    const { ak, domain } = d;
    await expectSucceeded(d.t);
    const logins = [`ann.lee@${domain}`, `bob.king@${domain}`, `cat.ray@${domain}`];
    ak.addUser(`Ann.Lee@${domain}`, { pk: 21 });
    ak.bind('crm', { user: 21 });
    ak.removeMember(d.eng.pk, 12);
    tally.faults += 1;
    const annClash = clash('11', '21', [`ann.lee@${domain}`, `Ann.Lee@${domain}`]);
    // Ann's account stays as it was (active, in Engineering); Ann.Lee gets none. Bob's departure applies.
    await expectSkipped(tally, d.t, {
      warnings: [
        { externalId: '11', reason: annClash },
        { externalId: '21', reason: annClash },
      ],
      users: [logins[0]!],
      counts: { usersDeprovisioned: 1, membershipsRemoved: 1 },
    });
    expect((await tenantState(d.t)).users.map((u) => [u.userName, u.active])).toEqual([
      [logins[0], true],
      [logins[1], false],
      [logins[2], true],
    ]);

    ak.updateUser(21, { username: `ΟΔΥΣ@${domain}` });
    ak.addUser(`οδυσ@${domain}`, { pk: 22 });
    ak.bind('crm', { user: 22 });
    tally.faults += 1;
    const odysClash = clash('21', '22', [`ΟΔΥΣ@${domain}`, `οδυσ@${domain}`]);
    await expectSkipped(tally, d.t, {
      warnings: [
        { externalId: '21', reason: odysClash },
        { externalId: '22', reason: odysClash },
      ],
    });
    expect((await tenantState(d.t)).users.map((u) => u.userName)).toEqual(logins);

    // Renamed in the IdP: both are readable now and get their accounts.
    ak.updateUser(22, { username: `odys@${domain}` });
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersCreated: 2 });
    expect((await expectConverged(tally, d.t, ['11', '13', '21', '22'])).warnings).toEqual([]);
    expect(await deprovisions(d.t)).toEqual(['12']);
  });

  it('drops a member of a bound group whom the application does not admit, and does not create that user', async () => {
    // Engine mode "all": members of Engineering, except Bob (a negated user binding).
    const d = await authentikDirectory(tally, 'all');
    d.ak.bind('crm', { user: 12, negate: true });
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersCreated: 1, groupsCreated: 1, membershipsAdded: 1 });
    expect(await tenantState(d.t)).toMatchObject({
      users: [{ userName: `ann.lee@${d.domain}`, groups: ['Engineering'] }],
      groups: [{ name: 'Engineering', members: [`ann.lee@${d.domain}`] }],
    });
    await expectConverged(tally, d.t, ['11']);
  });

  it('reads a user or group listed identically on two pages once', async () => {
    const d = await authentikDirectory(tally);
    const patch = d.ak.rewriteList!;
    d.ak.rewriteList = (path, items) => {
      const list = patch(path, items);
      return [...list, structuredClone(list[0]!)];
    };
    tally.faults += 2;
    const run = await expectSucceeded(d.t);
    expect(run.counts).toEqual({ ...zeroCounts(), usersCreated: 3, groupsCreated: 2, membershipsAdded: 3 });
    expect(run.stats).toMatchObject({ idpUsers: 3, idpGroups: 2 });
    await expectConverged(tally, d.t, ['11', '12', '13']);
  });

  it('keeps the copy read last when a user appears on two pages with different data (the listing moved while it was read)', async () => {
    const d = await authentikDirectory(tally);
    await expectSucceeded(d.t);
    d.ak.updateUser(13, { name: 'Catherine Ray' });
    d.ak.addMember(d.eng.pk, 13);
    const patch = d.ak.rewriteList!;
    d.ak.rewriteList = (path, items) => {
      const list = patch(path, items);
      if (path !== '/api/v3/core/users/') return list;
      const stale = { ...structuredClone(list.find((u) => u.pk === 13)!), name: 'Cat Ray', groups: [d.ops.pk], is_active: false };
      return [stale, ...list];
    };
    tally.faults += 1;
    expect((await expectSucceeded(d.t)).counts).toEqual({ ...zeroCounts(), usersUpdated: 1, membershipsAdded: 1 });
    expect((await tenantState(d.t)).users[2]).toMatchObject({ displayName: 'Catherine Ray', active: true, groups: ['Engineering', 'Ops'] });
    d.ak.rewriteList = patch;
    await expectConverged(tally, d.t, ['11', '12', '13']);
  });
});
