#!/usr/bin/env bash
# Drops what earlier test runs left behind: per-test Postgres and ClickHouse databases and Redis keys.
set -uo pipefail
url=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
for db in $(psql "$url" -qtAX -c "SELECT datname FROM pg_database WHERE datname LIKE 'portal_t\_%'" 2>/dev/null); do
  psql "$url" -qtAX -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
done
ch=${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}
for db in $(curl -fsS "$ch/" --data-binary "SELECT name FROM system.databases WHERE name LIKE 'portal_t\\_%'" 2>/dev/null); do
  curl -fsS "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
done
redis-cli -h 127.0.0.1 --scan --pattern 'portal_t_*' 2>/dev/null | xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
rm -rf "${TMPDIR:-/tmp}/portal-tests" 2>/dev/null || true
exit 0
