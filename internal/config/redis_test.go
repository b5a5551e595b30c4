package config

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Several replicas, item 1: the redis block's problems are reported with
// file:line like every other, a secret URL is never repeated, and a
// global scope needs the block.
func TestRedisBlock(t *testing.T) {
	for _, tc := range []struct{ redis, scope, want string }{
		{"{url: redis://127.0.0.1:6379}", "", ""},
		{"{url: 'rediss://u:hunter2@cache.internal:6380/2', key_prefix: 'prod:eu', timeout: 20ms, on_failure: closed}", "local", ""},
		{"{url: '${REDIS_URL}'}", "", ""},
		{"{url: '${NOPE}'}", "", "seawall.yaml:1 redis.url: environment variable NOPE is not set"},
		{"{}", "", "redis.url: required"},
		{"{url: 'http://u:hunter2@x:6379'}", "", `redis.url: scheme "http": want redis:// or rediss://`},
		{"{url: 'redis://:hunter2@'}", "", "redis.url: no host"},
		{"{url: 'redis://x:99999'}", "", `redis.url: port "99999" is not a port`},
		{"{url: 'redis://x:6379/db'}", "", `redis.url: path "/db": want a database number`},
		{"{url: 'redis://x:6379?dial_timeout=1s'}", "", "redis.url: no query or fragment"},
		{"{url: redis://x, key_prefix: 'a b'}", "", "redis.key_prefix: must be 1 to 64"},
		{"{url: redis://x, timeout: 10s}", "", "redis.timeout: must be > 0 and at most 5s"},
		{"{url: redis://x, on_failure: open}", "", `redis.on_failure: "open" is not one of local, closed`},
		{"{url: redis://x, password: '${file:/no/such/file}'}", "", "redis.password: cannot read secret file"},
		{"", "global", "upstreams.a.rate_limit.scope: global shares the pace through Redis"},
		{"{url: redis://x}", "regional", `upstreams.a.rate_limit.scope: "regional" is not one of global, local`},
	} {
		doc := ""
		if tc.redis != "" {
			doc = "redis: " + tc.redis + "\n"
		}
		doc += "upstreams:\n  a:\n    url: http://x\n"
		if tc.scope != "" {
			doc += "    rate_limit: {scope: " + tc.scope + "}\n"
		}
		cfg, err := Parse("seawall.yaml", []byte(doc), env(map[string]string{"REDIS_URL": "redis://:s3cret@10.0.0.5:6379/1"}))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s / %s: %v, want accepted", tc.redis, tc.scope, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s / %s: %v, want %q", tc.redis, tc.scope, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the problem repeats the password: %v", tc.redis, err)
		case err == nil && tc.redis != "" && cfg.Redis.URL.String() != "[redacted]":
			t.Errorf("%s: the URL prints as %q", tc.redis, cfg.Redis.URL.String())
		}
		if err == nil && tc.scope == "" && !cfg.Global(cfg.Upstreams["a"]) {
			t.Errorf("%s: the upstream is not global by default with a redis block", tc.redis)
		}
	}
}

// FuzzRedisURL: whatever is written as redis.url, checking it neither
// panics nor accepts what the client cannot dial, and a problem never
// repeats the value.
func FuzzRedisURL(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379", "rediss://u:p@h:6380/3", "redis://", "redis://h:0", "redis://[::1]:6379/0", "unix:///tmp/r.sock", "redis://h:6379/-1", "reDis://0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkRedisURL(s)
		if err == nil {
			// A scheme's case does not matter (RFC 3986 3.1): "REDIS://h"
			// is accepted, and the client must read it too.
			if scheme, _, _ := strings.Cut(s, "://"); !strings.EqualFold(scheme, "redis") && !strings.EqualFold(scheme, "rediss") {
				t.Fatalf("accepted %q", s)
			}
			if _, perr := redis.ParseURL(s); perr != nil {
				t.Fatalf("accepted %q, which the client refuses: %v", s, perr)
			}
		}
		if err != nil && len(s) > 8 && strings.Contains(err.Error(), s) {
			t.Fatalf("the problem repeats the URL: %v", err)
		}
	})
}
