#!/usr/bin/env bash
# Builds (installing packages if any are missing) and runs the whole test suite.
# GPU tests (label gpu) skip with a reason when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
