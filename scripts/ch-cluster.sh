#!/usr/bin/env bash
# A ClickHouse cluster on this one machine, for the cluster tests (scripts/cluster-test.sh) and for
# trying cluster mode by hand: ZooKeeper (Debian's `zookeeper`) and four ClickHouse servers, two
# shards of two replicas each, cluster name `portal_cluster`, each with its own ports and data
# folder under CH_CLUSTER_DIR (default /tmp/portal-ch-cluster).
#   bash scripts/ch-cluster.sh start    # installs what is missing, starts what is not running
#   bash scripts/ch-cluster.sh stop     # stops all five and removes the data folder
#   bash scripts/ch-cluster.sh stop-node N / start-node N   # one server (1-4), for replica loss
# Node N (1-4) answers HTTP on 127.0.0.1:$((CH_CLUSTER_PORT_BASE + N)) (base 8300), native protocol
# on 9300 + N, replication on 9400 + N; ZooKeeper on 2281. Shard 1 is nodes 1 and 2, shard 2 nodes
# 3 and 4. The product in cluster mode: CLICKHOUSE_URL=http://127.0.0.1:8301
# CLICKHOUSE_CLUSTER=portal_cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=ch-cluster
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DIR=${CH_CLUSTER_DIR:-/tmp/portal-ch-cluster}
CLUSTER=portal_cluster
ZK_PORT=${CH_CLUSTER_ZK_PORT:-2281}
HTTP_BASE=${CH_CLUSTER_PORT_BASE:-8300}
TCP_BASE=9300
REPL_BASE=9400
NODES="1 2 3 4"

shard_of() { echo $(( ($1 + 1) / 2 )); }

zk_ok() { # ZooKeeper's own health word
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; printf ruok >&3; cat <&3" 2>/dev/null || true)
  [ "$reply" = imok ]
}
node_ok() { curl -fsS "http://127.0.0.1:$((HTTP_BASE + $1))/ping" >/dev/null 2>&1; }

install() {
  if [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then apt_install zookeeper; fi
  if ! command -v clickhouse-server >/dev/null 2>&1; then apt_install clickhouse-server clickhouse-client; fi
}

zk_start() {
  zk_ok && return 0
  mkdir -p "$DIR/zk/data" "$DIR/zk/log"
  cat >"$DIR/zk/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DIR/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
maxClientCnxns=0
EOF
  cp /etc/zookeeper/conf/log4j.properties "$DIR/zk/" 2>/dev/null || true
  log "starting ZooKeeper on $ZK_PORT"
  ZOOCFGDIR="$DIR/zk" ZOO_LOG_DIR="$DIR/zk/log" ZOOPIDFILE="$DIR/zk/zk.pid" \
    bash /usr/share/zookeeper/bin/zkServer.sh start "$DIR/zk/zoo.cfg" >"$DIR/zk/log/start.out" 2>&1
  wait_for ZooKeeper 60 zk_ok
}

# One server's whole configuration: no copy of the packaged config.xml, so nothing of it (ports,
# paths, clusters) leaks in.
node_config() {
  local n=$1 d="$DIR/ch$1" shard
  shard=$(shard_of "$n")
  local servers="" s r
  for s in 1 2; do
    servers+="<shard><internal_replication>true</internal_replication>"
    for r in 1 2; do
      servers+="<replica><host>127.0.0.1</host><port>$((TCP_BASE + (s - 1) * 2 + r))</port></replica>"
    done
    servers+="</shard>"
  done
  cat <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$d/log/server.log</log>
        <errorlog>$d/log/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$((HTTP_BASE + n))</http_port>
    <tcp_port>$((TCP_BASE + n))</tcp_port>
    <interserver_http_port>$((REPL_BASE + n))</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <remote_servers><$CLUSTER>$servers</$CLUSTER></remote_servers>
    <macros>
        <cluster>$CLUSTER</cluster>
        <shard>0$shard</shard>
        <replica>ch$n</replica>
    </macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
EOF
}

node_start() {
  local n=$1 d="$DIR/ch$1"
  node_ok "$n" && return 0
  mkdir -p "$d/log" "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
  node_config "$n" >"$d/config.xml"
  log "starting ClickHouse node $n (shard $(shard_of "$n"), http $((HTTP_BASE + n)))"
  $SUDO clickhouse-server --config-file="$d/config.xml" --pid-file="$d/server.pid" --daemon
}

node_stop() {
  local n=$1 pidfile="$DIR/ch$1/server.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping ClickHouse node $n"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

start() {
  install
  zk_start
  local n
  for n in $NODES; do node_start "$n"; done
  for n in $NODES; do wait_for "ClickHouse node $n" 90 node_ok "$n"; done
  log "cluster $CLUSTER: CLICKHOUSE_URL=http://127.0.0.1:$((HTTP_BASE + 1)) CLICKHOUSE_CLUSTER=$CLUSTER"
}

stop() {
  local n
  for n in $NODES; do node_stop "$n"; done
  if [ -f "$DIR/zk/zoo.cfg" ]; then
    ZOOCFGDIR="$DIR/zk" ZOO_LOG_DIR="$DIR/zk/log" ZOOPIDFILE="$DIR/zk/zk.pid" \
      bash /usr/share/zookeeper/bin/zkServer.sh stop "$DIR/zk/zoo.cfg" >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
  log "cluster stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  start-node) node_start "$2"; wait_for "ClickHouse node $2" 90 node_ok "$2" ;;
  stop-node) node_stop "$2" ;;
  *) echo "usage: $0 start|stop|start-node N|stop-node N" >&2; exit 2 ;;
esac
