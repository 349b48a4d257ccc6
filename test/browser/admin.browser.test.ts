import { existsSync, mkdirSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type Browser, type Page, chromium } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { buildServer } from '../../src/http/server.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
import type { DirsyncEvent } from '../../src/events/event.js';
import { type DirsyncQueue, createQueue } from '../../src/queue/queue.js';
import { createRedis } from '../../src/queue/redis.js';
import { type DirsyncWorker, startWorker } from '../../src/queue/worker.js';
import { createTestDatabase, silentLog, testConfig, uniqueSlug } from '../support/env.js';
import { FakeOkta } from '../support/fake-okta.js';
import { createOktaIntegration, runNow } from '../support/fixtures.js';

// An admin's visit in a real headless Chromium (Debian's package; .ci/run installs it).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN = 'browser-admin-token-0123456789';
const ARTIFACTS = 'test-artifacts';

let db: Db;
let dropDb: () => Promise<void>;
let app: FastifyInstance;
let worker: DirsyncWorker;
let queue: DirsyncQueue;
let browser: Browser;
let okta: FakeOkta;
let oktaApp: ReturnType<FakeOkta['addApp']>;
let domain: string;
let deliveriesQueue: DirsyncQueue;
let receiver: Server;
let receiverUrl: string;
const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
let base: string;
let heldRunId: string;
let disconnect: () => void;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does), or set CHROMIUM_PATH`);
  const created = await createTestDatabase();
  ({ db, drop: dropDb } = created);
  const config = testConfig({ DATABASE_URL: created.url, DIRSYNC_ADMIN_TOKEN: ADMIN });
  const redis = createRedis(config.redisUrl, 'client');
  queue = createQueue(config.queueName, redis);
  disconnect = () => redis.disconnect();

  okta = await new FakeOkta().start();
  const app0 = okta.addApp('0oaUi');
  oktaApp = app0;
  domain = `${uniqueSlug('ui')}.test`;
  const ids = Array.from({ length: 10 }, (_, i) => okta.addUser(`person${i}@${domain}`).id);
  for (const id of ids) app0.users.add(id);
  const good = await createOktaIntegration(db, config, okta, { appId: '0oaUi', tenantSlug: 'initech' });
  await runNow({ db, config }, good.integrationId);
  for (const id of ids.slice(0, 8)) app0.users.delete(id);
  const held = await runNow({ db, config }, good.integrationId);
  expect(held.status).toBe('held');
  heldRunId = held.id;

  // A second tenant whose token Okta rejects: its last run failed, and says why.
  const bad = await createOktaIntegration(db, config, okta, { appId: '0oaUi', tenantSlug: 'umbrella' });
  await new IntegrationService(db, config).update(bad.integrationId, { token: 'revoked-token', verify: false });
  expect((await runNow({ db, config }, bad.integrationId)).status).toBe('failed');

  app = buildServer({ db, config, redis, queue, log: silentLog });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  worker = await startWorker({ db, config, log: silentLog, queue });
  deliveriesQueue = createQueue(`${config.queueName}-deliveries`, redis);
  // The host app's receiver, for the event endpoint made in the console.
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/dirsync-events`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await worker?.close();
  await app?.close();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  await queue?.obliterate({ force: true });
  await queue?.close();
  await deliveriesQueue?.obliterate({ force: true });
  await deliveriesQueue?.close();
  disconnect?.();
  await okta?.stop();
  await dropDb?.();
});

async function signIn(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/admin`);
  await expect.poll(() => page.url()).toContain('/admin/login');
  await page.getByLabel('Admin token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/admin`);
  return page;
}

/** What the receiver was sent, each verified by the standardwebhooks library with every one of `secrets`. */
function verified(secrets: string[]): DirsyncEvent[] {
  return received.map(({ headers, body }) => {
    const signed = { 'webhook-id': String(headers['webhook-id']), 'webhook-timestamp': String(headers['webhook-timestamp']), 'webhook-signature': String(headers['webhook-signature']) };
    for (const secret of secrets) new Webhook(secret).verify(body, signed);
    return JSON.parse(body) as DirsyncEvent;
  });
}

describe('/admin in a real browser', () => {
  it("lets an admin sign in, see each integration's health, find the held plan first and approve it after a confirmation", async () => {
    const page = await signIn();

    const rows = page.locator('#integrations tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    const umbrella = rows.filter({ hasText: 'umbrella' });
    expect(await umbrella.locator('.health').textContent()).toBe('invalid credentials');
    expect(await umbrella.locator('.status').textContent()).toBe('failed');
    expect(await umbrella.locator('.error').textContent()).toMatch(/HTTP 401 E0000011.*Okta rejected the API token/);
    const initech = rows.filter({ hasText: 'initech' });
    expect(await initech.locator('.health').textContent()).toBe('held: awaiting approval');
    expect(await initech.locator('td.num').first().textContent()).toBe('10');

    // Front and centre: the held plan, above the integrations, with the removals that wait.
    const waiting = page.getByRole('region', { name: 'Waiting for approval' });
    expect(await waiting.locator('h2').first().textContent()).toBe('1 plan waits for approval');
    // Compact there: what waits, by kind; the operations themselves on /admin/held.
    expect(await waiting.locator('.held-plan strong').first().textContent()).toBe('8 users deprovisioned');
    expect(await waiting.locator('tbody tr').count()).toBe(0);
    const top = await waiting.boundingBox();
    const table = await page.locator('#integrations').boundingBox();
    expect(top!.y).toBeLessThan(table!.y);
    await page.screenshot({ path: `${ARTIFACTS}/admin-integrations.png`, fullPage: true });

    // Approve asks first; cancelling changes nothing.
    await waiting.getByRole('button', { name: 'Approve' }).click();
    expect(await page.locator('.banner').textContent()).toMatch(/Apply the 8 held operations of this run\?/);
    expect(await page.locator('main').textContent()).toMatch(/8 removals wait for approval/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-approve-confirm.png`, fullPage: true });
    await page.getByRole('link', { name: 'Cancel' }).click();
    await page.waitForURL(`${base}/admin/runs/${heldRunId}`);
    expect(await page.locator('#run-status').textContent()).toBe('held');
    const held = page.locator('#changes tbody tr', { hasText: 'user.deprovisioned' });
    expect(await held.count()).toBe(8);
    expect(await held.first().locator('td').nth(2).textContent()).toBe('held');

    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('button', { name: 'Yes, approve' }).click();
    await page.waitForURL(/\/admin\/runs\/[0-9a-f-]{36}$/);
    expect(page.url()).not.toContain(heldRunId);
    // No reload: the page follows the run and shows the outcome when it ends.
    await expect.poll(() => page.locator('#run-status').textContent(), { timeout: 20_000 }).toBe('succeeded');
    await expect.poll(() => page.locator('main').textContent(), { timeout: 5_000 }).toMatch(/8 users deprovisioned/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-approved-run.png`, fullPage: true });

    await page.goto(`${base}/admin/held`);
    expect(await page.locator('main').textContent()).toContain('Nothing waits for approval.');
    await page.goto(`${base}/admin`);
    expect(await page.locator('#integrations tbody tr', { hasText: 'initech' }).locator('.health').textContent()).toBe('healthy');

    await page.goto(`${base}/admin/queues`);
    await expect.poll(() => page.locator('body').textContent(), { timeout: 10_000 }).toMatch(/test-[0-9a-f]{8}/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-queues.png` });
  }, 60_000);

  it('lets an admin add an event endpoint, copy its secret, watch a delivery, rotate, replay and delete it', async () => {
    const page = await signIn();
    await page.getByRole('link', { name: 'Event endpoints' }).click();
    await page.waitForURL(`${base}/admin/endpoints`);
    expect(await page.locator('h1').textContent()).toBe('Event endpoints');

    // A typo in the tenant: the service's refusal is on the page, the form keeps what was typed.
    await page.getByLabel('URL').fill(receiverUrl);
    await page.getByLabel('Tenant').fill('initek');
    await page.getByLabel('user.created').check();
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    expect(await page.getByRole('alert').textContent()).toBe('tenant "initek" does not exist: `dirsync tenant list` shows the tenants');
    expect(await page.getByLabel('URL').inputValue()).toBe(receiverUrl);
    expect(await page.getByLabel('user.created').isChecked()).toBe(true);

    await page.getByLabel('Tenant').fill('initech');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    expect(await page.getByRole('status').textContent()).toMatch(/Copy the signing secret now: it is shown only this once/);
    const secret = (await page.locator('#secret').textContent())!;
    expect(secret).toMatch(/^whsec_/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-endpoint-created.png`, fullPage: true });
    await page.getByRole('link', { name: 'All endpoints' }).click();
    const row = page.locator('tbody tr', { hasText: receiverUrl });
    expect(await row.locator('td').nth(1).textContent()).toBe('initech');
    expect(await row.locator('td').nth(2).textContent()).toBe('user.created');
    expect(await page.locator('main').textContent()).not.toContain(secret);
    await page.screenshot({ path: `${ARTIFACTS}/admin-endpoints.png`, fullPage: true });

    // A new person in the IdP, a sync from the console: the worker delivers the event.
    oktaApp.users.add(okta.addUser(`newcomer@${domain}`).id);
    await page.getByRole('link', { name: 'Integrations' }).click();
    await page.locator('#integrations tbody tr', { hasText: 'initech' }).getByRole('button', { name: 'Sync now' }).click();
    await page.getByRole('button', { name: 'Sync now' }).click();
    await page.waitForURL(/\/admin\/runs\//);
    await page.goto(`${base}/admin/endpoints`);
    await page.locator('tbody tr', { hasText: receiverUrl }).getByRole('link').click();
    const delivered = page.locator('#deliveries tbody tr', { hasText: 'user.created' });
    await expect
      .poll(async () => {
        await page.reload();
        return delivered.locator('.status').allTextContents();
      }, { timeout: 20_000 })
      .toEqual(['delivered']);
    const [event] = verified([secret]);
    expect(event).toMatchObject({ type: 'user.created', tenant: 'initech', data: { account: { userName: `newcomer@${domain}` } } });
    expect(await delivered.locator('td').first().textContent()).toBe(event!.cursor);
    expect(await delivered.locator('td').nth(4).textContent()).toBe('204');
    await page.screenshot({ path: `${ARTIFACTS}/admin-endpoint-deliveries.png`, fullPage: true });
    const endpointUrl = page.url();

    // Rotate: a confirmation first, then the new secret once; the old one keeps signing.
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    expect(await page.locator('.banner').textContent()).toMatch(/Issue a new signing secret .* The old one keeps signing for the grace period/);
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const rotated = (await page.locator('#secret').textContent())!;
    expect(rotated).not.toBe(secret);
    expect(await page.locator('main').textContent()).toMatch(/The old secret keeps working until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(the grace period\)/);
    // A reload of the page that showed it neither rotates again nor shows it again.
    await page.reload();
    expect(await page.locator('main').textContent()).toContain('shown once, when it was issued');
    expect(await page.locator('main').textContent()).not.toContain(rotated);

    // Replay everything: confirmed, the event comes again, signed by both secrets.
    await page.goto(endpointUrl);
    await page.getByLabel('Replay after cursor').fill('0.0');
    await page.getByRole('button', { name: 'Replay' }).click();
    expect(await page.locator('.banner').textContent()).toMatch(/every event after cursor 0\.0 again\?/);
    expect(received).toHaveLength(1);
    await page.getByRole('button', { name: 'Replay' }).click();
    expect(await page.getByRole('status').textContent()).toMatch(/will be sent every event after that cursor again/);
    // 0.0: every initech user.created from the first sync on, the newcomer's last, again.
    await expect.poll(() => received.filter((r) => r.headers['webhook-id'] === event!.id).length, { timeout: 20_000 }).toBe(2);
    const replayed = verified([secret]).slice(1);
    expect(replayed).toHaveLength(11);
    expect(replayed.every((e) => e.type === 'user.created' && e.tenant === 'initech')).toBe(true);
    received.shift(); // the first delivery, from before the rotation
    expect(verified([rotated])).toHaveLength(11);

    // Delete: confirmed, then gone from the list.
    await page.getByRole('button', { name: 'Delete' }).click();
    expect(await page.locator('.banner').textContent()).toMatch(/Delete the endpoint .* and its delivery history\?/);
    await page.getByRole('button', { name: 'Delete endpoint' }).click();
    await page.waitForURL(`${base}/admin/endpoints?done=deleted`);
    expect(await page.getByRole('status').textContent()).toBe('The endpoint was deleted, with its delivery history.');
    expect(await page.locator('tbody tr', { hasText: receiverUrl }).count()).toBe(0);
  }, 60_000);

  it("shows a running run's progress without a reload, and the runs chart with its axes and legend", async () => {
    const page = await signIn();
    // A slow IdP with one record a page: the read takes seconds, and the heartbeat reports it.
    for (let i = 0; i < 12; i++) oktaApp.users.add(okta.addUser(`slow${i}@${domain}`).id);
    okta.maxPageSize = 1;
    okta.responseDelayMs = 250;
    try {
      await page.locator('#integrations tbody tr', { hasText: 'initech' }).getByRole('button', { name: 'Sync now' }).click();
      expect(await page.locator('.banner').textContent()).toMatch(/Sync initech .* now\?/);
      await page.getByRole('button', { name: 'Sync now' }).click();
      await page.waitForURL(/\/admin\/runs\//);
      const text = page.locator('#progress-text');
      await expect.poll(() => text.textContent(), { timeout: 15_000 }).toMatch(/Reading the IdP: \d+ records in \d+ requests/);
      const first = Number((await text.textContent())!.match(/in (\d+) requests/)![1]);
      await expect.poll(async () => Number((await text.textContent())!.match(/in (\d+) requests/)?.[1] ?? 0), { timeout: 15_000 }).toBeGreaterThan(first);
      await page.screenshot({ path: `${ARTIFACTS}/admin-run-progress.png`, fullPage: true });
    } finally {
      okta.responseDelayMs = 0;
      okta.maxPageSize = undefined;
    }
    await expect.poll(() => page.locator('#run-status').textContent(), { timeout: 30_000 }).toBe('succeeded');
    expect(await page.locator('#changes').textContent()).toMatch(/slow0@/);

    await page.getByRole('link', { name: /initech/ }).click();
    await page.waitForURL(/\/admin\/integrations\//);
    // Chart.js drew on the canvas (served from node_modules; the CSP forbids anything else).
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { Chart?: { getChart(id: string): unknown } }).Chart?.getChart('runs-chart') !== undefined)).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}/admin-integration-runs-chart.png`, fullPage: true });
  }, 90_000);
});
