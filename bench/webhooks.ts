/**
 * Webhook receiver figures: event-to-applied latency for a single-user change, and receiver
 * throughput and response times on loopback while runs are in progress. Drives `dirsync
 * server` and `dirsync worker` in child processes against real Postgres and Redis and a fake Okta.
 *
 *   npm run bench:webhooks [-- --events 40 --requests 4000 --concurrency 32]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { loadConfig } from '../src/config.js';
import { createDb, ensureDatabase, migrateToLatest } from '../src/db/database.js';
import { TenantRepository } from '../src/db/tenant.repository.js';
import { IntegrationService } from '../src/integrations/integration.service.js';
import { FakeOkta } from '../test/support/fake-okta.js';
import { oktaDelivery } from '../test/support/webhook-bodies.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '40' },
    requests: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '32' },
    users: { type: 'string', default: '200' },
  },
});
const EVENTS = Number(values.events);
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const USERS = Number(values.users);

const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
base.pathname = `/dirsync_bench_webhooks_${randomBytes(3).toString('hex')}`;
const env = {
  ...process.env,
  DATABASE_URL: base.toString(),
  DIRSYNC_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  DIRSYNC_ALLOW_HTTP: 'true',
  DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true',
  DIRSYNC_QUEUE: `bench-${randomBytes(3).toString('hex')}`,
  // Below Linux's ephemeral range (32768-60999): an outgoing connection never holds it.
  PORT: String(20_000 + Math.floor(Math.random() * 12_000)),
  LOG_LEVEL: 'warn',
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const config = loadConfig(env, '');
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl);
  const { error } = await migrateToLatest(db);
  if (error) throw error;

  const okta = await new FakeOkta().start();
  const app = okta.addApp('0oaBench');
  const ids: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const u = okta.addUser(`user${i}@bench.test`);
    app.users.add(u.id);
    ids.push(u.id);
  }
  await new TenantRepository(db).create('bench', 'bench');
  const service = new IntegrationService(db, config);
  const { integration, issued } = await service.create({ tenant: 'bench', provider: 'okta', baseUrl: okta.url, token: okta.token, oktaAppId: '0oaBench' });
  if (!('webhookSecret' in issued)) throw new Error('an okta integration is issued a webhook secret');
  const { webhookSecret } = issued;
  const url = `http://127.0.0.1:${env.PORT}/webhooks/${integration.id}`;

  // Receiver and worker in their own processes, as `dirsync server` and `dirsync worker` scale out.
  const children = ['server', 'worker'].map((command) =>
    spawn(process.execPath, [path.resolve('bin/dirsync.js'), command], { env, stdio: ['ignore', 'ignore', 'inherit'] }),
  );
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 10_000 });
  const post = (body: unknown) =>
    request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: webhookSecret, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${env.PORT}/healthz`)).ok) break;
      } catch {
        if (i > 200) throw new Error('dirsync server did not come up');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    // Initial sync, through a webhook like any other.
    await (await post(oktaDelivery([{ eventType: 'user.lifecycle.activate' }]))).body.dump();
    await waitFor(async () => (await countActive(db, integration.id)) === USERS);

    // 1. Event-to-applied latency: suspend or reactivate one user, deliver the event, poll Postgres.
    const latencies: number[] = [];
    for (let i = 0; i < EVENTS; i++) {
      const id = ids[i % ids.length]!;
      const suspend = Math.floor(i / ids.length) % 2 === 0;
      okta.updateUser(id, { status: suspend ? 'SUSPENDED' : 'ACTIVE' });
      const started = performance.now();
      const res = await post(oktaDelivery([{ eventType: suspend ? 'user.lifecycle.suspend' : 'user.lifecycle.unsuspend', target: [{ id, type: 'User' }] }]));
      if (res.statusCode !== 200) throw new Error(`delivery answered ${res.statusCode}`);
      await res.body.dump();
      await waitFor(async () => (await isActive(db, integration.id, id)) === !suspend, 2);
      latencies.push(performance.now() - started);
    }
    latencies.sort((a, b) => a - b);

    // 2. Receiver throughput: bursts of relevant deliveries from CONCURRENCY connections, first
    // while the worker runs the runs they trigger, then with the receiver alone on the machine.
    const busy = await burst(post);
    const worker = children[1]!;
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    const alone = await burst(post);
    const runs = await db.selectFrom('runs').select((eb) => eb.fn.countAll<string>().as('n')).where('integration_id', '=', integration.id).executeTakeFirstOrThrow();

    const fmt = (ms: number) => `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
    console.log(`webhook benchmark (${USERS} users in scope, node ${process.version})`);
    console.log(`event -> change visible in Postgres, ${EVENTS} single-user events: p50 ${fmt(percentile(latencies, 50))}, p95 ${fmt(percentile(latencies, 95))}, max ${fmt(latencies.at(-1)!)}`);
    const line = (label: string, b: Burst) =>
      `receiver ${label}: ${REQUESTS} deliveries from ${CONCURRENCY} connections in ${b.seconds.toFixed(2)} s = ${Math.round(REQUESTS / b.seconds)} req/s; ` +
      `response p50 ${fmt(percentile(b.times, 50))}, p95 ${fmt(percentile(b.times, 95))}, p99 ${fmt(percentile(b.times, 99))}; statuses ${JSON.stringify(b.statuses)}`;
    console.log(line('while runs go on', busy));
    console.log(line('alone', alone));
    console.log(`runs recorded in all: ${runs.n}`);
  } finally {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await agent.close();
    await okta.stop();
    await db.destroy();
    const admin = new URL(base.toString());
    admin.pathname = '/postgres';
    const cleanup = createDb(admin.toString(), { max: 1 });
    const { sql } = await import('kysely');
    await sql.raw(`drop database if exists "${base.pathname.slice(1)}" with (force)`).execute(cleanup);
    await cleanup.destroy();
  }
}

interface Burst {
  seconds: number;
  times: number[];
  statuses: Record<number, number>;
}

async function burst(post: (body: string) => ReturnType<typeof request>): Promise<Burst> {
  // Bodies are built beforehand so the generator spends its share of the two cores on sending.
  const bodies = Array.from({ length: REQUESTS }, () => JSON.stringify(oktaDelivery([{ eventType: 'user.account.update_profile' }])));
  const times: number[] = [];
  const statuses: Record<number, number> = {};
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (sent < REQUESTS) {
        const body = bodies[sent++]!;
        const t0 = performance.now();
        const res = await post(body);
        await res.body.dump();
        times.push(performance.now() - t0);
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { seconds: (performance.now() - started) / 1000, times, statuses };
}

async function waitFor(check: () => Promise<boolean>, everyMs = 20, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function countActive(db: ReturnType<typeof createDb>, integrationId: string): Promise<number> {
  const row = await db
    .selectFrom('accounts')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('integration_id', '=', integrationId)
    .where('active', '=', true)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function isActive(db: ReturnType<typeof createDb>, integrationId: string, externalId: string): Promise<boolean | undefined> {
  const row = await db.selectFrom('accounts').select('active').where('integration_id', '=', integrationId).where('external_id', '=', externalId).executeTakeFirst();
  return row?.active;
}

main().catch((error: unknown) => {
  console.error(error);
  // Exit even with connections still open: a benchmark that failed must not hang.
  process.exit(1);
});
