# A world of its own for the checks that run the real binaries (scripts/schemathesis.sh,
# scripts/portal-test.sh): a Postgres database, a ClickHouse database, a Redis namespace, an export
# directory and a working directory without the repository's .env; the demo partner seeded; then
# portal-api on a free port and one portal-worker. It never meets a developer's running demo, and
# everything it started is stopped and dropped when the script exits. Sourced after scripts/lib.sh.
#   world_start NAME    # sets BASE, WORK, CREDS (seed-demo's JSON), BIN, PG_URL, REDIS_URL, CH_URL
#   field "$json" key   # one string field of a JSON text

PG_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
CH_URL=${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}
WORLD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$WORLD_ROOT/target}/debug
WORLD=""
WORK=""
API_PID=""
WORKER_PID=""

field() { printf '%s' "$1" | sed -n "s/.*\"$2\" *: *\"\([^\"]*\)\".*/\1/p" | head -n1; }

world_cleanup() {
  local status=$?
  for pid in $API_PID $WORKER_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $API_PID $WORKER_PID; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$WORLD" ]; then
    psql "$PG_URL" -qtAX -c "DROP DATABASE IF EXISTS \"$WORLD\" WITH (FORCE)" >/dev/null 2>&1 || true
    curl -fsS "$CH_URL/" --data-binary "DROP DATABASE IF EXISTS $WORLD" >/dev/null 2>&1 || true
    if command -v redis-cli >/dev/null 2>&1; then
      redis-cli -u "$REDIS_URL" --scan --pattern "$WORLD:*" 2>/dev/null |
        xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
  fi
  if [ -n "$WORK" ]; then
    if [ "$status" -ne 0 ] && [ -f "$WORK/api.log" ]; then
      log "last lines of the API log:"
      tail -n 20 "$WORK/api.log" >&2 || true
      log "last lines of the worker log:"
      tail -n 20 "$WORK/worker.log" >&2 || true
    fi
    rm -rf "$WORK"
  fi
  exit "$status"
}

world_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  command -v python3 >/dev/null 2>&1 || apt_install python3
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The binaries (a no-op when scripts/test.sh has just built them).
  (cd "$WORLD_ROOT" && cargo build --bins --locked -q)

  WORLD="${1}_$$"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap world_cleanup EXIT
  trap 'exit 130' INT TERM

  psql "$PG_URL" -qtAX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$WORLD\"" >/dev/null
  export DATABASE_URL="${PG_URL%/*}/$WORLD"
  export REDIS_URL CLICKHOUSE_URL="$CH_URL" CLICKHOUSE_DATABASE="$WORLD" REDIS_NAMESPACE="$WORLD"
  # 48 random bytes in base64: long, and many distinct characters.
  JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
  export JWT_SECRET
  export PORTAL_BIND="127.0.0.1:$port" EXPORT_DIR="$WORK/exports" LOG_FORMAT=text
  export RUST_LOG=${WORLD_RUST_LOG:-warn}
  unset EXPORT_STORE
  mkdir -p "$WORK/demo" "$WORK/exports"
  cp "$WORLD_ROOT/demo/classes.csv" "$WORK/demo/classes.csv"
  cd "$WORK"

  log "migrating and seeding the demo partner ($WORLD)"
  "$BIN/portal-admin" migrate >/dev/null
  CREDS=$("$BIN/portal-admin" --json seed-demo --credentials-file "$WORK/demo-credentials.json")

  "$BIN/portal-api" >"$WORK/api.log" 2>&1 &
  API_PID=$!
  "$BIN/portal-worker" >"$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  BASE="http://127.0.0.1:$port"
  wait_for "portal-api on $BASE" 60 curl -fsS "$BASE/ready"
}
