#!/usr/bin/env bash
# One-time (idempotent) set-up of everything ecg_ray needs on a fresh machine:
# a Python venv with the package, the pinned npm page assets, a Chromium, CJK + emoji fonts,
# and redis-server for the tests of the Redis job table.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ECG_VENV:-.venv}
PY=${PYTHON:-python3}
log() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ ! -f /tmp/.ecg-apt-updated ]; then as_root apt-get update -qq && touch /tmp/.ecg-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. Python package (editable) with test extras.
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { log "Python 3.11+ is required"; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then log "creating $VENV"; "$PY" -m venv "$VENV"; fi
stamp="$VENV/.ecg-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing Python packages"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  touch "$stamp"
fi

# 2. npm page assets, pinned by package-lock.json; only their dist files reach the pages: two
# for the caption page, hls.js for the jobs page's live preview.
vend=ecg_ray/capture/web/vendor
jobs_vend=ecg_ray/service/page/vendor
if [ ! -f "$vend/motiontext-renderer.js" ] || [ ! -f "$vend/gsap.min.js" ] || [ ! -f "$jobs_vend/hls.min.js" ] \
   || [ package-lock.json -nt "$vend/motiontext-renderer.js" ] || [ package-lock.json -nt "$jobs_vend/hls.min.js" ]; then
  command -v npm >/dev/null || apt_install nodejs npm || { log "npm is required"; exit 1; }
  log "installing npm assets (npm ci)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  mkdir -p "$vend"
  cp node_modules/motiontext-renderer/dist/index.js "$vend/motiontext-renderer.js"
  cp node_modules/gsap/dist/gsap.min.js "$vend/gsap.min.js"
  mkdir -p "$jobs_vend"
  cp node_modules/hls.js/dist/hls.min.js "$jobs_vend/hls.min.js"
fi

# 3. Chromium: Playwright's own where it can be downloaded, else the system's (ECG_CHROMIUM overrides).
if [ -z "${ECG_CHROMIUM:-}" ]; then
  if ! ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium*/chrome-linux*/chrome >/dev/null 2>&1 \
     && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    log "installing Chromium (Playwright's, else the system package)"
    if ! timeout 600 "$VENV/bin/python" -m playwright install --with-deps chromium >/dev/null 2>&1; then
      log "Playwright's Chromium download failed; using the system package"
      apt_install chromium || { log "could not install Chromium: set ECG_CHROMIUM to a Chromium binary"; exit 1; }
    fi
  fi
fi

# 4. Fonts: Korean (Noto CJK) and colour emoji.
fonts=$(fc-list : family 2>/dev/null || true)
if [[ "$fonts" == *"Noto Sans CJK"* && "$fonts" == *"Noto Color Emoji"* ]]; then
  :
else
  log "installing fonts (Noto CJK, Noto Color Emoji)"
  apt_install fonts-noto-cjk fonts-noto-color-emoji fontconfig || log "warning: could not install fonts; Korean text may not render"
fi
# 5. redis-server: the Redis job table's tests start a real one on loopback (the service itself
# needs it only where REDIS_URL points, usually another host).
if ! command -v redis-server >/dev/null; then
  log "installing redis-server (for the tests of the Redis job table)"
  apt_install redis-server || { log "could not install redis-server"; exit 1; }
fi
log "ready"
