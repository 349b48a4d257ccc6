import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { buildServer } from '../../src/http/server.js';
import { IntegrationService } from '../../src/integrations/integration.service.js';
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
  const domain = `${uniqueSlug('ui')}.test`;
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
  await queue?.obliterate({ force: true });
  await queue?.close();
  disconnect?.();
  await okta?.stop();
  await dropDb?.();
});

describe('/admin in a real browser', () => {
  it('lets an admin sign in, find the failing integration, read a change log and approve a held run', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${base}/admin`);
    await expect.poll(() => page.url()).toContain('/admin/login');
    await page.getByLabel('Admin token').fill(ADMIN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/admin`);

    const rows = page.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    const umbrella = rows.filter({ hasText: 'umbrella' });
    expect(await umbrella.locator('.status').textContent()).toBe('failed');
    expect(await umbrella.locator('.error').textContent()).toMatch(/HTTP 401 E0000011.*Okta rejected the API token/);
    const initech = rows.filter({ hasText: 'initech' });
    expect(await initech.locator('.status').textContent()).toBe('held');
    await page.screenshot({ path: `${ARTIFACTS}/admin-integrations.png`, fullPage: true });

    await initech.locator('.status').click();
    await page.waitForURL(`${base}/admin/runs/${heldRunId}`);
    expect(await page.locator('.banner').textContent()).toMatch(/8 removals wait for approval/);
    const held = page.locator('tbody tr', { hasText: 'user.deprovisioned' });
    expect(await held.count()).toBe(8);
    expect(await held.first().locator('td').nth(2).textContent()).toBe('held');

    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(/\/admin\/runs\/[0-9a-f-]{36}$/);
    expect(page.url()).not.toContain(heldRunId);
    await expect
      .poll(async () => {
        await page.reload();
        return page.locator('.status').first().textContent();
      }, { timeout: 15_000 })
      .toBe('succeeded');
    expect(await page.locator('main').textContent()).toMatch(/8 users deprovisioned/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-approved-run.png`, fullPage: true });

    await page.goto(`${base}/admin/queues`);
    await expect.poll(() => page.locator('body').textContent(), { timeout: 10_000 }).toMatch(/test-[0-9a-f]{8}/);
    await page.screenshot({ path: `${ARTIFACTS}/admin-queues.png` });
  }, 60_000);
});
