#!/usr/bin/env node
// Builds with esbuild, which only strips the types: type checking is `npm run typecheck`, and
// a test (test/typecheck.test.ts).
//
// `node bin/build.js` (npm run build): the CLI into dist/cli/, src/ with kysely and zod in a
// few ES module files; every other dependency stays in node_modules. A process of the CLI
// loaded about 460 ES modules (263 of them kysely's, 95 zod's) before doing anything, about
// 0.55 s of every `dirsync` command on the 2-core machine, of which the bundle takes 0.1-0.2 s
// off, and tsc took 7-15 s to build what this builds in 1. Modules behind a dynamic `import()`
// (the IdP SDKs, the HTTP server) are split into chunks of their own, so a command that needs
// none of them still loads none of them.
//
// `--if-stale` (npm's `prepare`): only when a source, the lockfile or this file is newer than
// the build. `npx dirsync` in a checkout makes npm install the checkout into its npx cache and
// run `prepare` again, after `npm ci` already built it.
//
// `--bench` (npm run bench): the benchmarks into dist-bench/bench/, one file per bench/*.ts
// (each may be run or spawned: bench/run.ts starts case.js and okta-server.js).
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const out = path.join(root, 'dist', 'cli');
const stamp = path.join(out, '.built');

/** The newest modification time (ms) of the files below `dir`, or 0. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

function builtAt() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return 0;
  }
}

const { build } = await import('esbuild');
/** What both builds share: ES modules for Node 20, split where modules are shared or imported late. */
const common = { absWorkingDir: root, bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning' };

if (process.argv.includes('--bench')) {
  const bench = path.join(root, 'dist-bench', 'bench');
  rmSync(bench, { recursive: true, force: true });
  const entryPoints = readdirSync(path.join(root, 'bench')).filter((f) => f.endsWith('.ts')).map((f) => `bench/${f}`);
  await build({ ...common, entryPoints, outdir: bench, packages: 'external' });
  process.exit(0);
}

if (process.argv.includes('--if-stale')) {
  const sources = ['src', 'jobs', 'migrations'].map((d) => newest(path.join(root, d)));
  const files = ['tsconfig.json', 'package-lock.json', 'bin/build.js'].map((f) => statSync(path.join(root, f)).mtimeMs);
  if (builtAt() > Math.max(...sources, ...files)) process.exit(0);
}

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
/** Bundled: ES modules of many small files, whose loading is most of a command's start. */
const BUNDLED = new Set(['kysely', 'zod']);
const external = Object.keys(pkg.dependencies)
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

rmSync(out, { recursive: true, force: true });
await build({
  ...common,
  // worker-thread: `dirsync start`'s worker runs in a thread started from this file (src/cli/serve.ts).
  entryPoints: ['src/cli/main.ts', 'src/cli/worker-thread.ts'],
  outdir: out,
  external,
});
writeFileSync(stamp, `${new Date().toISOString()}\n`);
