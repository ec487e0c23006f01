#!/bin/sh
# Refreshes the third-party browser files execd serves or tests with, from the npm
# registry at the pinned versions below (`make vendor`). They are committed, so that
# `make run` needs no network and no Node; change a version here, run this, commit.
set -eu

SWAGGER_UI=5.32.0   # swagger-ui-dist: /docs
REDOC=2.5.1         # redoc: /redoc
AXE=4.14.1          # axe-core: the dashboard's accessibility check in tests/browser

root=$(cd "$(dirname "$0")/.." && pwd)
static="$root/src/execd/api/dashboard/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

take() { # package@version destination files...
  package=$1; destination=$2; shift 2
  (cd "$work" && rm -rf package && npm pack --silent "$package" >/dev/null && tar xzf ./*.tgz && rm ./*.tgz)
  rm -rf "$destination" && mkdir -p "$destination"
  for file in "$@"; do cp "$work/package/$file" "$destination/"; done
  echo "$package" > "$destination/VERSION"
}

take "swagger-ui-dist@$SWAGGER_UI" "$static/swagger-ui" \
  swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE
take "redoc@$REDOC" "$static/redoc" \
  bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE
take "axe-core@$AXE" "$root/tests/browser/vendor/axe-core" \
  axe.min.js LICENSE LICENSE-3RD-PARTY.txt
