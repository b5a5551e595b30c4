package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The three proxies are configured for the same job: /api/ passes through
// to the upstream with rate limiting (never triggered), retries and a
// breaker or its closest equivalent; /cache/ caches; /down/ fails fast
// because its only server is known to be down.

// benchAdminToken guards the admin listener the harness profiles through.
const benchAdminToken = "seawall-bench-admin-token" //nolint:gosec // a loopback harness's own token, not a secret

// seawallNetHTTP renders Seawall's upstreams with http2: true, that is
// with Go's net/http client, for measuring it beside Seawall's own.
var seawallNetHTTP bool

func seawallConfig(dir string, listen, upstream, tlsUpstream, admin int) string {
	return seawallClient(fmt.Sprintf(`listen: 127.0.0.1:%d
admin: {listen: "127.0.0.1:%d", token: `+benchAdminToken+`}
log: {level: error}
cache: {max_bytes: 64MiB, max_entry: 1MiB}
upstreams:
  api:
    url: http://127.0.0.1:%d
    rate_limit: {rate: 10000000/s, burst: 100000}
    retry: {max_attempts: 3}
    breaker: {min_calls: 100}
  cache:
    url: http://127.0.0.1:%d
    mode: cached
    cache: {}
    rate_limit: {rate: 10000000/s, burst: 100000}
    retry: {max_attempts: 3}
  down:
    url: http://127.0.0.1:1
    retry: {max_attempts: 1}
    breaker: {min_calls: 1, failure_rate: 50, open_duration: 1h, max_open_duration: 1h}
  tls:
    url: https://127.0.0.1:%d
    tls: {ca_file: %q}
    rate_limit: {rate: 10000000/s, burst: 100000}
    retry: {max_attempts: 3}
    breaker: {min_calls: 100}
`, listen, admin, upstream, upstream, tlsUpstream, filepath.Join(dir, "upstream.crt")))
}

// seawallGlobalConfig is seawallConfig with a redis block: its upstreams'
// limits are global, paced through the Redis at redisPort.
func seawallGlobalConfig(dir string, listen, upstream, tlsUpstream, admin, redisPort int) string {
	return strings.Replace(seawallConfig(dir, listen, upstream, tlsUpstream, admin), "log: {level: error}\n",
		fmt.Sprintf("log: {level: error}\nredis: {url: \"redis://127.0.0.1:%d\", key_prefix: bench}\n", redisPort), 1)
}

// seawallL2Config is seawallGlobalConfig whose memory holds no cached
// answer: every hit is read from the cache level in Redis that a replica
// with memory filled (docs/distributed.md, "The cache").
func seawallL2Config(dir string, listen, upstream, tlsUpstream, admin, redisPort int) string {
	return strings.Replace(seawallGlobalConfig(dir, listen, upstream, tlsUpstream, admin, redisPort), "cache: {max_bytes: 64MiB, max_entry: 1MiB}\n",
		"cache: {max_bytes: 1KiB, max_entry: 1KiB}\n", 1)
}

// seawallClient adds http2: true to every upstream of a config when
// seawallNetHTTP is set.
func seawallClient(config string) string {
	if !seawallNetHTTP {
		return config
	}
	return strings.ReplaceAll(config, "\n    url: ", "\n    http2: true\n    url: ")
}

// seawallAsyncConfig is a Seawall with only an async route, for an (e)
// row, on store. With hold its vendor holds each delivery for a minute,
// so that the row measures acceptance alone.
func seawallAsyncConfig(listen, admin int, store string, upstream int, hold bool) string {
	path := ""
	if hold {
		path = "/hold"
	}
	return seawallClient(fmt.Sprintf(`listen: 127.0.0.1:%d
admin: {listen: "127.0.0.1:%d", token: `+benchAdminToken+`}
log: {level: error}
jobs: {store: %q, concurrency: 8}
upstreams:
  jobs:
    url: http://127.0.0.1:%d%s
    mode: async
`, listen, admin, store, upstream, path))
}

// caddyConfig is Caddy's reverse_proxy for the same job where Caddy has
// the part: /api/ with retries (the standard build has no rate limiter),
// /down/ failing fast once its one upstream is marked unhealthy (passive
// health, max_fails 1 for an hour), and /tls/. The standard build has no
// cache either.
func caddyConfig(listen, upstream, tlsUpstream int, dir string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%[1]d {
	handle_path /api/* {
		reverse_proxy 127.0.0.1:%[2]d {
			lb_retries 3
		}
	}
	handle_path /down/* {
		reverse_proxy 127.0.0.1:1 {
			fail_duration 1h
			max_fails 1
		}
	}
	handle_path /tls/* {
		reverse_proxy https://127.0.0.1:%[3]d {
			transport http {
				tls_trusted_ca_certs %[4]s/upstream.crt
				keepalive_idle_conns 128
			}
			lb_retries 3
		}
	}
}
`, listen, upstream, tlsUpstream, dir)
}

func nginxConfig(dir string, listen, upstream, tlsUpstream int) string {
	return fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log error;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    proxy_cache_path %[1]s/cache keys_zone=c:16m max_size=64m;
    limit_req_zone $server_name zone=rl:1m rate=1000000r/s;
    upstream api { server 127.0.0.1:%[3]d; keepalive 128; }
    upstream down { server 127.0.0.1:1 down; }
    upstream tlsapi { server 127.0.0.1:%[4]d; keepalive 128; }
    server {
        listen 127.0.0.1:%[2]d;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /api/ {
            limit_req zone=rl burst=100000 nodelay;
            proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_pass http://api/;
        }
        location /cache/ {
            limit_req zone=rl burst=100000 nodelay;
            proxy_cache c;
            proxy_pass http://api/;
        }
        location /down/ { proxy_pass http://down/; }
        location /tls/ {
            limit_req zone=rl burst=100000 nodelay;
            proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate %[1]s/upstream.crt;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
            proxy_pass https://tlsapi/;
        }
    }
}
`, dir, listen, upstream, tlsUpstream)
}

func haproxyConfig(dir string, listen, upstream, tlsUpstream int) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    retry-on conn-failure empty-response 502 503 504
cache c
    total-max-size 64
    max-object-size 70000
    max-age 3600
frontend fe
    bind 127.0.0.1:%[2]d
    stick-table type integer size 1 expire 10s store http_req_rate(1s)
    http-request track-sc0 int(1)
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10000000 }
    use_backend cache if { path_beg /cache/ }
    use_backend down if { path_beg /down/ }
    use_backend tls if { path_beg /tls/ }
    default_backend api
backend api
    http-reuse always
    http-request replace-path /api(/.*) \1
    server s1 127.0.0.1:%[3]d
backend cache
    http-reuse always
    http-request replace-path /cache(/.*) \1
    http-request cache-use c
    http-response cache-store c
    server s1 127.0.0.1:%[3]d
backend down
    server s1 127.0.0.1:1 disabled
backend tls
    http-reuse always
    http-request replace-path /tls(/.*) \1
    server s1 127.0.0.1:%[4]d ssl verify required ca-file %[1]s/upstream.crt sni str(localhost)
`, dir, listen, upstream, tlsUpstream)
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// nginxUpstreamConfig is the upstream every pass-through, cache and HTTPS
// row calls: nginx on the generator's core, answering from memory over
// HTTP at listen and HTTPS at tlsListen (HTTP/1.1; the certificate in
// dir). Written in C like wrk, it costs its core far less a request than
// the harness's Go server did; when a target is as fast as nginx the two
// together still near that core's limit, and the table names such rows.
// The 64 KiB body is a file under dir, served by sendfile from the page
// cache: a config token cannot hold it.
func nginxUpstreamConfig(dir string, listen, tlsListen int) string {
	return fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/upstream-nginx.pid;
error_log %[1]s/upstream-nginx-error.log error;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[1]s/up-body;
    proxy_temp_path %[1]s/up-proxy;
    fastcgi_temp_path %[1]s/up-fastcgi;
    uwsgi_temp_path %[1]s/up-uwsgi;
    scgi_temp_path %[1]s/up-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server_tokens off;
    sendfile on;
    open_file_cache max=16;
    default_type application/json;
    server {
        listen 127.0.0.1:%[2]d;
        listen 127.0.0.1:%[3]d ssl;
        ssl_certificate %[1]s/upstream.crt;
        ssl_certificate_key %[1]s/upstream.key;
        location = /1k {
            add_header Cache-Control "public, max-age=3600";
            return 200 "%[4]s";
        }
        location = /64k {
            add_header Cache-Control "public, max-age=3600";
            root %[1]s/www;
        }
        location / { return 200 '{"ok":true,"id":"item-42","price":1999}'; }
    }
}
`, dir, listen, tlsListen, strings.Repeat("a", 1024))
}

// writeUpstreamFiles writes what nginxUpstreamConfig serves from files.
func writeUpstreamFiles(dir string) error {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil { //nolint:gosec // read by nginx's workers, another user
		return err
	}
	return os.WriteFile(filepath.Join(www, "64k"), []byte(strings.Repeat("b", 64<<10)), 0o644) //nolint:gosec // as above
}
