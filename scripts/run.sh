#!/usr/bin/env bash
# Runs the whole product on this machine: services (installed and started if missing), migrations,
# a demo partner (admin + viewer login, API key, class catalogue), the partner portal (web/, built
# with npm; Node.js from Debian when missing), then portal-api and one portal-worker. Prints where to look. Ctrl-C (or SIGTERM) stops both gracefully.
#   bash scripts/run.sh            # build (debug), run in the foreground
#   bash scripts/run.sh --release  # optimised build
#   bash scripts/run.sh --detach   # leave api and worker running in the background
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PROFILE=debug
DETACH=0
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release ;;
    --detach) DETACH=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

bash scripts/services.sh

mkdir -p data/logs data/exports
if [ ! -f .env ]; then
  cp .env.example .env
  # 48 random bytes in base64 without '/', '+' and '=': ~60 characters of 62 kinds (a hex
  # string has only 16 kinds and may miss one, which start-up refuses).
  secret=$(head -c 48 /dev/urandom | base64 -w0 | tr -d '/+=')
  sed -i "s/^JWT_SECRET=.*/JWT_SECRET=${secret}/" .env
  echo "[run] wrote .env with a fresh JWT_SECRET"
fi
set -a
# shellcheck disable=SC1091
. ./.env
set +a

# Stop what an earlier run left behind.
for name in api worker; do
  if [ -f "data/$name.pid" ]; then
    pid=$(cat "data/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      echo "[run] stopping previous portal-$name ($pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "data/$name.pid"
  fi
done

echo "[run] building ($PROFILE)"
if [ "$PROFILE" = release ]; then cargo build --release --bins --locked; else cargo build --bins --locked; fi
BIN=target/$PROFILE
LOG_TAG=run build_portal || echo "[run] the partner portal was not built; the API runs without it" >&2

"$BIN/portal-admin" migrate
creds=$("$BIN/portal-admin" --json seed-demo)
field() { printf '%s' "$creds" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p" | head -n1; }

"$BIN/portal-api" >>data/logs/api.log 2>&1 &
echo $! > data/api.pid
"$BIN/portal-worker" >>data/logs/worker.log 2>&1 &
echo $! > data/worker.pid

base="http://${PORTAL_BIND:-127.0.0.1:8080}"
ready=0
for _ in $(seq 1 120); do
  if curl -fsS "$base/ready" >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$(cat data/api.pid)" 2>/dev/null; then break; fi
  sleep 0.5
done
if [ "$ready" != 1 ]; then
  echo "[run] portal-api did not become ready; last log lines:" >&2
  tail -n 30 data/logs/api.log >&2
  exit 1
fi

admin=$(field adminEmail); password=$(field adminPassword); viewer=$(field viewerEmail); key=$(field apiKey)
cat <<INFO

  Partner Portal is running.

  Portal        $base/            (sign in with the admin or viewer below)
  API           $base
  API docs      $base/docs/          (OpenAPI: $base/openapi.json)
  Health        $base/health  ·  $base/ready  ·  $base/metrics
  Logs          data/logs/api.log, data/logs/worker.log
  ClickHouse    http://127.0.0.1:8123 (database ${CLICKHOUSE_DATABASE:-portal})

  Demo partner  $(field slug)
    admin       $admin / $password
    viewer      $viewer / $password
    API key     $key

  Try:
    TOKEN=\$(curl -s $base/partner-auth/login -H 'content-type: application/json' \\
      -d '{"email":"$admin","password":"$password"}' | sed -n 's/.*"accessToken":"\([^"]*\)".*/\1/p')
    curl -s $base/partner-auth/me -H "authorization: Bearer \$TOKEN"
    curl -s $base/partner/vouchers/stats -H "authorization: Bearer \$TOKEN" -H 'x-api-key: $key'
    curl -s "$base/classes?category=Yoga&limit=5" -H 'x-api-key: $key'
    curl -s $base/app/strings -H 'x-api-key: $key'

INFO

if [ "$DETACH" = 1 ]; then
  echo "  Running in the background; stop with: kill \$(cat data/api.pid data/worker.pid)"
  exit 0
fi

stop() {
  echo "[run] stopping (graceful)"
  kill -TERM "$(cat data/api.pid)" "$(cat data/worker.pid)" 2>/dev/null || true
  wait || true
  rm -f data/api.pid data/worker.pid
  exit 0
}
trap stop INT TERM
echo "  Ctrl-C stops api and worker."
wait
