#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (root) to the point where `npm run demo` and `npm test` work.
# Idempotent and quick when everything is already in place. Sources: apt, npm, Maven Central only.
#   --no-image   skip building the guest image
set -euo pipefail
cd "$(dirname "$0")/.."
build_image=1
for a in "$@"; do case "$a" in --no-image) build_image=0 ;; esac; done

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. apt packages (only those missing, one apt-get update at most)
mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | sed '/^\s*$/d')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then log "missing packages ${missing[*]} and not root: install them"; exit 1; fi
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. npm dependencies, reinstalled only when the lockfile changed
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.livemr-lock || "$(cat node_modules/.livemr-lock)" != "$lock_sum" ]]; then
  log "npm ci"
  npm_log=$(mktemp)
  if ! npm ci --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1; then
    # npm 11 rejects lockfiles that lack other platforms' optional packages (rollup's natives);
    # `npm install` still installs exactly the locked versions, without rewriting the lockfile.
    if grep -q 'Missing: .* from lock file' "$npm_log"; then
      log "npm ci refused the lockfile's optional platform packages; installing the locked versions with npm install"
      npm install --no-save --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1 || { cat "$npm_log" >&2; exit 1; }
    else
      grep -v 'Unknown user config' "$npm_log" >&2; exit 1
    fi
  fi
  rm -f "$npm_log"
  echo "$lock_sum" > node_modules/.livemr-lock
fi

# 3. native parts (each builds only when its inputs changed)
for s in scripts/build-native-*.sh; do
  [[ -e "$s" ]] && bash "$s"
done

# 4. guest image (cached outside git, keyed by its inputs)
if ((build_image)); then
  node --import tsx vm-images/build.ts
fi
