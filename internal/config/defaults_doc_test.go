package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The house, item 3: every default the config applies is the one the
// default column of docs/config.md states, and every key that takes a
// default has its row there. The config is the smallest one that reaches
// every defaulted key: one upstream with cost and quota, PagerDuty and a
// webhook.
func TestDefaultsMatchTheDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]*) \\|")
	documented := map[string]string{} // key -> the default cell
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	cfg := &Config{
		Upstreams: map[string]*Upstream{"x": {URL: "http://127.0.0.1:1", Cost: &Cost{}, Quota: &Quota{}}},
		Incidents: Incidents{PagerDuty: &PagerDuty{}, Webhooks: []*IncidentWebhook{{}}},
	}
	applied := 0
	check := func(path string, def any) {
		applied++
		key := strings.ReplaceAll(strings.Replace(path, "upstreams.x.", "upstreams.<name>.", 1), "[0]", "[]")
		cell, ok := documented[key]
		if !ok {
			t.Errorf("%s takes a default (%s) but docs/config.md has no row for it", key, docValue(def))
			return
		}
		first := regexp.MustCompile("`([^`]*)`").FindStringSubmatch(cell)
		switch {
		case first == nil:
			t.Errorf("%s: docs/config.md states no default value (%q); the config gives %s", key, cell, docValue(def))
		case first[1] != docValue(def) && !sameDefault(documented, first[1], docValue(def)):
			t.Errorf("%s: docs/config.md says %s, the config gives %s", key, first[1], docValue(def))
		}
	}
	cfg.applyDefaults(defaulter{applied: check})
	// The redis block's own defaults, from a config that has one.
	withRedis := &Config{Redis: &Redis{}, Upstreams: map[string]*Upstream{"x": {URL: "http://127.0.0.1:1"}}}
	withRedis.applyDefaults(defaulter{applied: func(path string, def any) {
		if strings.HasPrefix(path, "redis.") {
			check(path, def)
		}
	}})
	if withRedis.Upstreams["x"].RateLimit.Scope != ScopeGlobal {
		t.Errorf("with redis, rate_limit.scope defaults to %q, want global as docs/config.md says", withRedis.Upstreams["x"].RateLimit.Scope)
	}
	if !withRedis.Cache.Shared {
		t.Error("with redis, cache.shared defaults to false, want true as docs/config.md says")
	}
	t.Logf("%d defaults checked against docs/config.md", applied)
	if applied < 60 {
		t.Fatalf("only %d defaults applied: the config reached too few keys", applied)
	}
}

// sameDefault says the doc names another key whose default is value, as
// job_concurrency's default is jobs.concurrency's.
func sameDefault(documented map[string]string, name, value string) bool {
	cell, ok := documented[name]
	return ok && strings.HasPrefix(cell, "`"+value+"`")
}

// docValue writes a default as docs/config.md does.
func docValue(v any) string {
	switch v := v.(type) {
	case Duration:
		d := time.Duration(v)
		switch {
		case d == 0:
			return "0"
		case d%time.Hour == 0:
			return fmt.Sprintf("%dh", d/time.Hour)
		case d%time.Minute == 0:
			return fmt.Sprintf("%dm", d/time.Minute)
		case d%time.Second == 0:
			return fmt.Sprintf("%ds", d/time.Second)
		default:
			return fmt.Sprintf("%dms", d/time.Millisecond)
		}
	case Size:
		switch {
		case v%(1<<20) == 0:
			return fmt.Sprintf("%dMiB", v>>20)
		case v%(1<<10) == 0:
			return fmt.Sprintf("%dKiB", v>>10)
		}
		return fmt.Sprint(int64(v))
	case Percent:
		return fmt.Sprintf("%g%%", float64(v))
	case []int:
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = fmt.Sprint(n)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []string:
		return `["` + strings.Join(v, `", "`) + `"]`
	}
	return fmt.Sprint(v)
}

// The embedded job store defaults into data_dir, wherever that is; before,
// it stayed at data/seawall-jobs.db whatever data_dir said.
func TestJobStoreDefaultsIntoTheDataDir(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("data_dir: /var/lib/seawall\nupstreams:\n  a: {url: http://127.0.0.1:1}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("/var/lib/seawall", "seawall-jobs.db"); cfg.Jobs.Store != want {
		t.Errorf("jobs.store defaulted to %q, want %q", cfg.Jobs.Store, want)
	}
}
