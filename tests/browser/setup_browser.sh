#!/usr/bin/env bash
# One-time setup for the real-browser widget tests (tests/browser/), re-runnable.
# Installs Debian's chromium (never `playwright install`: browsers are not downloaded at test time)
# and vendors the widget-manager JS that static HTML exports load from a CDN (offline here).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
JS="${WIDGET_JS_DIR:-$HERE/.widget-js}"
if ! command -v chromium >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
if [ ! -f "$JS/html-manager/dist/embed-amd.js" ] || [ ! -f "$JS/requirejs/require.js" ]; then
  rm -rf "$JS.tmp"; mkdir -p "$JS.tmp/html-manager" "$JS.tmp/requirejs"
  (cd "$JS.tmp" && npm pack --silent @jupyter-widgets/html-manager@^1.0 requirejs@2 >/dev/null \
     && tar xzf jupyter-widgets-html-manager-*.tgz -C html-manager --strip-components=1 \
     && tar xzf requirejs-*.tgz -C requirejs --strip-components=1)
  rm -rf "$JS"; mv "$JS.tmp" "$JS"
fi
chromium --version 2>/dev/null | tail -1
