#!/usr/bin/env bash
# The whole test suite: services (installed and started if missing), format check, clippy with
# warnings as errors, the compile-time SQL data (.sqlx/) checked current, every test of the
# workspace against the real Postgres, Redis and ClickHouse, then schemathesis over the OpenAPI
# document against the running product, every ClickHouse file and README example query on a current
# engine as well (scripts/ch-compat.sh), the product on a ClickHouse cluster
# (scripts/cluster-test.sh), and the partner portal in a real browser
# (scripts/portal-test.sh).
# Each test creates its own Postgres database, ClickHouse database, tenant and Redis namespace, so the
# suite runs in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
bash scripts/services.sh
# An S3-compatible server for the export-storage tests, unless TEST_S3_URL names one already.
ensure_s3_test_server

# Test defaults; any of these may be overridden from the environment.
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
export TEST_CLICKHOUSE_URL=${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== sqlx offline data (scripts/sqlx.sh check): .sqlx/ matches every checked query"
bash scripts/sqlx.sh check
echo "== cargo test"
bash scripts/test-cleanup.sh
# The crash tests run the real portal-worker binary (and SIGKILL it).
cargo build --workspace --bins --locked
status=0
cargo test --workspace --locked -- "$@" || status=$?
# The OpenAPI document against the running product (its own port, databases and Redis namespace):
# schemathesis with every check, a fixed seed and a bounded number of examples. Only for a whole
# run: a run limited to some tests (arguments given) skips it.
if [ $# -eq 0 ]; then
  # The ClickHouse files and the analysts' example queries on a current engine too (chDB), with
  # the same answers as on 18.16.
  echo "== clickhouse/ on 18.16 and on a current engine (scripts/ch-compat.sh)"
  bash scripts/ch-compat.sh || status=$?
  # The product on a 2-shard × 2-replica ClickHouse cluster with ZooKeeper on this machine.
  echo "== ClickHouse cluster mode (scripts/cluster-test.sh)"
  bash scripts/cluster-test.sh || status=$?
  echo "== schemathesis (scripts/schemathesis.sh)"
  bash scripts/schemathesis.sh || status=$?
  # The portal: built with types generated from web/openapi.json (which a cargo test keeps equal
  # to the served document), type-checked; then every screen in a real browser (Playwright
  # driving Debian's Chromium against the real API and worker, axe-core on each).
  echo "== partner portal (web/): types from the API's document, type check, build, browser tests"
  if ensure_node; then
    # portal-test.sh installs the locked dependencies and builds the portal first.
    bash scripts/portal-test.sh || status=$?
  else
    status=1
  fi
fi
bash scripts/test-cleanup.sh
exit $status
