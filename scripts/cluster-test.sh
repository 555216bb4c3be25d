#!/usr/bin/env bash
# The product on a replicated, sharded ClickHouse cluster: starts ZooKeeper and four ClickHouse
# 18.16 servers on this machine (2 shards × 2 replicas, scripts/ch-cluster.sh; ZooKeeper and
# ClickHouse installed when missing), then
#   1. the watch-event, analytics, billing, profile and export tests with CLICKHOUSE_CLUSTER set,
#   2. the replica-loss test (one replica of a shard stopped during ingest),
#   3. every example query of clickhouse/README.md, unchanged, against the Distributed tables of
#      a database migrated by `portal-admin migrate`, with the same answers as one server,
# and stops what it started. Exit 0 only when all pass.
#   bash scripts/cluster-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=cluster-test
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bash scripts/services.sh
# An S3-compatible server for the export-storage test, unless TEST_S3_URL names one already.
ensure_s3_test_server
node1=http://127.0.0.1:$(( ${CH_CLUSTER_PORT_BASE:-8300} + 1 ))
# A cluster that was running already (someone trying cluster mode by hand) is left running.
started_cluster=0
if ! curl -fsS "$node1/ping" >/dev/null 2>&1; then started_cluster=1; fi
cleanup() {
  if [ "$started_cluster" -eq 1 ]; then bash scripts/ch-cluster.sh stop || true; fi
}
trap cleanup EXIT
bash scripts/ch-cluster.sh start

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
single_ch=${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
status=0

cargo build --workspace --bins --locked
echo "== the watch-event, analytics, billing, profile and export tests on the cluster"
TEST_CLICKHOUSE_URL=$node1 TEST_CLICKHOUSE_CLUSTER=portal_cluster \
  cargo test -p portal-tests --test it --locked -- events:: exports:: profiles:: || status=$?
echo "== replica loss"
TEST_CLICKHOUSE_URL=$node1 TEST_CLICKHOUSE_CLUSTER=portal_cluster \
  cargo test -p portal-tests --test it --locked -- --ignored cluster:: || status=$?

echo "== clickhouse/README.md's example queries against the Distributed tables"
db=portal_cluster_readme_$$
pg_db=$db
psql "$TEST_DATABASE_URL" -qtAX -c "CREATE DATABASE $pg_db" >/dev/null
pg_url="${TEST_DATABASE_URL%/*}/$pg_db"
DATABASE_URL=$pg_url REDIS_URL=$TEST_REDIS_URL CLICKHOUSE_URL=$node1 CLICKHOUSE_DATABASE=$db \
  CLICKHOUSE_CLUSTER=portal_cluster JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0) \
  target/debug/portal-admin migrate || status=$?
TEST_CLICKHOUSE_URL=$single_ch bash scripts/ch-compat.sh \
  --cluster-url "$node1" --cluster-database "$db" || status=$?
psql "$TEST_DATABASE_URL" -qtAX -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null || true

if [ "$status" -eq 0 ]; then log "cluster tests passed"; else log "cluster tests FAILED"; fi
exit $status
