import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A private redis-server on a free port, which a test may stop and start again. Without
 * persistence a restart comes back empty, the harder case: every job and schedule is gone.
 */
export class PrivateRedis {
  // Below the ephemeral range (32768-60999), apart from the CLI harness's 10000-21000 (test/support/cli.ts).
  readonly port = 21_000 + Math.floor(Math.random() * 11_000);
  readonly url = `redis://127.0.0.1:${this.port}`;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'dirsync-redis-'));
  private child: ChildProcess | undefined;

  constructor(private readonly persistent = false) {}

  async start(): Promise<this> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', this.persistent ? 'yes' : 'no', '--dir', this.dir],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!(await this.answers())) {
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this;
  }

  /** Stops it the hard way (SIGKILL): connections drop at once, nothing is saved on the way out. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(String(d).startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
    });
  }
}
