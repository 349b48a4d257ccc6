import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

// The benchmark itself is not part of CI; its smoke size is, so that it keeps working. It drives
// `dirsync server` and `worker` (bin/dirsync.js): `npm run build` first.
describe('npm run bench -- --suite targeted (smoke size)', () => {
  it('measures events, sync --user and incremental runs, and prints the budget', async () => {
    await run('npx', ['tsc', '-p', 'tsconfig.bench.json'], { timeout: 120_000 });
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
