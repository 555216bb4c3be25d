#!/usr/bin/env bash
# Installs (apt) and starts Postgres, Redis and ClickHouse where missing or stopped, then waits until
# each answers. Idempotent: on a machine where everything already runs it only checks and returns.
# Creates the `portal` role (LOGIN, CREATEDB) and the `portal` database used by the defaults in .env.example.
set -euo pipefail

LOG_TAG=services
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates

# ---- PostgreSQL -------------------------------------------------------------------------------
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt_install postgresql postgresql-contrib
fi
if ! pg_up 2>/dev/null; then
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $ver"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster "$ver" main start
fi
wait_for PostgreSQL 60 pg_up
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
PORTAL_DB_USER=${PORTAL_DB_USER:-portal}
PORTAL_DB_PASSWORD=${PORTAL_DB_PASSWORD:-portal}
PORTAL_DB_NAME=${PORTAL_DB_NAME:-portal}
as_pg psql -qtAX -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PORTAL_DB_USER}') THEN
    CREATE ROLE ${PORTAL_DB_USER} LOGIN CREATEDB PASSWORD '${PORTAL_DB_PASSWORD}';
  ELSE
    ALTER ROLE ${PORTAL_DB_USER} LOGIN CREATEDB PASSWORD '${PORTAL_DB_PASSWORD}';
  END IF;
END \$\$;
SQL
if [ "$(as_pg psql -qtAX -d postgres -c "SELECT 1 FROM pg_database WHERE datname='${PORTAL_DB_NAME}'")" != "1" ]; then
  as_pg psql -qtAX -d postgres -c "CREATE DATABASE ${PORTAL_DB_NAME} OWNER ${PORTAL_DB_USER}" >/dev/null
fi
# pg_trgm is created by the migrations; it must be creatable by the owner (trusted extension since PG13).
as_pg psql -qtAX -d "${PORTAL_DB_NAME}" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_trgm" >/dev/null
as_pg psql -qtAX -d template1 -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_trgm" >/dev/null

# ---- Redis ------------------------------------------------------------------------------------
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server redis-tools
fi
if ! redis_up; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/portal-redis.log
fi
wait_for Redis 30 redis_up

# ---- ClickHouse -------------------------------------------------------------------------------
ch_up() { [ "$(curl -fsS http://127.0.0.1:8123/ping 2>/dev/null)" = "Ok." ]; }
if ! ch_up; then
  if ! command -v clickhouse-server >/dev/null 2>&1; then
    apt_install clickhouse-server clickhouse-client
  fi
  log "starting ClickHouse"
  mkdir -p /var/log/clickhouse-server /var/lib/clickhouse
  $SUDO clickhouse-server --config-file=/etc/clickhouse-server/config.xml --daemon
fi
wait_for ClickHouse 90 ch_up

log "all services answer: postgres://${PORTAL_DB_USER}@127.0.0.1:5432/${PORTAL_DB_NAME}, redis://127.0.0.1:6379, http://127.0.0.1:8123"
