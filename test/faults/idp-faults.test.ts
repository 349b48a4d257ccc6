import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Db } from '../../src/db/database.js';
import { RunRepository, type RunSummary } from '../../src/db/run.repository.js';
import { reconcile } from '../../src/runs/reconcile.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeAuthentik } from '../support/fake-authentik.js';
import { FakeOkta } from '../support/fake-okta.js';
import type { FaultInjector, InjectedResponse } from '../support/faults.js';
import { createAuthentikIntegration, createOktaIntegration } from '../support/fixtures.js';
import { checkConvergence } from './support/convergence.js';
import { ROUNDS, type Rng, random, recordFigures, scenarioSeed } from './support/figures.js';

/**
 * The IdP misbehaves while dirsync reads it: 429 storms, 5xx, timeouts, connections dropped
 * before or in the middle of a page, malformed JSON. Transient faults must end in a run that
 * succeeds and converges; faults that outlast the retries must end in a failed run that says
 * why and changes nothing.
 */

const APP = '0oaFaults';
const REQUEST_TIMEOUT_MS = 300;
// Quick retries keep the suite short; the backoff itself is the connectors' own.
const SETTINGS = { retry: { retries: 4, minTimeoutMs: 5, maxTimeoutMs: 20 }, requestTimeoutMs: REQUEST_TIMEOUT_MS };

let db: Db;
let config: Config;
let drop: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop } = created);
  config = testConfig({ DATABASE_URL: created.url });
});
afterAll(async () => drop());

async function run(integrationId: string): Promise<RunSummary> {
  const { run } = await new RunRepository(db).trigger(integrationId, 'manual', false);
  const outcome = await reconcile({ db, config, log: silentLog, connectorSettings: SETTINGS }, run.id);
  if (outcome.kind !== 'finished') throw new Error(`run did not finish: ${JSON.stringify(outcome)}`);
  return outcome.run;
}

/** An Okta org of 240 users (a third assigned directly) and 12 groups (half assigned), in pages of 20. */
async function oktaOrg(): Promise<{ okta: FakeOkta; integrationId: string }> {
  const okta = await new FakeOkta().start();
  okta.maxPageSize = 20;
  const app = okta.addApp(APP);
  const domain = `${uniqueSlug('f')}.test`;
  const users = Array.from({ length: 240 }, (_, i) => okta.addUser(`user${i}@${domain}`));
  for (const [i, u] of users.entries()) if (i % 3 === 0) app.users.add(u.id);
  for (let j = 0; j < 12; j++) {
    const g = okta.addGroup(`Group ${j}`);
    for (const [i, u] of users.entries()) if ((i + j) % 4 === 0) okta.addMember(g.id, u.id);
    if (j % 2 === 0) app.groups.add(g.id);
  }
  const t = await createOktaIntegration(db, config, okta, { appId: APP, threshold: '100' });
  return { okta, integrationId: t.integrationId };
}

/** In-scope users who are active: the ones a run must never deprovision while they stay so. */
function activeInScope(okta: FakeOkta): Set<string> {
  const scope = okta.appUserScopes(APP);
  return new Set([...scope.keys()].filter((id) => !['SUSPENDED', 'DEPROVISIONED'].includes(okta.users.get(id)!.status)));
}

/** A few of every kind of change: profile edits, suspensions, new hires, unassignments, membership moves. */
function churn(okta: FakeOkta, rnd: Rng): void {
  const ids = [...okta.users.keys()];
  const pick = () => ids[rnd.int(0, ids.length - 1)]!;
  const groups = [...okta.groups.keys()];
  const app = okta.apps.get(APP)!;
  for (let i = 0; i < 5; i++) okta.updateUser(pick(), { profile: { firstName: `Renamed${rnd.int(0, 1e6)}` } });
  for (let i = 0; i < 2; i++) okta.updateUser(pick(), { status: 'SUSPENDED' });
  for (let i = 0; i < 3; i++) app.users.add(okta.addUser(`hire${rnd.int(0, 1e9)}@new.test`).id);
  for (let i = 0; i < 2; i++) app.users.delete([...app.users][rnd.int(0, app.users.size - 1)]!);
  for (let i = 0; i < 6; i++) {
    const g = groups[rnd.int(0, groups.length - 1)]!;
    if (rnd.next() < 0.5) okta.addMember(g, pick());
    else okta.removeMember(g, [...okta.members.get(g)!][0]!);
  }
}

const TRANSIENT: readonly ((rnd: Rng) => InjectedResponse)[] = [
  () => ({ status: 500, body: { errorCode: 'E0000009', errorSummary: 'Internal Server Error' } }),
  () => ({ status: 502, rawBody: '<html>Bad Gateway</html>', headers: { 'content-type': 'text/html' } }),
  () => ({ status: 503, body: { errorCode: 'E0000009', errorSummary: 'Service Unavailable' } }),
  () => ({ status: 200, delayMs: REQUEST_TIMEOUT_MS * 4, body: [] }),
  () => ({ status: 0, drop: true }),
  () => ({ cutMidBody: true }),
  () => ({ status: 200, rawBody: '[{"id": "00u', headers: { link: '' } }),
];

/**
 * Faults on a share of requests, never more than `maxInARow` times in a row for one URL (so
 * retries can get through); counts what it injected.
 */
function transientFaults(rnd: Rng, share: number, maxInARow = 2) {
  const streak = new Map<string, number>();
  let injected = 0;
  const fault: FaultInjector = ({ path, query }) => {
    const key = `${path}?${query.toString()}`;
    const n = streak.get(key) ?? 0;
    if (n >= maxInARow || rnd.next() >= share) {
      streak.set(key, 0);
      return undefined;
    }
    streak.set(key, n + 1);
    injected += 1;
    return TRANSIENT[rnd.int(0, TRANSIENT.length - 1)]!(rnd);
  };
  return { fault, injected: () => injected };
}

async function expectConverged(integrationId: string, kept: Set<string>, since?: Date) {
  const report = await checkConvergence(db, config, integrationId, kept, since);
  expect(report.mismatches).toEqual([]);
  expect(report.wrongfulDeprovisions).toEqual([]);
  expect(report.changeLogErrors).toEqual([]);
  expect(report.pendingChanges).toBe(0);
  return report;
}

/** Everything a failed run must leave untouched. */
async function tenantState(integrationId: string) {
  const [access, groups, members, locks] = await Promise.all([
    db.selectFrom('accounts').select(['external_id', 'active', 'email', 'given_name']).where('integration_id', '=', integrationId).orderBy('external_id').execute(),
    db.selectFrom('groups').select(['external_id', 'name']).where('integration_id', '=', integrationId).orderBy('external_id').execute(),
    db
      .selectFrom('group_memberships as m')
      .innerJoin('groups as g', 'g.id', 'm.group_id')
      .select(['g.external_id', 'm.account_id'])
      .where('g.integration_id', '=', integrationId)
      .orderBy('g.external_id')
      .orderBy('m.account_id')
      .execute(),
    db.selectFrom('locks').select(['user_id']).where('integration_id', '=', integrationId).orderBy('user_id').execute(),
  ]);
  return { access, groups, members, locks };
}

describe('Okta faults', () => {
  it(`transient 5xx, timeouts, dropped connections, cut and malformed pages end in a converged run (${ROUNDS} rounds)`, async () => {
    const { okta, integrationId } = await oktaOrg();
    const seeds = scenarioSeed('Okta transient faults');
    let faults = 0;
    let runs = 0;
    let lost = 0;
    let wrongful = 0;
    try {
      expect((await run(integrationId)).status).toBe('succeeded');
      for (let round = 0; round < ROUNDS; round++) {
        const rnd = seeds.round(round);
        const label = seeds.label(round);
        const since = new Date();
        const before = activeInScope(okta);
        churn(okta, rnd);
        const kept = new Set([...before].filter((id) => activeInScope(okta).has(id)));
        const injector = transientFaults(rnd, 0.3);
        okta.fault = injector.fault;
        const result = await run(integrationId);
        runs += 1;
        okta.fault = undefined;
        faults += injector.injected();
        expect(result.error, label).toBeNull();
        expect(result.status, label).toBe('succeeded');
        // The faults hit this run's reads (the only requests made while they were on), and were retried.
        expect(injector.injected(), label).toBeGreaterThan(0);
        expect(result.stats?.retries ?? 0, label).toBeGreaterThan(0);
        const report = await expectConverged(integrationId, kept, since);
        lost += report.mismatches.length;
        wrongful += report.wrongfulDeprovisions.length;
      }
    } finally {
      await okta.stop();
      recordFigures({ scenario: 'Okta: transient 500/502/503, timeouts, drops, cut and malformed pages', rounds: ROUNDS, faults, runs, changesLost: lost, wrongfulDeprovisions: wrongful, note: `seed ${seeds.seed}; every fault during a run's reads` });
    }
  }, 120_000);

  it('waits out a 429 storm until X-Rate-Limit-Reset instead of retrying in a loop', async () => {
    const { okta, integrationId } = await oktaOrg();
    try {
      expect((await run(integrationId)).status).toBe('succeeded');
      churn(okta, scenarioSeed('Okta 429 storm').round(0));
      // Every request for the next 2 seconds is refused, with the bucket's reset at the end of it.
      const stormEnds = Math.ceil((Date.now() + 2_000) / 1000);
      let refused = 0;
      okta.fault = () => {
        if (Date.now() / 1000 >= stormEnds) return undefined;
        refused += 1;
        return {
          status: 429,
          body: { errorCode: 'E0000047', errorSummary: 'API call exceeded rate limit due to too many requests.' },
          headers: { 'x-rate-limit-limit': '600', 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': String(stormEnds) },
        };
      };
      const started = Date.now();
      const result = await run(integrationId);
      okta.fault = undefined;
      expect(result.status).toBe('succeeded');
      expect(Date.now() - started).toBeGreaterThanOrEqual(stormEnds * 1000 - started - 50);
      // One refusal per request in flight (the connector reads up to 4 member lists at once), then a wait.
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(8);
      expect(result.stats?.rateLimited).toBe(refused);
      const report = await expectConverged(integrationId, new Set());
      recordFigures({ scenario: 'Okta: 429 storm with X-Rate-Limit-Reset', rounds: 1, faults: refused, runs: 1, changesLost: report.mismatches.length, wrongfulDeprovisions: 0, note: `${refused} requests refused, no retry before the reset` });
    } finally {
      await okta.stop();
    }
  }, 60_000);

  it('fails a run whose page keeps failing, says why, and changes nothing', async () => {
    const { okta, integrationId } = await oktaOrg();
    const failures: [string, InjectedResponse, RegExp][] = [
      ['500', { status: 500, body: { errorCode: 'E0000009', errorSummary: 'Internal Server Error' } }, /500/],
      ['503', { status: 503, body: {} }, /503/],
      ['timeout', { status: 200, delayMs: REQUEST_TIMEOUT_MS * 4, body: [] }, /time|abort/i],
      ['dropped connection', { drop: true }, /socket|ECONNRESET|hang up|closed|terminated/i],
      ['cut page', { cutMidBody: true }, /JSON|socket|ECONNRESET|terminated|premature|aborted/i],
      ['malformed JSON', { status: 200, rawBody: '{not json', headers: { link: '' } }, /JSON/i],
    ];
    let runs = 0;
    try {
      expect((await run(integrationId)).status).toBe('succeeded');
      // The IdP changed (someone suspended, someone unassigned), but no run can read it.
      churn(okta, random(7));
      const before = await tenantState(integrationId);
      for (const [label, response, reason] of failures) {
        // The second page of app users, every time it is asked for.
        okta.fault = ({ path, query }) => (path.endsWith('/users') && path.includes('/apps/') && query.has('after') ? response : undefined);
        const result = await run(integrationId);
        runs += 1;
        expect(result.status, label).toBe('failed');
        expect(result.error, label).toMatch(/apps\/0oaFaults\/users/);
        expect(result.error, label).toMatch(reason);
        expect(result.error, label).toMatch(/Nothing was changed\.$/);
        expect(result.counts?.usersDeprovisioned ?? 0, label).toBe(0);
        expect(await tenantState(integrationId), label).toEqual(before);
      }
      okta.fault = undefined;
      expect((await run(integrationId)).status).toBe('succeeded');
      const report = await expectConverged(integrationId, new Set());
      recordFigures({ scenario: 'Okta: retries exhausted (500, 503, timeout, drop, cut page, malformed JSON)', rounds: 1, faults: failures.length, runs: runs + 1, changesLost: report.mismatches.length, wrongfulDeprovisions: 0, note: 'each failed run changed nothing; the next clean run converged' });
    } finally {
      await okta.stop();
    }
  }, 120_000);
});

describe('authentik faults', () => {
  async function authentikOrg() {
    const ak = await new FakeAuthentik().start();
    ak.maxPageSize = 20;
    const users = Array.from({ length: 120 }, (_, i) => ak.addUser(`ak${i}-${uniqueSlug()}`));
    for (let j = 0; j < 6; j++) {
      const group = ak.addGroup(`AK Group ${j}`);
      for (const [i, u] of users.entries()) if ((i + j) % 3 === 0) ak.addMember(group.pk, u.pk);
    }
    const t = await createAuthentikIntegration(db, config, ak);
    return { ak, integrationId: t.integrationId, users };
  }

  it(`honours Retry-After, and rides out 5xx, drops, cut and malformed pages (${ROUNDS} rounds)`, async () => {
    const { ak, integrationId, users } = await authentikOrg();
    const seeds = scenarioSeed('authentik transient faults');
    let faults = 0;
    let lost = 0;
    let runs = 0;
    try {
      expect((await run(integrationId)).status).toBe('succeeded');
      for (let round = 0; round < ROUNDS; round++) {
        const rnd = seeds.round(round);
        const label = seeds.label(round);
        const target = users[rnd.int(0, users.length - 1)]!;
        ak.updateUser(target.pk, { name: `Renamed ${rnd.int(0, 1e6)}` });
        const injector = transientFaults(rnd, 0.3);
        let limited = 0;
        const started = Date.now();
        ak.fault = (request) => {
          // The round's first request is rate-limited with Retry-After: 1.
          if (limited === 0) {
            limited += 1;
            return { status: 429, body: { detail: 'Request was throttled.' }, headers: { 'retry-after': '1' } };
          }
          return injector.fault(request);
        };
        const result = await run(integrationId);
        runs += 1;
        ak.fault = undefined;
        faults += injector.injected() + limited;
        expect(result.status, `${label}: ${result.error}`).toBe('succeeded');
        expect(limited, label).toBe(1);
        expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
        const report = await expectConverged(integrationId, new Set(users.map((u) => String(u.pk))));
        lost += report.mismatches.length;
      }
    } finally {
      await ak.stop();
      recordFigures({ scenario: 'authentik: 429 with Retry-After, 5xx, timeouts, drops, cut and malformed pages', rounds: ROUNDS, faults, runs, changesLost: lost, wrongfulDeprovisions: 0, note: `seed ${seeds.seed}; every fault during a run's reads` });
    }
  }, 120_000);
});
