import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { TEST_KEY } from './env.js';
import { DirsyncProcess } from './processes.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `dirsync` bin in child processes, exactly as automation calls it, against a
 * database of its own (which `dirsync migrate` creates), a queue of its own and a free port.
 */
export class CliHarness {
  readonly bin = path.resolve('bin/dirsync.js');
  readonly dbName = `${process.env.DIRSYNC_TEST_DB_NAME}_cli_${randomBytes(3).toString('hex')}`;
  readonly queue = `cli-${randomBytes(4).toString('hex')}`;
  readonly port = 20_000 + Math.floor(Math.random() * 20_000);
  readonly dbUrl: string;
  private server: DirsyncProcess | undefined;

  constructor() {
    if (!existsSync('dist/src/cli/main.js')) throw new Error('build first: npm run build (npm test does)');
    const u = new URL(process.env.DATABASE_URL!);
    u.pathname = `/${this.dbName}`;
    this.dbUrl = u.toString();
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
