import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

// The build (bin/build.js, esbuild) and vitest only strip types: this is where a type error fails
// the suite, in src, jobs, migrations, the tests and the benchmarks alike (tsconfig.json).
describe('npm run typecheck', () => {
  it('finds no type error anywhere in the project', async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], { timeout: 170_000 }).then(
      ({ stdout }) => stdout,
      (error: { stdout?: string; message: string }) => error.stdout || error.message,
    );
    expect(result.trim()).toBe('');
  }, 180_000);
});
