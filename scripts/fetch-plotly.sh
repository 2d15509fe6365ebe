#!/usr/bin/env bash
# Fetch the dashboard's two vendored scripts from the npm registry by name and version into dashboard/vendor/:
# * plotly.js's "basic" partial bundle (scatter, bar, pie), the version the installed plotly Python package was
#   built against; the dashboard serves it instead of the full plotly.js;
# * regenerator-runtime at the version dashboard/web.py names, the one part of Dash's polyfill bundle that
#   Dash's scripts use; the dashboard serves it instead of that bundle (see dashboard/web.py). Idempotent.
#   usage: bash scripts/fetch-plotly.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
mkdir -p dashboard/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch PACKAGE VERSION FILE-IN-PACKAGE DEST LICENSE-DEST: npm checks the tarball against the registry's
# integrity hash; the file must exist in the package.
fetch() {
  local package=$1 version=$2 file=$3 dest=$4 license=$5
  [ -s "$dest" ] && { echo "fetch-plotly: $dest is there"; return 0; }
  command -v npm >/dev/null || { echo "fetch-plotly: npm is missing; run 'bash scripts/install-system.sh run'" >&2; exit 2; }
  rm -rf "$work/package"
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$work/${package//@/}-$version.tgz" -C "$work"
  [ -s "$work/package/$file" ] || { echo "fetch-plotly: $package@$version has no $file" >&2; exit 1; }
  cp "$work/package/LICENSE" "$license"
  cp "$work/package/$file" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  echo "fetch-plotly: $package@$version -> $dest ($(stat -c %s "$dest") bytes)"
}

PLOTLY=$("$PY" -c 'from plotly.offline import get_plotlyjs_version; print(get_plotlyjs_version())')
DEST=dashboard/vendor/plotly-basic-$PLOTLY.min.js
fetch plotly.js-basic-dist-min "$PLOTLY" plotly-basic.min.js "$DEST" dashboard/vendor/LICENSE.plotly.js
head -c 200 "$DEST" | grep -q "plotly.js (basic.*) v$PLOTLY" \
  || { echo "fetch-plotly: $DEST does not say it is plotly.js v$PLOTLY" >&2; rm -f "$DEST"; exit 1; }

REGENERATOR=$("$PY" -c 'from dashboard.web import REGENERATOR_VERSION; print(REGENERATOR_VERSION)')
DEST=dashboard/vendor/regenerator-runtime-$REGENERATOR.js
fetch regenerator-runtime "$REGENERATOR" runtime.js "$DEST" dashboard/vendor/LICENSE.regenerator-runtime
grep -q "regeneratorRuntime = runtime" "$DEST" \
  || { echo "fetch-plotly: $DEST does not define regeneratorRuntime" >&2; rm -f "$DEST"; exit 1; }
