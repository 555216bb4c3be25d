#!/usr/bin/env bash
# Checks that /openapi.json says exactly what the server does. Starts portal-api and one
# portal-worker on a port, a Postgres database, a ClickHouse database and a Redis namespace of their
# own (so it never meets a developer's running demo), seeds the demo partner, signs in (partner
# token, member token, API key) and runs schemathesis — pinned, from PyPI, in its own virtualenv —
# with every check, a fixed seed and a bounded number of examples. Any failure fails the script.
# Everything it started is stopped and dropped on exit.
#   bash scripts/schemathesis.sh                   # what scripts/test.sh runs
#   bash scripts/schemathesis.sh --max-examples 5  # extra arguments go to `schemathesis run`
# Needs the services (scripts/services.sh) and builds the binaries if they are not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LOG_TAG=schemathesis
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

REQUIREMENTS="$ROOT/scripts/schemathesis-requirements.txt"
SEED=${SCHEMATHESIS_SEED:-20261125}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
TOOLS=${PORTAL_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/partner-portal}
# The virtualenv is named by the pinned requirements, so changing them installs afresh.
VENV="$TOOLS/schemathesis-$(sha256sum "$REQUIREMENTS" | cut -c1-12)"
PG_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
CH_URL=${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug

command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates

# 1. schemathesis and its dependencies, pinned, in their own virtualenv (`installed` is written only
#    once pip succeeded).
if [ ! -f "$VENV/installed" ] || ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || apt_install python3
  mkdir -p "$TOOLS"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian ships venv/ensurepip separately.
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  log "installing schemathesis ($(grep '^schemathesis==' "$REQUIREMENTS")) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
  touch "$VENV/installed"
fi

# A free port unless one is given.
PORT=${SCHEMATHESIS_PORT:-$("$VENV/bin/python" -c \
  'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

# 2. The binaries (a no-op when scripts/test.sh has just built them).
cargo build --bins --locked -q

# 3. A world of its own: database, ClickHouse database, Redis namespace, export directory, and a
#    working directory without the repository's .env.
NAME="portal_schemathesis_$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portal-schemathesis.XXXXXX")
API_PID=""
WORKER_PID=""
cleanup() {
  local status=$?
  for pid in $API_PID $WORKER_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $API_PID $WORKER_PID; do wait "$pid" 2>/dev/null || true; done
  psql "$PG_URL" -qtAX -c "DROP DATABASE IF EXISTS \"$NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
  curl -fsS "$CH_URL/" --data-binary "DROP DATABASE IF EXISTS $NAME" >/dev/null 2>&1 || true
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$NAME:*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$WORK/api.log" ]; then
    log "last lines of the API log:"
    tail -n 20 "$WORK/api.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_URL" -qtAX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$NAME\"" >/dev/null
export DATABASE_URL="${PG_URL%/*}/$NAME"
export REDIS_URL CLICKHOUSE_URL="$CH_URL" CLICKHOUSE_DATABASE="$NAME" REDIS_NAMESPACE="$NAME"
# 48 random bytes in base64: long, and many distinct characters.
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET
export PORTAL_BIND="127.0.0.1:$PORT" EXPORT_DIR="$WORK/exports" LOG_FORMAT=text
export RUST_LOG=${SCHEMATHESIS_RUST_LOG:-warn}
unset EXPORT_STORE
mkdir -p "$WORK/demo" "$WORK/exports"
cp demo/classes.csv "$WORK/demo/classes.csv"
cd "$WORK"

log "migrating and seeding the demo partner ($NAME)"
"$BIN/portal-admin" migrate >/dev/null
creds=$("$BIN/portal-admin" --json seed-demo --credentials-file "$WORK/demo-credentials.json")
field() { printf '%s' "$1" | sed -n "s/.*\"$2\" *: *\"\([^\"]*\)\".*/\1/p" | head -n1; }

"$BIN/portal-api" >"$WORK/api.log" 2>&1 &
API_PID=$!
"$BIN/portal-worker" >"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
BASE="http://127.0.0.1:$PORT"
wait_for "portal-api on $BASE" 60 curl -fsS "$BASE/ready"

# 4. Credentials: a partner access token, the API key, and a member (registered with a voucher).
json_post() { curl -fsS "$BASE$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
API_KEY=$(field "$creds" apiKey)
login=$(json_post /partner-auth/login \
  "{\"email\":\"$(field "$creds" adminEmail)\",\"password\":\"$(field "$creds" adminPassword)\"}")
PARTNER_TOKEN=$(field "$login" accessToken)
voucher=$(json_post /partner/vouchers '{"quantity":1}' \
  -H "authorization: Bearer $PARTNER_TOKEN" -H "x-api-key: $API_KEY")
member=$(json_post /auth/register \
  "{\"voucherCode\":\"$(field "$voucher" code)\",\"email\":\"member@schemathesis.example\",\"password\":\"member-password-1\",\"name\":\"Schema Thesis\"}" \
  -H "x-api-key: $API_KEY")
MEMBER_TOKEN=$(field "$member" accessToken)
export PARTNER_TOKEN MEMBER_TOKEN API_KEY
# The ids of the demo admin and of the API key, which the hooks keep from being demoted,
# deactivated or revoked mid-run (see scripts/schemathesis_hooks.py).
json_field() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin)['data']; print($1)"; }
PORTAL_ADMIN_ID=$(curl -fsS "$BASE/partner-auth/me" -H "authorization: Bearer $PARTNER_TOKEN" |
  json_field "d['id']")
PORTAL_API_KEY_ID=$(curl -fsS "$BASE/partner/api-keys" -H "authorization: Bearer $PARTNER_TOKEN" |
  API_KEY="$API_KEY" json_field \
    "next(k['id'] for k in d['apiKeys'] if __import__('os').environ['API_KEY'].startswith(k['prefix']))")
export PORTAL_ADMIN_ID PORTAL_API_KEY_ID
export PORTAL_CLASS_ID=yoga-flow-1 SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis_hooks.py"
[ -n "$PARTNER_TOKEN" ] && [ -n "$MEMBER_TOKEN" ] && [ -n "$API_KEY" ] &&
  [ -n "$PORTAL_ADMIN_ID" ] && [ -n "$PORTAL_API_KEY_ID" ] ||
  { log "could not sign in to the demo"; exit 1; }

# 5. The run: scripts/schemathesis.toml says which credential each security scheme takes;
#    scripts/schemathesis_hooks.py handles the few rules JSON Schema cannot state.
log "schemathesis --checks all, seed $SEED, at most $MAX_EXAMPLES examples per operation"
status=0
"$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
  --workers 2 --no-color --report-dir "$WORK/report" "$@" | tee "$WORK/schemathesis.out" || status=$?
if [ "$status" -eq 0 ]; then
  # schemathesis's summary reads "Test cases: N generated, N passed, M skipped".
  passed=$(sed -n 's/.* generated, \([0-9]*\) passed.*/\1/p' "$WORK/schemathesis.out" | tail -n1)
  echo "schemathesis: ${passed:-0} passed, 0 failed"
else
  log "the document and the server disagree: see the failures above"
fi
exit "$status"
