import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { type Config, loadConfig } from '../config.js';
import { type Db, createDb, ensureDatabase, migrateToLatest } from '../db/database.js';
import { RunRepository, type RunSummary } from '../db/run.repository.js';
import { EndpointRepository } from '../db/endpoint.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { IntegrationService } from '../integrations/integration.service.js';
import { createQueue, removeSchedule, syncSchedule } from '../queue/queue.js';
import { createRedis } from '../queue/redis.js';
import { waitForRunEnd } from '../runs/run-wait.js';
import { requestRun } from '../runs/trigger.js';
import { UserError } from '../errors.js';
import { describeCounts } from '../cli/output.js';
import { DEMO_APP_ID, DemoCompany, type DemoDirectory } from './company.js';
import { oktaEventHookDelivery } from './okta-event-hook.js';
import { OktaDirectoryServer } from './okta-directory.js';
import type { LoggedEvent } from './okta-system-log.js';

/** How often the demo looks for runs that ended, to say how they went. */
const TELL_EVERY_MS = 2_000;

/** How often the demo integration runs besides the event hooks' runs (SPEC: full runs are the proof). */
const SCHEDULE = '5m';

/** The demo's tenant: reused by every `dirsync demo`, so running it again makes no duplicates. */
export const DEMO_TENANT = 'demo';

export interface DemoOptions {
  /** Milliseconds between two rounds of changes in the demo company (a minute by default). */
  readonly tickMs: number;
  /** How many people the company starts with. */
  readonly people: number;
  /** Where the demo tells the user what happens (stdout in the CLI). */
  readonly say: (line: string) => void;
}

/** What a demo set up before serving: for the start-up message and the changes loop. */
interface DemoSetup {
  readonly integrationId: string;
  readonly webhookSecret: string;
  /** Whether an earlier demo's tenant was there (and was reset). */
  readonly reset: boolean;
  /** The event endpoints of the tenant that the reset kept. */
  readonly endpoints: number;
}

/**
 * `dirsync demo` (SPEC): an Okta org served in this process (spoken to through the official
 * Okta SDK as a real org would be), a `demo` tenant with an integration scoped to its app, the
 * HTTP server and worker as `dirsync start` runs them, a first sync, and then a company that
 * changes every `tickMs` and tells dirsync through Okta event hooks. Runs until `stop`
 * resolves (Ctrl-C in the CLI), then stops the changes, the server, the worker and the IdP.
 *
 * What it needs and does not find it makes up, and says so: an encryption key (saved to .env,
 * so later sessions read what this one stored), and for this process only an admin token (to
 * sign in to the console), DIRSYNC_ALLOW_HTTP (the demo IdP speaks plain http) and
 * DIRSYNC_ALLOW_PRIVATE_NETWORK (it listens on 127.0.0.1).
 */
export async function runDemo(options: DemoOptions, stop: Promise<string>): Promise<void> {
  const { say } = options;
  for (const note of fillDemoEnvironment(process.env)) say(note);
  const config = loadConfig();
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl, { max: 2 });
  const okta = await new OktaDirectoryServer().start();
  let timers: NodeJS.Timeout[] = [];
  try {
    const migrated = await migrateToLatest(db);
    if (migrated.error) throw migrated.error;
    okta.token = `demo-${randomBytes(12).toString('hex')}`;
    okta.keepRequests = 1_000;
    const company = new DemoCompany(directoryOf(okta, DEMO_APP_ID), { people: options.people });
    // The reset deletes what an earlier session left: not for a demo that cannot serve.
    await assertPortFree(config.host, config.port);
    const setup = await resetDemoTenant(db, config, okta);
    say(`demo IdP: an Okta org at ${okta.url} with ${company.census().ACTIVE} active people in 20 groups (app ${DEMO_APP_ID})`);
    const kept = setup.endpoints > 0 ? ` (its ${setup.endpoints === 1 ? 'event endpoint is' : `${setup.endpoints} event endpoints are`} kept)` : '';
    say(`${setup.reset ? 'reset' : 'created'} tenant "${DEMO_TENANT}"${kept}; its Okta integration is ${setup.integrationId}`);
    const { serveParts } = await import('../cli/serve.js');
    await serveParts({ http: true, worker: true }, stop, {
      ready: () => {
        void afterReady(db, config, setup, company, okta, options).then(
          (t) => (timers = t),
          (error: unknown) => say(`the demo could not start its first sync: ${(error as Error).message}`),
        );
      },
      afterHttp: async () => {
        for (const t of timers) clearInterval(t);
      },
    });
  } finally {
    for (const t of timers) clearInterval(t);
    await okta.stop();
    await db.destroy();
  }
}

/**
 * Resolves once a listener could bind `host:port` (and let it go); rejects with the listen
 * error (EADDRINUSE, with its `port`, which the CLI says in one sentence) when it could not.
 */
export function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * Sets, in `env`, what the demo needs and the configuration does not give (the .env file
 * included): the encryption key is also appended to `envFile`, the rest is for this process
 * only. Returns a line for each, to tell the user.
 */
export function fillDemoEnvironment(env: NodeJS.ProcessEnv, envFile = '.env'): string[] {
  const config = loadConfig(env, envFile);
  const notes: string[] = [];
  if (!config.encryptionKey) {
    // Kept in .env: what this session seals (an endpoint's secret, say) stays readable by the
    // next demo and by `dirsync start`, which read the same file.
    env.DIRSYNC_ENCRYPTION_KEY = randomBytes(32).toString('base64');
    appendFileSync(envFile, `${existsSync(envFile) && !readFileSync(envFile, 'utf8').endsWith('\n') ? '\n' : ''}DIRSYNC_ENCRYPTION_KEY=${env.DIRSYNC_ENCRYPTION_KEY}\n`, { mode: 0o600 });
    notes.push(`no DIRSYNC_ENCRYPTION_KEY set: made one for stored credentials and saved it to ${envFile} (keep it; dirsync start reads it too)`);
  }
  if (!config.adminToken) {
    env.DIRSYNC_ADMIN_TOKEN = randomBytes(18).toString('base64url');
    notes.push(`no DIRSYNC_ADMIN_TOKEN set: this session's admin token is ${env.DIRSYNC_ADMIN_TOKEN}`);
  }
  // The demo says what happens in sentences; the JSON log shows only errors.
  if (!env.LOG_LEVEL) env.LOG_LEVEL = 'error';
  if (!config.allowHttp) {
    env.DIRSYNC_ALLOW_HTTP = 'true';
    notes.push('DIRSYNC_ALLOW_HTTP=true for this process: the demo IdP speaks plain http on 127.0.0.1');
  }
  if (!config.allowPrivateNetwork) {
    env.DIRSYNC_ALLOW_PRIVATE_NETWORK = 'true';
    notes.push('DIRSYNC_ALLOW_PRIVATE_NETWORK=true for this process: the demo IdP listens on 127.0.0.1, where dirsync connects only when allowed');
  }
  return notes;
}

/**
 * The demo tenant, reset: the company starts over with each demo (the same people, ids and
 * groups), so what an earlier session left in the tenant (its hires, leavers, an approved mass
 * removal) is removed rather than reconciled as a surprise. Its integrations are deleted as the
 * CLI deletes them (their schedules too), with their accounts (each a user.deleted event) and
 * the people only they had. The tenant stays with its event endpoints (someone may have pointed one at a receiver) and its
 * events: the reset is history too.
 */
async function resetDemoTenant(db: Db, config: Config, okta: OktaDirectoryServer): Promise<DemoSetup> {
  const tenants = new TenantRepository(db);
  const integrations = new IntegrationService(db, config);
  const old = await tenants.findBySlug(DEMO_TENANT);
  if (old) {
    const redis = createRedis(config.redisUrl, 'client');
    const queue = createQueue(config.queueName, redis);
    try {
      for (const integration of await integrations.list(DEMO_TENANT)) {
        // Its accounts too, each a user.deleted event: a host app following the demo's feed
        // (an endpoint the reset keeps) hears that the earlier session's people are gone.
        await integrations.delete(integration.id, { accounts: 'delete' });
        await removeSchedule(queue, integration.id);
      }
    } finally {
      await queue.close();
      redis.disconnect();
    }
  } else {
    await tenants.create(DEMO_TENANT, 'Demo company');
  }
  const { integration, issued } = await integrations.create({
    tenant: DEMO_TENANT,
    provider: 'okta',
    baseUrl: okta.url,
    token: okta.token,
    oktaAppId: DEMO_APP_ID,
    threshold: '5',
  });
  if (!('webhookSecret' in issued)) throw new Error('an okta integration was created without a webhook secret');
  const endpoints = old ? (await new EndpointRepository(db).list()).filter((e) => e.tenantId === old.id).length : 0;
  return { integrationId: integration.id, webhookSecret: issued.webhookSecret, reset: old !== undefined, endpoints };
}

/** Once the server listens: the first sync, the console's address, then the company's changes every tick. */
async function afterReady(db: Db, config: Config, setup: DemoSetup, company: DemoCompany, okta: OktaDirectoryServer, options: DemoOptions): Promise<NodeJS.Timeout[]> {
  const { say } = options;
  let firstRun = '';
  const redis = createRedis(config.redisUrl, 'client');
  const queue = createQueue(config.queueName, redis);
  try {
    const { run } = await requestRun({ db, config, queue }, setup.integrationId, 'manual');
    firstRun = run.id;
    const done = await waitForRunEnd(db, run.id, { timeoutMs: 120_000, intervalMs: 250 }).catch((error: unknown) => {
      if (error instanceof UserError) return undefined;
      throw error;
    });
    say(`first sync: ${done ? describeRun(done) : `still running (run ${run.id})`}`);
    // Scheduled only now: a schedule fires at once when set, and its run would race the first sync.
    const integrations = new IntegrationService(db, config);
    const { integration } = await integrations.update(setup.integrationId, { every: SCHEDULE });
    await syncSchedule(queue, integration);
  } finally {
    await queue.close();
    redis.disconnect();
  }
  say(`console: ${config.publicUrl}/admin (sign in with the admin token)`);
  say(`watch the changes as the host app would: npx dirsync events --tenant ${DEMO_TENANT} --follow`);
  say(`the company changes every ${Math.round(options.tickMs / 1000)} s; Ctrl-C stops the demo`);
  const hookUrl = `http://127.0.0.1:${config.port}/webhooks/${setup.integrationId}`;
  // The first sync is told already (a trigger may have joined the run the schedule queued).
  const told = new Set<string>([firstRun]);
  // Runs are told as they end (a few seconds after the hook), not at the next round of changes.
  const teller = setInterval(() => void tellRuns(db, setup.integrationId, told, say).catch(() => {}), TELL_EVERY_MS);
  const ticker = setInterval(() => {
    const mark = okta.logMark();
    const changes = company.step();
    for (const c of changes) say(`idp: ${c.text}`);
    // What the org logged for this round's changes is what its event hook delivers.
    void sendEventHook(hookUrl, setup.webhookSecret, okta.loggedSince(mark)).catch((error: unknown) => say(`idp: the event hook failed: ${(error as Error).message}`));
  }, options.tickMs);
  return [ticker, teller];
}

/** Says how each run that ended since the last look went (once per run). */
async function tellRuns(db: Db, integrationId: string, told: Set<string>, say: (line: string) => void): Promise<void> {
  const runs = await new RunRepository(db).listForIntegration(integrationId, 20);
  for (const run of runs.reverse()) {
    if (told.has(run.id) || run.status === 'queued' || run.status === 'running') continue;
    told.add(run.id);
    const held = run.status === 'held' ? `; ${run.heldReason ?? 'removals wait for approval'} Approve or reject it in the console.` : '';
    say(`dirsync: ${run.trigger} run ${describeRun(run)}${held}`);
  }
}

/** Tells dirsync what changed, as an Okta event hook does: the round's System Log events in one delivery. */
async function sendEventHook(url: string, secret: string, events: readonly LoggedEvent[]): Promise<void> {
  if (events.length === 0) return;
  const body = oktaEventHookDelivery(events.map((e) => ({ uuid: e.uuid, eventType: e.eventType, displayMessage: e.displayMessage, target: e.target })));
  const response = await fetch(url, { method: 'POST', headers: { authorization: secret, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`dirsync answered ${response.status}`);
}

function describeRun(run: RunSummary): string {
  const counts = run.counts ? `: ${describeCounts(run.counts)}` : '';
  return `${run.status}${counts}${run.error ? ` (${run.error})` : ''}`;
}

/** The company's view of the demo's Okta org, its changes made to the app `appId`. */
function directoryOf(okta: OktaDirectoryServer, appId: string): DemoDirectory {
  okta.addApp(appId);
  return {
    addUser: (login, opts) => void okta.addUser(login, opts),
    updateUser: (id, change) => okta.updateUser(id, change),
    addGroup: (name, opts) => void okta.addGroup(name, opts),
    addMember: (groupId, userId) => okta.addMember(groupId, userId),
    removeMember: (groupId, userId) => okta.removeMember(groupId, userId),
    assignUser: (userId) => okta.assignUser(appId, userId),
    unassignUser: (userId) => okta.unassignUser(appId, userId),
    assignGroup: (groupId) => okta.assignGroup(appId, groupId),
    unassignGroup: (groupId) => okta.unassignGroup(appId, groupId),
  };
}
