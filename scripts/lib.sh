# Helpers the set-up scripts share; sourced, not run. Set LOG_TAG before sourcing to name the
# script in its log lines.

log() { printf '[%s] %s\n' "${LOG_TAG:-portal}" "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_for() { # name, tries (1 s apart), command...
  local name=$1 tries=$2; shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 1
  done
  log "$name did not answer after ${tries}s"; return 1
}

# Starts the S3-compatible test server unless TEST_S3_URL names one already; exports TEST_S3_URL.
ensure_s3_test_server() {
  if [ -z "${TEST_S3_URL:-}" ]; then
    bash "$(dirname "${BASH_SOURCE[0]}")/s3-test-server.sh"
    export TEST_S3_URL=http://127.0.0.1:${S3_TEST_PORT:-4566}
  fi
}

# Python tools, pinned, each in a virtualenv of its own under ~/.cache/partner-portal/ (or
# PORTAL_TOOLS_DIR): tool_venv DIR CHECK PIP-ARGS... creates DIR and pip-installs PIP-ARGS into it
# unless it is complete already (`installed` is written only after pip succeeded, so an
# interrupted install is redone) and the command CHECK (run with DIR's python) succeeds.
TOOLS_DIR=${PORTAL_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/partner-portal}
tool_venv() {
  local venv=$1 check=$2
  shift 2
  if [ -f "$venv/installed" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then return 0; fi
  command -v python3 >/dev/null 2>&1 || apt_install python3
  mkdir -p "$TOOLS_DIR"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv/ensurepip separately.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  log "installing $* into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
  touch "$venv/installed"
}

# sqlx-cli, pinned to the sqlx version of Cargo.lock, installed once under $TOOLS_DIR; puts it on
# PATH.
SQLX_CLI_VERSION=0.9.0
ensure_sqlx_cli() {
  local root="$TOOLS_DIR/sqlx-cli-$SQLX_CLI_VERSION"
  if ! "$root/bin/sqlx" --version 2>/dev/null | grep -q " $SQLX_CLI_VERSION\$"; then
    log "installing sqlx-cli $SQLX_CLI_VERSION into $root (once; a few minutes)"
    rm -rf "$root"
    cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --no-default-features \
      --features postgres,rustls --locked --quiet --root "$root"
  fi
  export PATH="$root/bin:$PATH"
}

# Node.js ≥ 20.19 and npm for the partner portal (web/): Debian's packages when missing.
ensure_node() {
  if ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
  local v
  v=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
    log "the portal's build (Vite) needs Node.js 20.19 or newer; this machine has $v"
    return 1
  fi
}

# Installs the portal's locked dependencies and builds it into web/dist (served by portal-api at /).
build_portal() {
  ensure_node || return 1
  log "building the partner portal (web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) >&2
}
