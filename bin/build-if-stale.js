#!/usr/bin/env node
// npm's `prepare` step: compiles the TypeScript (tsc -p tsconfig.build.json) unless dist/ is
// already newer than every source. `npx dirsync` in a checkout makes npm install the checkout
// into its npx cache and run `prepare` again, after `npm ci` already built it: without this,
// a newcomer's first `npx dirsync demo` sat a minute in tsc before printing anything.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const built = path.join(root, 'dist', '.tsbuildinfo');

/** The newest modification time (ms) of the files below `dir`, or 0. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

let builtAt = 0;
try {
  builtAt = statSync(built).mtimeMs;
} catch {
  // Never built here.
}
const sources = ['src', 'jobs', 'migrations'].map((d) => newest(path.join(root, d)));
const configs = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'].map((f) => statSync(path.join(root, f)).mtimeMs);
if (builtAt > Math.max(...sources, ...configs)) process.exit(0);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
