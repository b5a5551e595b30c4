#!/usr/bin/env bash
# Runs the HTTP caching conformance suite (https://cache-tests.fyi, from
# github.com/http-tests/cache-tests) against Seawall's cached mode and
# nginx's proxy_cache side by side, on loopback, and prints how many of its
# required and optional tests each passes.
#
#   bash bench/cachetests/run.sh [SUITE_DIR]
#
# SUITE_DIR is a checkout of the suite (cloned into a temporary directory
# when not given). Needs node and nginx (installed from Debian's packages
# when missing, as root). VERBOSE=1 lists each failure. Results stay in
# $OUT (default /tmp/seawall-cachetests).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/seawall-cachetests}
rm -rf "$out" && mkdir -p "$out"
suite=${1:-}
if [[ -z $suite ]]; then
  suite=$out/suite
  git clone -q --depth 1 https://github.com/http-tests/cache-tests "$suite"
fi
suite=$(cd "$suite" && pwd)
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs >/dev/null; }
# The interim-response checks import undici, the suite's one dependency.
[[ -d $suite/node_modules/undici ]] || (cd "$suite" && npm install --no-save --no-audit --no-fund undici@7 >/dev/null)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The suite's origin server, on :8000.
(cd "$suite" && npm_config_protocol=http npm_config_port=8000 npm_config_pidfile="$out/origin.pid" \
  exec node test-engine/server/server.mjs) >"$out/origin.log" 2>&1 &
pids+=($!)

# Seawall on :8001: every path of upstream "ct" cached, no retries (the
# suite counts the calls its origin sees), no breaker, no rate limit.
go build -o "$out/seawall" ./cmd/seawall
cat >"$out/seawall.yaml" <<YAML
listen: 127.0.0.1:8001
data_dir: $out/data
admin: {listen: "off"}
log: {level: error}
upstreams:
  ct:
    url: http://localhost:8000
    mode: cached
    cache: {}
    retry: {max_attempts: 1}
    breaker: {disabled: true}
    rate_limit: {adaptive: false}
YAML
"$out/seawall" serve -c "$out/seawall.yaml" >"$out/seawall.log" 2>&1 &
pids+=($!)

# nginx on :8002, configured as the suite's own docker image configures it.
mkdir -p "$out/nginx/cache"
cat >"$out/nginx/nginx.conf" <<CONF
daemon off;
pid $out/nginx/nginx.pid;
error_log $out/nginx/error.log;
events {}
http {
  access_log off;
  proxy_cache_path $out/nginx/cache levels=1:2 keys_zone=ct:8m max_size=1000m inactive=600m;
  proxy_temp_path $out/nginx/tmp;
  client_body_temp_path $out/nginx/tmp;
  server {
    listen 127.0.0.1:8002;
    location / {
      proxy_pass http://localhost:8000;
      proxy_cache ct;
      proxy_cache_revalidate on;
      proxy_http_version 1.1;
    }
  }
}
CONF
"$nginx_bin" -p "$out/nginx" -c "$out/nginx/nginx.conf" &
pids+=($!)

for port in 8000 8001 8002; do
  for _ in $(seq 50); do
    (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.2
  done
done
run() { (cd "$suite" && npm_config_base="$2" npm_package_config_id='' node --no-warnings test-engine/cli.mjs) >"$out/$1.json" 2>"$out/$1.err"; }
run seawall http://127.0.0.1:8001/ct
run nginx http://127.0.0.1:8002
node bench/cachetests/summary.mjs "$suite" seawall="$out/seawall.json" nginx="$out/nginx.json"
