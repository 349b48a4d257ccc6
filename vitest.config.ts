import { readFileSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Test files that start processes (the CLI, `dirsync start`, tsc, a browser): they take tens of seconds, not a few. */
const STARTS_PROCESSES = /support\/(cli|processes)\.js|node:child_process|playwright/;

/**
 * Longest files first, so that both workers finish together instead of one running a long
 * file alone at the end. Vitest orders by the durations in its cache when it has them (as
 * BaseSequencer does); a clean clone (CI) has none, and vitest then runs the largest files
 * first, which once left the benchmark smoke test (a short file, ~50 s) to start last. Without
 * durations, files that start processes go first, largest first, then the rest by size.
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const key = (f: TestSpecification) => `${f.project.name}:${relative(this.ctx.config.root, f.moduleId)}`;
    if (files.every((f) => this.ctx.cache.getFileTestResults(key(f)))) return super.sort(files);
    const weight = new Map(
      files.map((f) => {
        const size = statSync(f.moduleId).size;
        return [f, (STARTS_PROCESSES.test(readFileSync(f.moduleId, 'utf8')) ? 1e9 : 0) + size] as const;
      }),
    );
    return [...files].sort((a, b) => weight.get(b)! - weight.get(a)!);
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // The machine has 2 cores; more workers only contend for Postgres.
    maxWorkers: 2,
    sequence: { sequencer: LongestFirst },
    // CI also writes a JSON report, from which .ci/run prints its closing "N passed, N failed" line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: 'test-artifacts/vitest.json' } : undefined,
  },
});
