import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { deliverPending, retryDelayMs } from '../../src/events/delivery.js';
import { EndpointService } from '../../src/events/endpoint.service.js';
import { type DirsyncEvent, formatCursor } from '../../src/events/event.js';
import { EventRepository } from '../../src/db/event.repository.js';
import { randomBytes } from 'node:crypto';
import { requireKeyring } from '../../src/config.js';
import { reencryptCredentials } from '../../src/integrations/reencrypt.js';
import { TEST_KEY, createTestDatabase, silentLog, testConfig } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { egressWithHosts } from '../support/egress.js';
import { egressRefusalMessage } from '../../src/egress.js';
import { type TestIntegration, createOktaIntegration, runNow } from '../support/fixtures.js';

/**
 * Deliveries to the host app (SPEC: signed per Standard Webhooks, retried with backoff for up
 * to 3 days, in cursor order per tenant, at least once). The receiver verifies every request
 * with the `standardwebhooks` library, as a host app would.
 */

let config: ReturnType<typeof testConfig>;
let db: Db;
let dropDb: () => Promise<void>;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ALLOW_HTTP: 'true' });
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
afterAll(async () => dropDb());

type Mode = 'ok' | 'fail' | 'slow';

/** A host app's receiver: records every request; answers 204, 500, or nothing for a while. */
async function receiver() {
  const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  let mode: Mode = 'ok';
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      if (mode === 'slow') setTimeout(() => res.writeHead(204).end(), 1_000);
      else if (mode === 'fail') res.writeHead(500, { 'content-type': 'text/plain' }).end(`boom ${'x'.repeat(5_000)}`);
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    set mode(m: Mode) {
      mode = m;
    },
    /** The events delivered with a 2xx, verified with `secrets` (any of them). */
    verified(secrets: string[]): DirsyncEvent[] {
      return received.map(({ headers, body }) => {
        const h = { 'webhook-id': String(headers['webhook-id']), 'webhook-timestamp': String(headers['webhook-timestamp']), 'webhook-signature': String(headers['webhook-signature']) };
        for (const secret of secrets) {
          const event = new Webhook(secret).verify(body, h) as DirsyncEvent;
          expect(h['webhook-id']).toBe(event.id);
        }
        return JSON.parse(body) as DirsyncEvent;
      });
    },
  };
}

async function org(users = 3) {
  const okta = await new FakeOkta().start();
  closers.push(() => okta.stop());
  const app = okta.addApp('0oaApp');
  const domain = `d${Math.random().toString(36).slice(2, 8)}.test`;
  for (let i = 0; i < users; i++) app.users.add(okta.addUser(`u${i}@${domain}`, { id: `00u${i}` }).id);
  const t = await createOktaIntegration(db, config, okta, { appId: '0oaApp' });
  return { okta, app, t };
}

const deps = () => ({ db, config, log: silentLog });
const service = () => new EndpointService(db, config);

async function endpointFor(url: string, t: TestIntegration, types?: string) {
  return service().create({ url, tenant: t.tenantSlug, ...(types && { types }) });
}

describe('event deliveries', () => {
  it('delivers every event after the endpoint was created, in cursor order, signed per Standard Webhooks', async () => {
    const { t } = await org();
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    expect(ep.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    await runNow({ db, config }, t.integrationId);
    expect(await deliverPending(deps(), ep.id)).toEqual({ kind: 'idle', delivered: 3 });
    const events = r.verified([ep.secret]);
    expect(events.map((e) => e.type)).toEqual(['user.created', 'user.created', 'user.created']);
    expect(events.map((e) => e.cursor)).toEqual([...events.map((e) => e.cursor)].sort((a, b) => (BigInt(a.split('.')[1]!) < BigInt(b.split('.')[1]!) ? -1 : 1)));
    expect(r.received[0]!.headers['content-type']).toBe('application/json');
    const listed = await service().deliveries(ep.id);
    expect(listed.map((d) => [d.status, d.attempts, d.lastStatusCode])).toEqual(Array(3).fill(['delivered', 1, 204]));
    expect((await service().show(ep.id)).cursor).toBe(events[2]!.cursor);
    // Caught up: nothing more is sent.
    expect(await deliverPending(deps(), ep.id)).toEqual({ kind: 'idle', delivered: 0 });
    expect(r.received).toHaveLength(3);
  });

  it('retries a failing receiver with growing delays, loses nothing and keeps the order once it answers again', async () => {
    const { t, okta, app } = await org(2);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, t.integrationId);
    r.mode = 'fail';
    const before = Date.now();
    const first = await deliverPending(deps(), ep.id);
    expect(first.kind).toBe('retry');
    if (first.kind !== 'retry') return;
    expect(first.at.getTime() - before).toBeGreaterThanOrEqual(retryDelayMs(1) - 50);
    // Not before it is due: nothing is sent.
    const early = await deliverPending(deps(), ep.id);
    expect(early).toEqual({ kind: 'retry', delivered: 0, at: first.at });
    expect(r.received).toHaveLength(1);
    const second = await deliverPending(deps(), ep.id, { ignoreBackoff: true });
    expect(second.kind === 'retry' && second.at.getTime() - Date.now()).toBeGreaterThan(retryDelayMs(1) + 1_000);
    const [failing] = await service().deliveries(ep.id);
    expect(failing).toMatchObject({ status: 'retrying', attempts: 2, lastStatusCode: 500, lastError: 'HTTP 500', nextAttemptAt: expect.any(String) });
    expect(failing!.responseExcerpt!.length).toBeLessThanOrEqual(200);
    expect((await service().show(ep.id)).failingSince).not.toBeNull();

    // More changes while it is down.
    app.users.add(okta.addUser('late@x.test', { id: '00uLate' }).id);
    await runNow({ db, config }, t.integrationId);
    r.mode = 'ok';
    r.received.length = 0;
    expect(await deliverPending(deps(), ep.id, { ignoreBackoff: true })).toEqual({ kind: 'idle', delivered: 3 });
    expect(r.verified([ep.secret]).map((e) => (e.data.account as { userName: string }).userName)).toEqual([expect.stringMatching(/^u0@/), expect.stringMatching(/^u1@/), 'late@x.test']);
    expect((await service().show(ep.id)).failingSince).toBeNull();
    expect((await service().deliveries(ep.id)).find((d) => d.eventId === failing!.eventId)).toMatchObject({ status: 'delivered', attempts: 3 });
  });

  it('counts a slow answer as a failure, and gives up after 3 days of failures (disabled, with the reason); replay brings it back', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, t.integrationId);
    r.mode = 'slow';
    const slow = await deliverPending(deps(), ep.id, { timeoutMs: 200 });
    expect(slow.kind).toBe('retry');
    expect((await service().deliveries(ep.id))[0]!.lastError).toBe('no answer within 0.2 s');

    r.mode = 'fail';
    await sql`update event_endpoints set failing_since = now() - interval '3 days 1 minute' where id = ${ep.id}::uuid`.execute(db);
    const gaveUp = await deliverPending(deps(), ep.id, { ignoreBackoff: true });
    expect(gaveUp.kind).toBe('disabled');
    const shown = await service().show(ep.id);
    expect(shown).toMatchObject({ enabled: false, disabledReason: expect.stringMatching(/^failed for more than 3 days .*HTTP 500.*dirsync endpoint replay/) });
    expect(await deliverPending(deps(), ep.id)).toEqual({ kind: 'idle', delivered: 0 });

    r.mode = 'ok';
    const replayed = await service().replay(ep.id, '0.0');
    expect(replayed.enabled).toBe(true);
    expect((await deliverPending(deps(), ep.id)).delivered).toBe(1);
  });

  it('signs with both secrets during a rotation grace, then with the new one only', async () => {
    const { t, okta, app } = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    const rotated = await service().rotateSecret(ep.id, '1h');
    expect(rotated.previousSecretValidUntil).not.toBeNull();
    await runNow({ db, config }, t.integrationId);
    await deliverPending(deps(), ep.id);
    expect(r.verified([ep.secret, rotated.secret])).toHaveLength(1);
    expect(String(r.received[0]!.headers['webhook-signature']).split(' ')).toHaveLength(2);

    const now = await service().rotateSecret(ep.id, '0');
    app.users.add(okta.addUser('next@x.test', { id: '00uNext' }).id);
    await runNow({ db, config }, t.integrationId);
    r.received.length = 0;
    await deliverPending(deps(), ep.id);
    expect(r.verified([now.secret])).toHaveLength(1);
    expect(() => r.verified([rotated.secret])).toThrow();
  });

  it('sends only the types and tenant asked for, and replays from a cursor', async () => {
    const { t, okta, app } = await org(2);
    const other = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t, 'user.deprovisioned');
    await runNow({ db, config }, t.integrationId);
    await runNow({ db, config }, other.t.integrationId);
    okta.updateUser('00u1', { status: 'SUSPENDED' });
    await runNow({ db, config }, t.integrationId);
    app.users.add(okta.addUser('z@x.test', { id: '00uZ' }).id);
    await deliverPending(deps(), ep.id);
    const events = r.verified([ep.secret]);
    expect(events.map((e) => [e.type, e.tenant])).toEqual([['user.deprovisioned', t.tenantSlug]]);

    await service().replay(ep.id, '0.0');
    r.received.length = 0;
    await deliverPending(deps(), ep.id);
    expect(r.verified([ep.secret]).map((e) => e.id)).toEqual(events.map((e) => e.id));
  });

  it("moves a tenant's endpoint past other tenants' events without sending them", async () => {
    const { t } = await org(1);
    const other = await org(3);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, other.t.integrationId);
    await deliverPending(deps(), ep.id);
    expect(r.received).toEqual([]);
    const shown = await service().show(ep.id);
    // At the feed's end: the next delivery does not read the other tenant's events again.
    expect(shown.cursor).toBe(formatCursor(await new EventRepository(db).end()));
    await runNow({ db, config }, t.integrationId);
    await deliverPending(deps(), ep.id);
    expect(r.verified([ep.secret]).map((e) => [e.type, e.tenant])).toEqual([['user.created', t.tenantSlug]]);
  });

  it('a replay sends at once: events after its cursor waiting for a retry are due now, those it skips are marked failed', async () => {
    const { t, okta, app } = await org(2);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, t.integrationId);
    r.mode = 'fail';
    const first = await deliverPending(deps(), ep.id);
    expect(first.kind).toBe('retry');
    const [failing] = await service().deliveries(ep.id);
    r.mode = 'ok';
    // Replay from where it stands: the failing event is due now, not at its backoff time.
    await service().replay(ep.id, (await service().show(ep.id)).cursor);
    expect((await service().deliveries(ep.id))[0]).toMatchObject({ eventId: failing!.eventId, status: 'retrying', nextAttemptAt: null });
    expect(await deliverPending(deps(), ep.id)).toEqual({ kind: 'idle', delivered: 2 });

    // A failing event the replay skips is not left "retrying".
    app.users.add(okta.addUser('late@x.test', { id: '00uLate' }).id);
    await runNow({ db, config }, t.integrationId);
    r.mode = 'fail';
    await deliverPending(deps(), ep.id);
    const [stuck] = await service().deliveries(ep.id);
    expect(stuck).toMatchObject({ status: 'retrying' });
    await service().replay(ep.id, stuck!.cursor);
    expect((await service().deliveries(ep.id)).find((d) => d.eventId === stuck!.eventId)).toMatchObject({
      status: 'failed',
      nextAttemptAt: null,
      lastError: expect.stringMatching(/^skipped by a replay after /),
    });
  });

  it('does not deliver over http:// in a process without DIRSYNC_ALLOW_HTTP, though the URL was stored by one with it', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, t.integrationId);
    const strict = { ...deps(), config: { ...config, allowHttp: false } };
    const outcome = await deliverPending(strict, ep.id);
    expect(outcome.kind).toBe('retry');
    expect(r.received).toEqual([]);
    expect((await service().deliveries(ep.id))[0]).toMatchObject({ status: 'retrying', lastStatusCode: null, lastError: expect.stringMatching(/plain http:\/\/.*DIRSYNC_ALLOW_HTTP=true/) });
  });

  it('does not deliver to a name resolving to a loopback, private or metadata address: refused when the socket would connect', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const port = new URL(r.url).port;
    const hosts = { 'hooks.loop.test': '127.0.0.1', 'hooks.ten.test': '10.20.30.40', 'hooks.metadata.test': '169.254.169.254' };
    const endpoints = await Promise.all(Object.keys(hosts).map(async (host) => [host, await endpointFor(`http://${host}:${port}/hooks`, t)] as const));
    await runNow({ db, config }, t.integrationId);
    for (const [host, ep] of endpoints) {
      const egress = egressWithHosts(hosts);
      expect(await deliverPending({ ...deps(), egress }, ep.id)).toMatchObject({ kind: 'retry', delivered: 0 });
      expect(egress.asked).toEqual([host]);
      expect((await service().deliveries(ep.id))[0]).toMatchObject({ status: 'retrying', lastStatusCode: null, lastError: egressRefusalMessage(host) });
    }
    expect(r.received).toEqual([]);
  });

  it('refuses 127.0.0.1 in a process without DIRSYNC_ALLOW_PRIVATE_NETWORK in the same words whether anything listens there, and delivers with it', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const closed = await receiver();
    const closedUrl = closed.url;
    await closers.pop()!();
    const open = await endpointFor(r.url, t);
    const shut = await endpointFor(closedUrl, t);
    await runNow({ db, config }, t.integrationId);
    const strict = { ...deps(), config: { ...config, allowPrivateNetwork: false } };
    for (const ep of [open, shut]) {
      expect((await deliverPending(strict, ep.id)).kind).toBe('retry');
      expect((await service().deliveries(ep.id))[0]).toMatchObject({ status: 'retrying', lastStatusCode: null, lastError: egressRefusalMessage('127.0.0.1') });
    }
    expect(r.received).toEqual([]);
    // The loopback receiver is reached where private networks are allowed (the tests' config).
    expect(await deliverPending(deps(), open.id, { ignoreBackoff: true })).toEqual({ kind: 'idle', delivered: 1 });
    expect(r.received).toHaveLength(1);
  });

  it('counts a signing secret this process cannot read as a failed attempt, shown with why, not a silent stall', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    await runNow({ db, config }, t.integrationId);
    const otherKey = { ...deps(), config: testConfig({ DATABASE_URL: config.databaseUrl, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ENCRYPTION_KEY: randomBytes(32).toString('base64') }) };
    const outcome = await deliverPending(otherKey, ep.id);
    expect(outcome.kind).toBe('retry');
    expect(r.received).toEqual([]);
    expect((await service().deliveries(ep.id))[0]).toMatchObject({ status: 'retrying', lastError: expect.stringMatching(/^the signing secret cannot be read .*rotate-secret .* --grace 0/) });
    expect((await service().show(ep.id)).failingSince).not.toBeNull();
  });

  it('refuses what cannot be an endpoint, in one sentence', async () => {
    const bad: Array<[Parameters<EndpointService['create']>[0], RegExp]> = [
      [{ url: 'ftp://x.test/h' }, /^--url must be an http\(s\) URL, not ftp:\/\/…$/],
      [{ url: 'not a url' }, /--url must be an absolute http\(s\) URL/],
      [{ url: 'https://u:p@x.test/h' }, /must not carry a user name or password/],
      [{ url: 'https://x.test/h', types: 'user.created,user.exploded' }, /user.exploded is not an event type/],
      [{ url: 'https://x.test/h', tenant: 'nope' }, /tenant "nope" does not exist/],
    ];
    for (const [input, message] of bad) await expect(service().create(input)).rejects.toThrow(message);
    await expect(new EndpointService(db, testConfig({ DIRSYNC_ALLOW_HTTP: 'false' })).create({ url: 'http://x.test/h' })).rejects.toThrow(/must be https:\/\//);
    await expect(service().show('nope')).rejects.toThrow(/endpoint nope does not exist/);
  });

  // Last in this file: it re-seals every integration of this database under a new key.
  it('reencrypt re-seals endpoint secrets under a new key, so deliveries still sign once the old key is gone', async () => {
    const { t } = await org(1);
    const r = await receiver();
    const ep = await endpointFor(r.url, t);
    const newKey = randomBytes(32).toString('base64');
    const rotating = testConfig({ DATABASE_URL: config.databaseUrl, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ENCRYPTION_KEY: newKey, DIRSYNC_ENCRYPTION_KEY_PREVIOUS: TEST_KEY });
    const report = await reencryptCredentials(db, requireKeyring(rotating));
    expect(report.failures).toEqual([]);
    const newOnly = testConfig({ DATABASE_URL: config.databaseUrl, DIRSYNC_ALLOW_HTTP: 'true', DIRSYNC_ENCRYPTION_KEY: newKey });
    await runNow({ db, config: newOnly }, t.integrationId);
    expect((await deliverPending({ db, config: newOnly, log: silentLog }, ep.id)).delivered).toBe(1);
    expect(r.verified([ep.secret])).toHaveLength(1);
  });
});
