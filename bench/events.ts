/**
 * Event figures (issue 15): how fast one endpoint is delivered to, and how soon
 * `dirsync events --follow` sees an event after it commits.
 *
 *  1. Delivery: N events (default 20,000) are written as applied change-log rows of one run in
 *     one transaction, then `deliverPending` sends them to a local receiver (node:http,
 *     keep-alive, answering 204 after checking each signature with `standardwebhooks`), one at
 *     a time in cursor order, as the worker does. Reports events/s and the receiver's count.
 *  2. Follow latency: `dirsync events --follow --json` runs in a child process; M times
 *     (default 20) one event is committed and the time until the follower prints it is taken.
 *     Reports p50/p95/max.
 *
 * Everything is on this machine; a database of its own is dropped at the end. Writes
 * bench-results/events.md and prints one JSON line.
 *
 *   npm run bench:events [-- --events 20000 --follows 20]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../src/config.js';
import { createDb, ensureDatabase, migrateToLatest } from '../src/db/database.js';
import { RunRepository } from '../src/db/run.repository.js';
import { TenantRepository } from '../src/db/tenant.repository.js';
import { deliverPending } from '../src/events/delivery.js';
import { EndpointService } from '../src/events/endpoint.service.js';
import { IntegrationService } from '../src/integrations/integration.service.js';
import { createLogger } from '../src/log.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '20000' }, follows: { type: 'string', default: '20' } } });
const EVENTS = Number(values.events);
const FOLLOWS = Number(values.follows);

const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
url.pathname = `/dirsync_bench_events_${randomBytes(3).toString('hex')}`;
process.env.DATABASE_URL = url.toString();
process.env.DIRSYNC_ENCRYPTION_KEY ??= randomBytes(32).toString('base64');
process.env.DIRSYNC_ALLOW_HTTP = 'true';
process.env.DIRSYNC_ALLOW_PRIVATE_NETWORK = 'true';
const log = (line: string) => process.stderr.write(`${line}\n`);
const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

async function main(): Promise<void> {
  await ensureDatabase(url.toString());
  const db = createDb(url.toString());
  await migrateToLatest(db);
  const config = loadConfig();
  try {
    const tenant = (await new TenantRepository(db).create('bench', 'bench'))!;
    const { integration } = await new IntegrationService(db, config).create({ tenant: 'bench', provider: 'scim' });
    const { run } = await new RunRepository(db).trigger(integration.id, 'manual', false);
    const insertEvents = (n: number, prefix: string) =>
      sql`
        insert into run_changes (run_id, tenant_id, integration_id, kind, external_id, subject, detail, state)
        select ${run.id}::uuid, ${tenant.id}::uuid, ${integration.id}::uuid, 'user.created', ${prefix} || i, ${prefix} || i || '@bench.test',
          jsonb_build_object('of', jsonb_build_object('account', jsonb_build_object('userName', ${prefix} || i || '@bench.test', 'active', true))), 'applied'
        from generate_series(1, ${n}) i`.execute(db);

    // 1. Delivery throughput.
    let received = 0;
    let verified = 0;
    let secret = '';
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received++;
        try {
          new Webhook(secret).verify(Buffer.concat(chunks).toString(), req.headers as Record<string, string>);
          verified++;
        } catch {
          // counted as not verified
        }
        res.writeHead(204).end();
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = await new EndpointService(db, config).create({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` });
    secret = endpoint.secret;
    await insertEvents(EVENTS, 'd');
    log(`delivering ${EVENTS} events to one endpoint`);
    const started = performance.now();
    let delivered = 0;
    const deps = { db, config, log: createLogger('warn') };
    while (delivered < EVENTS) {
      const outcome = await deliverPending(deps, endpoint.id, { maxEvents: EVENTS });
      delivered += outcome.delivered;
      if (outcome.kind !== 'idle' || outcome.delivered === 0) break;
    }
    const seconds = (performance.now() - started) / 1000;
    server.close();
    const perSecond = Math.round(delivered / seconds);
    log(`  ${delivered} delivered in ${seconds.toFixed(1)} s: ${perSecond}/s; receiver verified ${verified} of ${received}`);

    // 2. --follow latency.
    log(`--follow: ${FOLLOWS} single events`);
    const follower = spawn(process.execPath, [path.resolve('bin/dirsync.js'), 'events', '--follow', '--json', '--after', (await new EndpointService(db, config).show(endpoint.id)).cursor], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    const seen = new Map<string, number>();
    let buffer = '';
    follower.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const event = JSON.parse(buffer.slice(0, nl)) as { data: { account?: { userName?: string } } };
        buffer = buffer.slice(nl + 1);
        const name = event.data.account?.userName;
        if (name) seen.set(name, performance.now());
      }
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const latencies: number[] = [];
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    for (let i = 0; i < FOLLOWS; i++) {
      await insertEvents(1, `f${i}-`);
      const committed = performance.now();
      const name = `f${i}-1@bench.test`;
      const deadline = committed + 10_000;
      while (!seen.has(name) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      latencies.push((seen.get(name) ?? Number.POSITIVE_INFINITY) - committed);
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.end();
    follower.kill('SIGTERM');
    const sorted = [...latencies].sort((a, b) => a - b);
    const follow = { p50: Math.round(percentile(sorted, 50)), p95: Math.round(percentile(sorted, 95)), max: Math.round(sorted.at(-1)!) };
    log(`  seen after p50 ${follow.p50} ms, p95 ${follow.p95} ms, max ${follow.max} ms`);

    const md = [
      `# Events bench (${new Date().toISOString().slice(0, 10)}, Node ${process.version})`,
      '',
      '| measure | value | target |',
      '|---|---|---|',
      `| delivery to one local endpoint, ${delivered} events, signatures verified by the receiver | ${perSecond} events/s (${verified} of ${received} verified) | >= 500 events/s |`,
      `| \`dirsync events --follow\`: commit to printed, ${FOLLOWS} events | p50 ${follow.p50} ms, p95 ${follow.p95} ms, max ${follow.max} ms | within 1 s |`,
      '',
    ].join('\n');
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/events.md', md);
    process.stdout.write(`${md}\n${JSON.stringify({ bench: 'events', delivered, perSecond, verified, received, follow })}\n`);
  } finally {
    await db.destroy();
    const admin = new URL(url);
    admin.pathname = '/postgres';
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    await c.query(`drop database if exists "${url.pathname.slice(1)}" with (force)`);
    await c.end();
  }
}

main().catch((error: unknown) => {
  log(`bench failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
