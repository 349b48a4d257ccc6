import { randomInt } from 'node:crypto';
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

export type Rng = { seed: number; next: () => number; int: (lo: number, hi: number) => number };

/** A seeded generator (mulberry32): the same seed gives the same choices. */
export function random(seed: number): Rng {
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return { seed, next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)) };
}

/**
 * A randomised scenario's seed, printed when the scenario starts so that any run (a failing one
 * above all) can be replayed: DIRSYNC_FAULT_SEED=<seed> makes every round's choices (churn, which
 * requests fail and how, where a kill or an outage is aimed) the same again. Timing of the real
 * processes still varies, which is why each scenario also asserts the phase its faults hit.
 */
export interface ScenarioSeed {
  readonly seed: number;
  /** Round `i`'s own generator, derived from the scenario's seed alone. */
  round(i: number): Rng;
  /** "seed S round I", for assertion messages. */
  label(i: number): string;
}

export function scenarioSeed(scenario: string): ScenarioSeed {
  const fromEnv = process.env.DIRSYNC_FAULT_SEED;
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) >>> 0 : randomInt(1, 2 ** 31);
  // Printed on stdout, which vitest shows next to the test (and in CI's log) whether it passes or fails.
  console.log(`[faults] ${scenario}: seed ${seed} (replay: DIRSYNC_FAULT_SEED=${seed})`);
  return {
    seed,
    round: (i) => random((Math.imul(seed ^ 0x9e3779b9, i + 1) ^ (seed >>> 3)) >>> 0 || i + 1),
    label: (i) => `seed ${seed} round ${i} (replay: DIRSYNC_FAULT_SEED=${seed})`,
  };
}

/**
 * Where in a run a fault landed. A fault that landed after the run had ended tested nothing,
 * so scenarios assert the phase each fault hit, not only the outcome.
 */
export type RunPhase = 'reading' | 'applying' | 'after the run ended';

/** Counts of the phases faults hit, for a scenario's figures. */
export function phaseNote(phases: RunPhase[]): string {
  const count = (p: RunPhase) => phases.filter((x) => x === p).length;
  return `faults hit while reading ${count('reading')}, while applying ${count('applying')}, after the run ended ${count('after the run ended')}`;
}
