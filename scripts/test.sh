#!/usr/bin/env bash
# Run the whole suite (unit + integration on the real rig). pytest's own exit code is returned,
# so "no tests collected" (5) fails like any other failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 \
  --junitxml=test-artifacts/junit.xml "$@"
