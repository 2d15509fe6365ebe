#!/usr/bin/env bash
# Fetch plotly.js's "basic" partial bundle (scatter, bar, pie) from the npm registry by name and version,
# the version being the one the installed plotly Python package was built against, into dashboard/vendor/.
# The dashboard serves it instead of the full plotly.js (see dashboard/web.py). Idempotent.
#   usage: bash scripts/fetch-plotly.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PACKAGE=plotly.js-basic-dist-min
VERSION=$("$PY" -c 'from plotly.offline import get_plotlyjs_version; print(get_plotlyjs_version())')
DEST=dashboard/vendor/plotly-basic-$VERSION.min.js
[ -s "$DEST" ] && { echo "fetch-plotly: $DEST is there"; exit 0; }
command -v npm >/dev/null || { echo "fetch-plotly: npm is missing; run 'bash scripts/install-system.sh run'" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# npm checks the tarball against the registry's integrity hash.
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tar -xzf "$work/$PACKAGE-$VERSION.tgz" -C "$work"
head -c 200 "$work/package/plotly-basic.min.js" | grep -q "plotly.js (basic.*) v$VERSION" \
  || { echo "fetch-plotly: $PACKAGE@$VERSION does not say it is plotly.js v$VERSION" >&2; exit 1; }
mkdir -p dashboard/vendor
cp "$work/package/LICENSE" "dashboard/vendor/LICENSE.plotly.js"
cp "$work/package/plotly-basic.min.js" "$DEST.tmp"
mv "$DEST.tmp" "$DEST"
echo "fetch-plotly: $PACKAGE@$VERSION -> $DEST ($(stat -c %s "$DEST") bytes)"
