import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

// The benchmark itself is not part of CI; its smoke size is, so that it keeps working.
describe('npm run bench (smoke size)', () => {
  it('syncs a generated directory and reports every case against the floors', async () => {
    await run('npx', ['tsc', '-p', 'tsconfig.bench.json'], { timeout: 120_000 });
    const { stdout } = await run(process.execPath, ['dist-bench/bench/run.js', '--workload', 'smoke', '--runs', '1'], {
      env: { ...process.env, DATABASE_URL: process.env.DATABASE_URL },
      timeout: 120_000,
    });
    expect(stdout).toMatch(/^\| bare DB floor \(COPY into tables without indexes\) \| [\d.]+ s \|.*\| 14040 \| - \| - \| - \| - \| - \|$/m);
    // The same rows and the change log an initial sync records: one row per change (12040).
    expect(stdout).toMatch(/^\| DB floor with the change log \(.*\) \| [\d.]+ s \|.*\| 26080 \| - \| - \| - \| - \| - \|$/m);
    expect(stdout).toMatch(/^\| IdP floor, JSON pages \(the same requests, no SDK models\) \| [\d.]+ s \|.*\| 45 \| - \|/m);
    expect(stdout).toMatch(/^# dirsync benchmark: smoke \(2,000 users, 40 groups, 10,000 memberships, app-scoped\)$/m);
    // Against the bare floor (the goal's), the JSON-pages one, the floor with the real tables' indexes, that with the change log, the IdP's.
    expect(stdout).toMatch(/^\| initial full sync \| [\d.]+ s \|.*\| 12040 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$/m);
    expect(stdout).toMatch(/^\| no-op resync \| [\d.]+ s \|.*\| 0 \| [\d.]+ \|/m);
    expect(stdout).toMatch(/^Churn: \{"usersCreated":6,"usersUpdated":6,.*"usersDeprovisioned":6/m);
  }, 180_000);
});
