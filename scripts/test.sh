#!/usr/bin/env bash
# `npm test`: makes sure the system packages the integration tests use are installed,
# builds, then runs the whole vitest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
[ -d node_modules ] || npm ci
npm run --silent build
npx vitest run "$@"
