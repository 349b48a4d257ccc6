import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, createDb } from '../../src/db/database.js';
import { CliHarness, type RunSummaryJson } from '../support/cli.js';
import { testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { checkConvergence } from './support/convergence.js';
import { ROUNDS, type RunPhase, phaseNote, recordFigures, scenarioSeed } from './support/figures.js';
import { runPhase } from './support/phase.js';
import { populateOktaOrg } from './support/org.js';
import { DirsyncProcess } from '../support/processes.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { waitFor } from '../support/wait.js';

/**
 * Postgres goes away in the middle of a run, as in a restart: every connection of the worker
 * drops and new ones are refused for a while. The outage is aimed alternately at the run's
 * reads (at a random request of the run's, from the fake IdP) and at its apply (once a batch
 * has committed), and each round asserts it hit the run there. The run either fails or is
 * retried cleanly, and the next run converges with a change log that adds up.
 */

const APP = '0oaPg';
const USERS = 3_000;
const cli = new CliHarness();
const config = testConfig({ DATABASE_URL: cli.dbUrl, DIRSYNC_QUEUE: cli.queue });
const proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(cli.dbUrl).port || 5432) });
let okta: FakeOkta;
let db: Db;
let integrationId: string;
let worker: DirsyncProcess;

beforeAll(async () => {
  await proxy.start();
  okta = await new FakeOkta().start();
  okta.maxPageSize = 200;
  okta.responseDelayMs = 5;
  populateOktaOrg(okta, { appId: APP, users: USERS, groups: 20, domain: 'pg.test', memberEvery: 5 });
  await cli.createDatabase();
  await cli.json(['tenant', 'create', 'pg']);
  integrationId = (
    await cli.json<{ id: string }>([
      'integration', 'create', '--tenant', 'pg', '--provider', 'okta', '--base-url', okta.url, '--token', okta.token,
      '--okta-app-id', APP, '--threshold', '100',
    ])
  ).id;
  db = createDb(cli.dbUrl);
  // Only the worker goes through the proxy: the test's own view of Postgres stays up.
  const viaProxy = new URL(cli.dbUrl);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  worker = await new DirsyncProcess(cli, 'worker', { DATABASE_URL: viaProxy.toString() }).start();
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await proxy.stop();
  await db?.destroy();
  await okta?.stop();
  await cli.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runRow(id: string) {
  return db.selectFrom('runs').select(['status', 'error', 'stats']).where('id', '=', id).executeTakeFirstOrThrow();
}

describe('Postgres restarted during a run', () => {
  it(`the run fails or retries cleanly and the next converges (${ROUNDS} rounds)`, async () => {
    const seeds = scenarioSeed('Postgres restarted during a run');
    const outcomes: string[] = [];
    const phases: RunPhase[] = [];
    let runs = 0;
    let lost = 0;
    // IdP requests of the last clean run, to aim outages inside the read.
    let readRequests = 10;
    const recoveries: number[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const rnd = seeds.round(round);
        const label = seeds.label(round);
        if (round > 0) {
          const ids = [...okta.users.keys()];
          for (let i = 0; i < USERS / 4; i++) okta.updateUser(ids[rnd.int(0, ids.length - 1)]!, { profile: { title: `T${rnd.int(0, 1e6)}` } });
          for (let i = 0; i < 30; i++) okta.apps.get(APP)!.users.add(okta.addUser(`new${rnd.int(0, 1e9)}@pg.test`).id);
        }
        // Even rounds: the outage starts as the fake IdP receives the run's k-th request; odd rounds:
        // once the run's first batch has committed.
        const aim: RunPhase = round % 2 === 0 ? 'reading' : 'applying';
        const k = rnd.int(1, Math.max(1, Math.floor(readRequests * 0.6)));
        let seen = 0;
        let reachedK!: () => void;
        const atRequestK = new Promise<void>((resolve) => (reachedK = resolve));
        if (aim === 'reading') okta.fault = () => void (++seen === k && reachedK());
        const runId = (await cli.run(['sync', integrationId])).stdout.trim();
        if (aim === 'reading') await atRequestK;
        else await waitFor(`a batch of run ${runId} to commit`, async () => ((await runPhase(db, runId)) === 'reading' ? undefined : true), { timeoutMs: 120_000, intervalMs: 5 });
        okta.fault = undefined;
        const downMs = rnd.int(300, 3_000);
        const outageStarted = Date.now();
        const outage = proxy.outage(downMs);
        // The worker's connections are cut from here on: what Postgres shows is where the outage landed.
        const hit = await runPhase(db, runId);
        phases.push(hit);
        await outage;
        expect(hit, `${label}: the outage was aimed at the run's ${aim}`).toBe(aim);
        runs += 1;

        // The run ends one way or the other: retried to success, or failed with a reason.
        let row = await runRow(runId);
        const deadline = Date.now() + 120_000;
        while (row.status === 'running' || row.status === 'queued') {
          if (!worker.running) throw new Error(`the worker died:\n${worker.log.slice(-4000)}`);
          if (Date.now() > deadline) throw new Error(`run ${runId} did not settle: ${JSON.stringify(row)}\n${worker.log.slice(-4000)}`);
          await sleep(100);
          row = await runRow(runId);
        }
        recoveries.push(Date.now() - outageStarted);
        outcomes.push(row.status);
        expect(['succeeded', 'failed'], JSON.stringify(row)).toContain(row.status);

        const next = await cli.json<RunSummaryJson>(['sync', integrationId, '--wait']);
        runs += 1;
        expect(next.status, `${label}: ${next.error}`).toBe('succeeded');
        const stats = (await runRow(next.id)).stats as Record<string, number> | null;
        if (stats?.requests) readRequests = stats.requests;

        const report = await checkConvergence(db, config, integrationId);
        expect(report.mismatches, label).toEqual([]);
        expect(report.changeLogErrors).toEqual([]);
        expect(report.pendingChanges).toBe(0);
        lost += report.mismatches.length;
      }
    } finally {
      recordFigures({
        scenario: 'Postgres connections dropped and refused mid-run (restart)',
        rounds: ROUNDS,
        faults: ROUNDS,
        runs,
        changesLost: lost,
        wrongfulDeprovisions: 0,
        note: `seed ${seeds.seed}; ${phaseNote(phases)}; interrupted runs: ${outcomes.filter((o) => o === 'succeeded').length} retried to success, ${outcomes.filter((o) => o === 'failed').length} failed; interrupted run settled ${recoveries.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')} after the outage began`,
      });
    }
  }, 600_000);
});
