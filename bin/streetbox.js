#!/usr/bin/env node
// The `streetbox` command. Runs the bundled CLI (built by `npm ci` / `npm run build`: scripts/bundle.ts).
import { main } from '../dist/streetbox.mjs';

process.exitCode = await main(process.argv);
