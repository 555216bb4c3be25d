#!/usr/bin/env bash
# Compile-time checked SQL. The `sqlx::query!` macros build against the offline data in .sqlx/
# (.cargo/config.toml sets SQLX_OFFLINE=true), so no database is needed to build.
#   bash scripts/sqlx.sh prepare   regenerates .sqlx/ (run it after changing a query; commit it)
#   bash scripts/sqlx.sh check     fails when .sqlx/ does not match the queries (scripts/test.sh)
# Both describe the statements against a scratch database migrated from migrations/ (created on
# the Postgres of TEST_DATABASE_URL and dropped again), with sqlx-cli installed once, pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=sqlx
source scripts/lib.sh

mode=${1:-check}
case $mode in prepare | check) ;; *) echo "usage: $0 prepare|check" >&2; exit 2 ;; esac
ensure_sqlx_cli
base=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export DATABASE_URL="${base%/*}/portal_sqlx_$$"
cleanup() { sqlx database drop -y >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
sqlx database create
sqlx migrate run --source migrations >/dev/null
if [ "$mode" = prepare ]; then
  cargo sqlx prepare --workspace -- --all-targets --locked
  log ".sqlx/ regenerated: commit it with the query change"
else
  if ! cargo sqlx prepare --workspace --check -- --all-targets --locked; then
    log ".sqlx/ is stale: run 'bash scripts/sqlx.sh prepare' and commit .sqlx/"
    exit 1
  fi
  log ".sqlx/ matches every checked query"
fi
