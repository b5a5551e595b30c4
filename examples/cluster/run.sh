#!/usr/bin/env bash
# Three Seawall replicas on this machine sharing one Redis and one
# PostgreSQL job store, in front of the fake vendor allowing 10 calls a
# second without burst (as nginx limit_req without burst): the README's
# tour uses it.
#
#   bash examples/cluster/run.sh start     # PostgreSQL :6391, Redis :6390, vendor :9998, replicas :8181-8183 (admin :9191-9193)
#   bash examples/cluster/run.sh restart   # the replicas and Redis (empty) again; PostgreSQL and the vendor go on
#   bash examples/cluster/run.sh stop
#
# start begins afresh: a new PostgreSQL cluster, a new count. Files
# (configs, logs, pids, the database) are kept in CLUSTER_DIR (default
# /tmp/seawall-cluster). SEAWALL names the binary (default ./seawall,
# built when missing). Needs redis-server, and PostgreSQL's initdb and
# pg_ctl (run as the postgres user when this script runs as root); or set
# CLUSTER_PG to the URL of a PostgreSQL database to use instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${CLUSTER_DIR:-/tmp/seawall-cluster}
bin=${SEAWALL:-./seawall}
pg_url=${CLUSTER_PG:-postgres://postgres@127.0.0.1:6391/postgres?sslmode=disable}

wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on :$1; see $dir/*.log" >&2
  return 1
}

# as_pg runs a PostgreSQL program: as the postgres user when this is root,
# which PostgreSQL refuses to run as.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
  [ -n "${CLUSTER_PG:-}" ] && return 0
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null ||
    { echo "PostgreSQL's initdb and pg_ctl are needed, or CLUSTER_PG=postgres://…" >&2; exit 1; }
  rm -rf "$dir/pg" && mkdir -p "$dir/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$dir" "$dir/pg"
  as_pg initdb -D "$dir/pg" -A trust -U postgres >"$dir/pg-init.log"
  as_pg pg_ctl -D "$dir/pg" -l "$dir/pg/server.log" -w \
    -o "-p 6391 -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
}

start_redis() {
  redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  wait_port 6390
}

start_replicas() {
  for i in 1 2 3; do
    sed "s/@N@/$i/g; s|@DIR@|$dir|g; s|@PG@|$pg_url|g" examples/cluster/replica.yaml >"$dir/replica-$i.yaml"
    "$bin" serve -c "$dir/replica-$i.yaml" >>"$dir/replica-$i.log" 2>&1 &
    echo $! >"$dir/replica-$i.pid"
  done
  for i in 1 2 3; do wait_port "818$i"; done
}

# stop_pids ends the processes named by the pid files given, waiting for
# each to exit (a replica saves its counts as it stops).
stop_pids() {
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
}

case ${1:-} in
start)
  command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
  mkdir -p "$dir"
  [ -x "$bin" ] || go build -o "$bin" ./cmd/seawall
  start_pg
  start_redis
  "$bin" fake -listen 127.0.0.1:9998 -leaky-rate 10 >"$dir/vendor.log" 2>&1 &
  echo $! >"$dir/vendor.pid"
  wait_port 9998
  start_replicas
  echo "replicas on 127.0.0.1:8181, :8182, :8183 (admin :9191-:9193, token cluster-demo-token-0001); Redis on :6390; PostgreSQL at $pg_url; the vendor on :9998 (10 calls a second)"
  ;;
restart)
  stop_pids "$dir"/replica-*.pid "$dir/redis.pid"
  start_redis
  start_replicas
  echo "the replicas and Redis (empty) started again; PostgreSQL and the vendor went on"
  ;;
stop)
  stop_pids "$dir"/replica-*.pid "$dir/vendor.pid" "$dir/redis.pid"
  if [ -z "${CLUSTER_PG:-}" ] && [ -f "$dir/pg/postmaster.pid" ]; then
    as_pg pg_ctl -D "$dir/pg" -m fast -w stop >/dev/null
  fi
  echo "stopped; files are in $dir"
  ;;
*)
  echo "usage: bash examples/cluster/run.sh start|restart|stop" >&2
  exit 2
  ;;
esac
