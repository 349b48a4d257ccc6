#!/usr/bin/env node
// The CLI is compiled by `npm ci` (the prepare script); run `npm run build` after editing src/.
import { main } from '../dist/src/cli/main.js';

await main(process.argv);
