import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

/**
 * The fault suite's figures: each scenario appends one line under test-artifacts/faults/, and
 * the suite's teardown (test/faults/support/report.ts) sums them into fault-report.md.
 */
export interface ScenarioFigures {
  readonly scenario: string;
  /** Times the scenario was repeated (randomised timing). */
  readonly rounds: number;
  /** Faults injected: failed or delayed responses, dropped connections, restarts, kills. */
  readonly faults: number;
  /** Worker processes killed with SIGKILL. */
  readonly kills?: number;
  readonly runs: number;
  /** Differences between local state and the IdP's projection after the clean run (must be 0). */
  readonly changesLost: number;
  /** Deprovisions of users the IdP kept active and in scope (must be 0). */
  readonly wrongfulDeprovisions: number;
  readonly note?: string;
}

/**
 * This test run's own folder (named for its database, which global setup makes unique), so
 * two runs at once on one checkout neither wipe nor count each other's figures.
 */
export function figuresDir(): string {
  return path.resolve('test-artifacts/faults', process.env.DIRSYNC_TEST_DB_NAME ?? 'default');
}

export function recordFigures(figures: ScenarioFigures): void {
  mkdirSync(figuresDir(), { recursive: true });
  appendFileSync(path.join(figuresDir(), `figures-${process.pid}.jsonl`), `${JSON.stringify({ ...figures, at: new Date().toISOString() })}\n`);
}

/** How often randomised scenarios repeat: few in CI, more with `npm run test:faults`. */
export const ROUNDS = Math.max(1, Number(process.env.DIRSYNC_FAULT_ROUNDS ?? 2));

/** A seeded generator, so a failing round can be replayed with DIRSYNC_FAULT_SEED. */
export function random(seed = Number(process.env.DIRSYNC_FAULT_SEED ?? Date.now() % 2 ** 31)): { seed: number; next: () => number; int: (lo: number, hi: number) => number } {
  let state = seed >>> 0 || 1;
  const next = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return { seed, next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)) };
}
