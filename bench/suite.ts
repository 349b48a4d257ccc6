/**
 * `npm run bench`: the full-run benchmark (bench/run.ts) by default, or with `--suite targeted`
 * the targeted and incremental runs' benchmark (bench/targeted.ts). Other options go to the suite.
 */
const at = process.argv.indexOf('--suite');
const suite = at >= 0 ? process.argv[at + 1] : 'full';
if (at >= 0) process.argv.splice(at, 2);
if (suite === 'targeted') await import('./targeted.js');
else if (suite === 'full') await import('./run.js');
else throw new Error(`--suite must be full or targeted, not ${suite}`);
