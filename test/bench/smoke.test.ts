import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

// The benchmark itself is not part of CI; its smoke size is, so that it keeps working. Both
// suites in one file: they share the build (`npm run bench` builds dist-bench/ first, as here),
// which one file building while another runs from it would pull from under it.
beforeAll(async () => {
  await run(process.execPath, ['bin/build.js', '--bench'], { timeout: 120_000 });
}, 120_000);

describe('npm run bench (smoke size)', () => {
  it('syncs a generated directory and reports every case against the floors', async () => {
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

// It drives `dirsync server` and `worker` (bin/dirsync.js): `npm run build` first.
describe('npm run bench -- --suite targeted (smoke size)', () => {
  it('measures events, sync --user and incremental runs, and prints the budget', async () => {
    const args = ['--suite', 'targeted', '--workload', 'smoke', '--events', '3', '--sets', '1', '--hires', '1', '--rounds', '1'];
    const { stdout } = await run(process.execPath, ['dist-bench/bench/suite.js', ...args], { env: process.env, timeout: 240_000 });
    expect(stdout).toMatch(/^# dirsync benchmark: targeted and incremental runs, smoke \(2,000 users/m);
    expect(stdout).toMatch(/^\| event to applied, quiet \(1 sets of 3\) \| p50 [\d.]+ s \|.*\| 2 \|$/m);
    expect(stdout).toMatch(/^\| sync --user \(new hire\), CLI wall \(1\) \|.*\| 3 \|$/m);
    // Nothing changed: one System Log page, nothing else.
    expect(stdout).toMatch(/^\| incremental, nothing changed \(1\) \| [\d.]+ s \| 1 requests \|.*\| 1 \(logs 1\) \|$/m);
    // A run's worth of churn (0.05%, at least 3 changes): read one by one, in a few requests a user.
    const round = /^\| incremental after 0\.05% churn \(1; limits none\) .*mode (\w+); (\d+) users changed, \d+ events \| (\d+) \(/m.exec(stdout);
    expect(round?.[1]).toBe('incremental');
    expect(Number(round?.[3])).toBeLessThanOrEqual(2 + 2 * Number(round?.[2]));
    // 1% at once names more users than reading them one by one is worth against a full read of
    // 2,000 users: the run reads the whole scope.
    const burst = /^\| incremental after 1% churn at once .*mode (\w+); (\d+) users changed/m.exec(stdout);
    expect(burst?.[1]).toBe('full');
    expect(Number(burst?.[2])).toBeGreaterThan(25);
    expect(stdout).toMatch(/^- \/api\/v1\/apps\*: [\d.]+ requests\/min of 100 = [\d.]+%/m);
  }, 300_000);
});
