#!/usr/bin/env node
// The `streetbox` command. Runs the compiled CLI (built by `npm ci` / `npm run build`).
import { main } from '../dist/edge/cli.js';

process.exitCode = await main(process.argv);
