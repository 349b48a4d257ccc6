import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliHarness, type RunSummaryJson } from '../support/cli.js';
import { FakeOkta } from '../support/fake-okta.js';
import { oktaDelivery } from '../support/webhook-bodies.js';

/**
 * The test: a counter never decreases, across deleting an integration (and with it
 * its runs) and across restarting the process. Against `dirsync start`, where runs finish in
 * the worker thread and /metrics is served by the main thread.
 */
const cli = new CliHarness();
let okta: FakeOkta;

beforeAll(async () => {
  await cli.createDatabase();
  okta = await new FakeOkta().start();
  const app = okta.addApp('0oaMetrics');
  for (let i = 0; i < 3; i++) app.users.add(okta.addUser(`m${i}@metrics.test`).id);
}, 60_000);

afterAll(async () => {
  await cli.stop();
  await okta.stop();
});

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${cli.port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const RUNS = 'dirsync_runs_finished_total{status="succeeded",trigger="manual",dry_run="false"}';
const CREATED = 'dirsync_changes_applied_total{kind="usersCreated"}';
const HOOKS = 'dirsync_webhook_deliveries_total{source="okta",outcome="ignored"}';
const REQUESTS = 'dirsync_idp_requests_total{provider="okta",kind="request"}';

describe('/metrics counters (dirsync start)', () => {
  it('never decrease: across integration deletion and across a restart', async () => {
    // The tenant and integrations are made in this process, by the functions their commands
    // call (the commands are tested elsewhere; a process costs seconds on a busy machine).
    await cli.createTenant('metrics', 'Metrics Corp');
    const created = await Promise.all([0, 1].map(() => cli.createIntegration({ tenant: 'metrics', provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: '0oaMetrics' })));
    const ids = created.map((c) => c.id);
    const secrets = created.map((c) => c.webhookSecret);
    await cli.start();
    for (const run of await Promise.all(ids.map((id) => cli.json<RunSummaryJson>(['sync', id, '--wait'])))) expect(run).toMatchObject({ status: 'succeeded' });

    // A delivery counted in the server's memory, then kept in Postgres.
    const hook = await fetch(`http://127.0.0.1:${cli.port}/webhooks/${ids[1]}`, {
      method: 'POST',
      headers: { authorization: secrets[1]!, 'content-type': 'application/json' },
      body: JSON.stringify(oktaDelivery([{ eventType: 'user.session.start' }])),
    });
    expect(await hook.json()).toEqual({ outcome: 'ignored' });

    const synced = await scrape();
    expect(sample(synced, HOOKS)).toBe(1);
    expect(sample(synced, RUNS)).toBe(2);
    expect(sample(synced, CREATED)).toBe(3);
    expect(sample(synced, REQUESTS)).toBeGreaterThan(0);
    // Runs finish in the worker thread; their durations reach the main thread's /metrics.
    expect(sample(synced, 'dirsync_run_duration_seconds_count{status="succeeded"}')).toBe(2);
    expect(synced).toMatch(new RegExp(`^dirsync_integration_last_run_status\\{integration_id="${ids[0]}",tenant="metrics",provider="okta",status="succeeded"\\} 1$`, 'm'));

    expect((await cli.run(['integration', 'delete', ids[0]!, '--yes'])).code).toBe(0);
    const deleted = await scrape();
    expect(sample(deleted, RUNS)).toBe(2);
    expect(sample(deleted, HOOKS)).toBe(1);
    expect(sample(deleted, CREATED)).toBe(3);
    expect(sample(deleted, REQUESTS)).toBe(sample(synced, REQUESTS));
    // Gauges of current state do follow the deletion.
    expect(deleted).not.toContain(`integration_id="${ids[0]}"`);
    expect(deleted).toContain(`integration_id="${ids[1]}"`);

    await cli.restart();
    const restarted = await scrape();
    expect(sample(restarted, RUNS)).toBe(2);
    expect(sample(restarted, HOOKS)).toBe(1);
    expect(sample(restarted, CREATED)).toBe(3);
    expect(sample(restarted, REQUESTS)).toBe(sample(synced, REQUESTS));

    expect(await cli.json<RunSummaryJson>(['sync', ids[1]!, '--wait'])).toMatchObject({ status: 'succeeded' });
    expect(sample(await scrape(), RUNS)).toBe(3);
  }, 120_000);
});
