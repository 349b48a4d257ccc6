import { type ChildProcess, spawn } from 'node:child_process';
import type { CliHarness } from './cli.js';

/** A `dirsync worker` (or `start`) process of the harness's, which tests may kill at will. */
export class DirsyncProcess {
  log = '';
  private child: ChildProcess | undefined;

  constructor(
    private readonly cli: CliHarness,
    private readonly command: 'worker' | 'start' = 'worker',
    private readonly env: Record<string, string> = {},
  ) {}

  /** Starts the process; resolves once it logs that it is ready. */
  async start(): Promise<this> {
    const ready = this.command === 'worker' ? 'worker started' : 'http server listening';
    this.child = spawn(process.execPath, [this.cli.bin, this.command], {
      env: this.cli.env({ LOG_LEVEL: 'info', ...this.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = this.child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dirsync ${this.command} did not start in 60 s (running: ${this.running}):\n${this.log}`)), 60_000);
      const onData = (data: Buffer) => {
        this.log += data;
        if (this.log.includes(ready)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dirsync ${this.command} exited with ${code}:\n${this.log}`));
      });
    }).catch((error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    });
    child.removeAllListeners('exit');
    return this;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: no shutdown hooks, no lock release, exactly like the OOM killer. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM, the way an orchestrator stops it; resolves with the exit code (null if it was not running or died of a signal). */
  async stop(): Promise<number | null> {
    return this.signal('SIGTERM');
  }

  private async signal(signal: NodeJS.Signals): Promise<number | null> {
    if (!this.running) return null;
    // 'close', not 'exit': by then its output is read to the end (this.log is complete).
    const exited = new Promise<number | null>((resolve) => this.child!.once('close', (code) => resolve(code)));
    this.child!.kill(signal);
    return exited;
  }
}
