#!/usr/bin/env bash
# Three Seawall replicas on this machine sharing one Redis, in front of the
# fake vendor allowing 10 calls a second without burst (as nginx limit_req
# without burst): the README's tour uses it.
#
#   bash examples/cluster/run.sh start    # Redis :6390, vendor :9998, replicas :8181-8183 (admin :9191-9193)
#   bash examples/cluster/run.sh stop
#
# Files (configs, logs, pids) are kept in CLUSTER_DIR (default
# /tmp/seawall-cluster). SEAWALL names the binary (default ./seawall,
# built when missing). Needs redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${CLUSTER_DIR:-/tmp/seawall-cluster}
bin=${SEAWALL:-./seawall}

wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on :$1; see $dir/*.log" >&2
  return 1
}

case ${1:-} in
start)
  command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
  mkdir -p "$dir"
  [ -x "$bin" ] || go build -o "$bin" ./cmd/seawall
  redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  "$bin" fake -listen 127.0.0.1:9998 -leaky-rate 10 >"$dir/vendor.log" 2>&1 &
  echo $! >"$dir/vendor.pid"
  wait_port 6390
  wait_port 9998
  for i in 1 2 3; do
    sed "s/@N@/$i/g; s|@DIR@|$dir|g" examples/cluster/replica.yaml >"$dir/replica-$i.yaml"
    "$bin" serve -c "$dir/replica-$i.yaml" >"$dir/replica-$i.log" 2>&1 &
    echo $! >"$dir/replica-$i.pid"
  done
  for i in 1 2 3; do wait_port "818$i"; done
  echo "replicas on 127.0.0.1:8181, :8182, :8183 (admin :9191-:9193, token cluster-demo-token-0001); Redis on :6390; the vendor on :9998 (10 calls a second)"
  ;;
stop)
  for f in "$dir"/replica-*.pid "$dir"/vendor.pid "$dir"/redis.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  echo "stopped; files are in $dir"
  ;;
*)
  echo "usage: bash examples/cluster/run.sh start|stop" >&2
  exit 2
  ;;
esac
