#!/usr/bin/env node
// The CLI is built by `npm ci` (the prepare script, bin/build.js); run `npm run build` after editing src/.
import { main } from '../dist/cli/main.js';

await main(process.argv);
