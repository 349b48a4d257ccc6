import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { TEST_KEY } from './env.js';
import type { Db } from '../../src/db/database.js';
import type { CreateIntegrationInput } from '../../src/integrations/integration.service.js';
import { DirsyncProcess } from './processes.js';
import { waitFor } from './wait.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `dirsync` bin in child processes, exactly as automation calls it, against a
 * database of its own (which `dirsync migrate` or createDatabase creates), a queue of its own
 * and a free port.
 */
export class CliHarness {
  readonly bin = path.resolve('bin/dirsync.js');
  readonly dbName = `${process.env.DIRSYNC_TEST_DB_NAME}_cli_${randomBytes(3).toString('hex')}`;
  readonly queue = `cli-${randomBytes(4).toString('hex')}`;
  // Below Linux's ephemeral range (32768-60999), which outgoing connections and port-0 servers
  // take from: a port picked in it was at times in use already ("Port … is already in use").
  // 21000-32000 is the fault suite's Redis servers' (test/faults/support/redis-server.ts).
  readonly port = 10_000 + Math.floor(Math.random() * 11_000);
  readonly dbUrl: string;
  private server: DirsyncProcess | undefined;
  private pool: pg.Pool | undefined;
  private dbHandle: Promise<Db> | undefined;

  constructor() {
    if (!existsSync('dist/cli/main.js')) throw new Error('build first: npm run build (npm test does)');
    const u = new URL(process.env.DATABASE_URL!);
    u.pathname = `/${this.dbName}`;
    this.dbUrl = u.toString();
  }

  /**
   * Creates the harness's database, migrated, as a copy of the test run's migrated template
   * (global-setup), as createTestDatabase does: a fraction of a second, where `dirsync migrate`
   * starts a process and applies every migration (seconds on a busy machine, in every file).
   * `dirsync migrate` itself is tested by the CLI e2e test and the secrets test, and run by CI.
   */
  async createDatabase(): Promise<void> {
    const admin = new URL(process.env.DATABASE_URL!);
    admin.pathname = '/postgres';
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(`create database "${this.dbName}" template "${process.env.DIRSYNC_TEST_DB_NAME}"`);
    } finally {
      await client.end();
    }
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: this.dbUrl,
      REDIS_URL: 'redis://127.0.0.1:6379',
      DIRSYNC_ENCRYPTION_KEY: TEST_KEY,
      DIRSYNC_ALLOW_HTTP: 'true',
      // The fake IdPs and receivers listen on 127.0.0.1.
      DIRSYNC_ALLOW_PRIVATE_NETWORK: 'true',
      DIRSYNC_QUEUE: this.queue,
      PORT: String(this.port),
      LOG_LEVEL: 'warn',
      ...extra,
    };
  }

  run(args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(process.execPath, [this.bin, ...args], { env: this.env(extra), timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  async json<T = unknown>(args: string[], extra: Record<string, string> = {}): Promise<T> {
    const result = await this.run([...args, '--json'], extra);
    if (result.code !== 0) throw new Error(`dirsync ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  /**
   * Rows of the harness's database, read directly. For waiting, not for asserting: a poll
   * through the CLI starts a process each time (about 0.3 s of CPU, seconds on a busy
   * machine), so tests wait here and then assert on the CLI's own answer once.
   */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    this.pool ??= new pg.Pool({ connectionString: this.dbUrl, max: 2 });
    return (await this.pool.query<R>(text, values)).rows;
  }

  /** The harness's database as dirsync's services take it (Kysely), opened on first use, closed by stop(). */
  db(): Promise<Db> {
    this.dbHandle ??= import('../../src/db/database.js').then(({ createDb }) => createDb(this.dbUrl, { max: 2 }));
    return this.dbHandle;
  }

  /**
   * A tenant, made in this process by the function `dirsync tenant create` calls: for tests
   * that need one but are about something else (the command itself is tested as a process).
   */
  async createTenant(slug: string, name?: string): Promise<{ id: string; slug: string }> {
    const { TenantService } = await import('../../src/tenants/tenant.service.js');
    return new TenantService(await this.db()).create(slug, name);
  }

  /**
   * An integration, made in this process by the function `dirsync integration create` calls
   * (IntegrationService.create: the IdP check and encryption under the harness's key
   * included), with the harness's settings; answers its id and webhook secret. For tests
   * that need one but are about something else. Only for manual-only integrations: the
   * command also writes the schedule to the queue, which this does not.
   */
  async createIntegration(input: CreateIntegrationInput & { provider: 'okta' | 'authentik' }): Promise<{ id: string; webhookSecret: string }> {
    if (input.every !== undefined || input.cron !== undefined) throw new Error('createIntegration makes manual-only integrations: use the CLI for a schedule');
    const [{ IntegrationService }, { loadConfig }] = await Promise.all([import('../../src/integrations/integration.service.js'), import('../../src/config.js')]);
    const service = new IntegrationService(await this.db(), loadConfig(this.env(), ''));
    const { integration, issued } = await service.create(input);
    return { id: integration.id, webhookSecret: (issued as { webhookSecret: string }).webhookSecret };
  }

  /** Disables a manual-only integration in this process, as `dirsync integration disable` does (IntegrationService.setEnabled). */
  async disableIntegration(id: string): Promise<void> {
    const [{ IntegrationService }, { loadConfig }] = await Promise.all([import('../../src/integrations/integration.service.js'), import('../../src/config.js')]);
    await new IntegrationService(await this.db(), loadConfig(this.env(), '')).setEnabled(id, false);
  }

  /**
   * Waits until run `runId` is no longer queued or running, reading its row every 50 ms
   * (`timeoutMs`, 30 s by default, as in waitFor); answers its status.
   */
  async waitForRunStatus(runId: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return waitFor(
      `run ${runId} to finish`,
      async () => {
        const [row] = await this.query<{ status: string }>('select status from runs where id = $1', [runId]);
        return row && !['queued', 'running'].includes(row.status) ? row.status : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 50 },
    );
  }

  /** `dirsync start` in the background, resolved once it listens. */
  async start(): Promise<void> {
    this.server = await new DirsyncProcess(this, 'start').start();
  }

  /** Stops `dirsync start` (SIGTERM) and starts it again, as a deploy would. */
  async restart(): Promise<void> {
    await this.server?.stop();
    await this.start();
  }

  /** What `dirsync start` logged. */
  get serverLog(): string {
    return this.server?.log ?? '';
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    await this.pool?.end();
    if (this.dbHandle) await (await this.dbHandle).destroy();
    const admin = new URL(process.env.DATABASE_URL!);
    admin.pathname = '/postgres';
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`drop database if exists "${this.dbName}" with (force)`);
    await client.end();
  }
}

export interface RunSummaryJson {
  id: string;
  status: string;
  trigger: string;
  dryRun: boolean;
  counts: Record<string, number>;
  error: string | null;
  heldReason: string | null;
  approvesRunId: string | null;
}

export const ZERO_COUNTS = {
  usersCreated: 0,
  usersUpdated: 0,
  usersDeprovisioned: 0,
  usersReprovisioned: 0,
  groupsCreated: 0,
  groupsUpdated: 0,
  groupsDeleted: 0,
  membershipsAdded: 0,
  membershipsRemoved: 0,
};
