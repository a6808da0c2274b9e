#!/usr/bin/env bash
# `npm test`: makes sure the system packages the integration tests use are installed,
# builds, then runs the whole vitest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
[ -d node_modules ] || npm ci
npm run --silent build
# the CLI tests spawn the bundle just built (tests/support/cli.ts CLI_ARGS)
STREETBOX_TEST_CLI=bundle npx vitest run "$@"
