import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness, type RunSummaryJson } from '../support/cli.js';
import { testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { checkConvergence } from './support/convergence.js';
import { ROUNDS, type Rng, type RunPhase, phaseNote, recordFigures, scenarioSeed } from './support/figures.js';
import { runPhase } from './support/phase.js';
import { populateOktaOrg } from './support/org.js';
import { DirsyncProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/**
 * `dirsync worker` is killed with SIGKILL at random points of a large run, during the reads
 * (at a random request of the run's, from the fake IdP) and during the apply (as soon as a
 * batch has committed, with more to come), and started again. Each round asserts the kill hit
 * the phase it was aimed at: a kill after the run ended would test nothing. The run it held is taken over or found abandoned, the next run
 * converges, nothing is duplicated, and never do two runs of one integration run at once.
 */

const APP = '0oaKill';
const USERS = 3_000;
const cli = new CliHarness();
const config = testConfig({ DATABASE_URL: cli.dbUrl, DIRSYNC_QUEUE: cli.queue });
let okta: FakeOkta;
let db: Db;
let integrationId: string;
let worker: DirsyncProcess;

beforeAll(async () => {
  okta = await new FakeOkta().start();
  // Pages of 200 and a little latency: a run reads for seconds, long enough to be killed in.
  okta.maxPageSize = 200;
  okta.responseDelayMs = 5;
  populateOktaOrg(okta, { appId: APP, users: USERS, groups: 30, domain: 'kill.test', memberEvery: 6, assignGroup: (j) => j % 3 !== 0 });
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'kill']);
  const created = await cli.json<{ id: string }>([
    'integration', 'create', '--tenant', 'kill', '--provider', 'okta', '--base-url', okta.url, '--token', okta.token,
    '--okta-app-id', APP, '--threshold', '100',
  ]);
  integrationId = created.id;
  db = createDb(cli.dbUrl);
  worker = await new DirsyncProcess(cli).start();
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await db?.destroy();
  await okta?.stop();
  await cli.stop();
});

/** In-scope users who are active. */
function activeInScope(): Set<string> {
  const scope = okta.appUserScopes(APP);
  return new Set([...scope.keys()].filter((id) => !['SUSPENDED', 'DEPROVISIONED'].includes(okta.users.get(id)!.status)));
}

/** Enough change that the apply takes a while too: a fifth of the users renamed, hires, suspensions, moves. */
function churn(rnd: Rng): void {
  const ids = [...okta.users.keys()];
  const pick = () => ids[rnd.int(0, ids.length - 1)]!;
  const app = okta.apps.get(APP)!;
  for (let i = 0; i < USERS / 5; i++) okta.updateUser(pick(), { profile: { title: `Title ${rnd.int(0, 1e6)}` } });
  for (let i = 0; i < 20; i++) okta.updateUser(pick(), { status: 'SUSPENDED' });
  for (let i = 0; i < 50; i++) app.users.add(okta.addUser(`hire${rnd.int(0, 1e9)}@kill.test`).id);
  const groups = [...okta.groups.keys()];
  for (let i = 0; i < 300; i++) okta.addMember(groups[rnd.int(0, groups.length - 1)]!, pick());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runRow(id: string) {
  return db.selectFrom('runs').select(['status', 'stats', 'error', 'started_at']).where('id', '=', id).executeTakeFirstOrThrow();
}

describe('worker killed with SIGKILL mid-run', () => {
  it(`converges after every kill, with no duplicates and never two runs at once (${ROUNDS} rounds)`, async () => {
    // Sampled throughout: how many runs of the integration are running at the same moment.
    let maxRunning = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const running = await db.selectFrom('runs').select(db.fn.countAll<string>().as('n')).where('integration_id', '=', integrationId).where('status', '=', 'running').executeTakeFirstOrThrow();
        maxRunning = Math.max(maxRunning, Number(running.n));
        await sleep(50);
      }
    })();

    const seeds = scenarioSeed('worker SIGKILLed mid-run');
    const phases: RunPhase[] = [];
    let lost = 0;
    let wrongful = 0;
    let runs = 0;
    // IdP requests of the last clean run, to aim read kills inside the read.
    let readRequests = 10;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const rnd = seeds.round(round);
        const label = seeds.label(round);
        const since = new Date();
        const before = activeInScope();
        if (round > 0) churn(rnd);
        const kept = new Set([...before].filter((id) => activeInScope().has(id)));
        // Even rounds kill while reading, odd rounds while applying.
        const aim: RunPhase = round % 2 === 0 ? 'reading' : 'applying';
        // Reading: the kill comes when the fake IdP receives the run's k-th request, well before its last.
        const k = rnd.int(1, Math.max(1, Math.floor(readRequests * 0.6)));
        let seen = 0;
        let reachedK!: () => void;
        const atRequestK = new Promise<void>((resolve) => (reachedK = resolve));
        if (aim === 'reading') okta.fault = () => void (++seen === k && reachedK());

        const queued = await cli.run(['sync', integrationId]);
        const runId = queued.stdout.trim();
        expect(runId, queued.stderr).toMatch(/^[0-9a-f-]{36}$/);
        if (aim === 'reading') {
          await atRequestK;
        } else {
          // Applying: as soon as the first batch of the run's changes has committed.
          await waitFor(`a batch of run ${runId} to commit`, async () => ((await runPhase(db, runId)) === 'reading' ? undefined : true), { timeoutMs: 120_000, intervalMs: 5 });
        }
        await worker.kill();
        okta.fault = undefined;
        runs += 1;
        // Nobody writes the run's row or change log after the kill, so this is where the kill landed.
        const hit = await runPhase(db, runId);
        phases.push(hit);
        expect(hit, `${label}: the kill was aimed at the run's ${aim}`).toBe(aim);

        worker = await new DirsyncProcess(cli).start();
        // The run the dead worker held is abandoned once its heartbeat is stale; the next run converges.
        const next = await cli.json<RunSummaryJson>(['sync', integrationId, '--wait']);
        runs += 1;
        expect(next.status, `${label}: ${next.error}`).toBe('succeeded');
        // The run the dead worker held: either its job, handed on once its lock expired, took it
        // over (SPEC: an interrupted run is taken over by the next worker), or the next run found it
        // abandoned first (its heartbeat stale) and failed it. Never still running, never half-counted.
        const held = await runRow(runId);
        if (held.status === 'failed') expect(held, label).toMatchObject({ error: expect.stringMatching(/abandoned|worker/i) });
        else expect(held.status, label).toBe('succeeded');
        const nextStats = (await runRow(next.id)).stats as Record<string, number> | null;
        if (nextStats?.requests) readRequests = nextStats.requests;

        const report = await checkConvergence(db, config, integrationId, kept, since);
        expect(report.mismatches, label).toEqual([]);
        expect(report.wrongfulDeprovisions).toEqual([]);
        expect(report.changeLogErrors).toEqual([]);
        expect(report.pendingChanges).toBe(0);
        lost += report.mismatches.length;
        wrongful += report.wrongfulDeprovisions.length;
      }
    } finally {
      sampling = false;
      await sampler;
      recordFigures({
        scenario: 'worker SIGKILLed mid-run, then restarted',
        rounds: ROUNDS,
        faults: ROUNDS,
        kills: ROUNDS,
        runs,
        changesLost: lost,
        wrongfulDeprovisions: wrongful,
        note: `seed ${seeds.seed}; ${phaseNote(phases)}; at most ${maxRunning} run(s) at once`,
      });
    }
    expect(maxRunning).toBeLessThanOrEqual(1);
    // No global user twice, no access twice: the convergence check compares counts too.
    const dupes = await db
      .selectFrom('accounts')
      .select(['external_id', db.fn.countAll<string>().as('n')])
      .where('integration_id', '=', integrationId)
      .groupBy('external_id')
      .having(db.fn.countAll(), '>', 1)
      .execute();
    expect(dupes).toEqual([]);
  }, 600_000);
});
