package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// Redis is where several replicas share what must be one across them: each
// global upstream's pace and pauses, and the list of live replicas
// (docs/distributed.md). Without it every replica keeps its own.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS;
	// a secret (${ENV} or ${file:path}), redacted wherever it is shown.
	URL Secret `yaml:"url"`
	// Password, when set, replaces the URL's; a secret.
	Password Secret `yaml:"password"`
	// KeyPrefix begins every key Seawall writes, so that two deployments
	// can share one Redis. Default DefaultRedisKeyPrefix.
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds one Redis call: past it, the call counts as Redis
	// unreachable. Default DefaultRedisTimeout.
	Timeout Duration `yaml:"timeout"`
	// OnFailure is what a global upstream does while Redis is unreachable
	// or slow: "local" (each replica paces at its share of the rate, the
	// rate divided by the replicas last seen live) or "closed" (calls are
	// refused 503 limiter-unavailable; jobs wait). Default "local".
	OnFailure string `yaml:"on_failure"`
}

// What a global upstream does while Redis cannot be reached.
const (
	RedisOnFailureLocal  = "local"
	RedisOnFailureClosed = "closed"
)

// Whether an upstream's pace and pauses are shared (rate_limit.scope).
const (
	ScopeGlobal = "global"
	ScopeLocal  = "local"
)

const (
	DefaultRedisKeyPrefix = "seawall"
	DefaultRedisTimeout   = 50 * time.Millisecond
)

var keyPrefix = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func (r *Redis) applyDefaults(d defaulter) {
	set(d, "redis.key_prefix", &r.KeyPrefix, DefaultRedisKeyPrefix)
	set(d, "redis.timeout", &r.Timeout, Duration(DefaultRedisTimeout))
	set(d, "redis.on_failure", &r.OnFailure, RedisOnFailureLocal)
}

func (r *Redis) validate(v *checker, lookup func(string) (string, bool)) {
	if err := r.URL.expand(lookup); err != nil {
		v.add("redis.url", "%v", err)
	} else if err := checkRedisURL(r.URL.Value()); err != nil {
		v.add("redis.url", "%v", err)
	}
	if err := r.Password.expand(lookup); err != nil {
		v.add("redis.password", "%v", err)
	}
	v.check(keyPrefix.MatchString(r.KeyPrefix), "redis.key_prefix", "must be 1 to 64 letters, digits, '.', '_', ':' or '-'")
	v.check(r.Timeout > 0 && r.Timeout.D() <= 5*time.Second, "redis.timeout", "must be > 0 and at most 5s: a request may wait this long on top of its max_wait")
	v.checkChoice(r.OnFailure, "redis.on_failure", RedisOnFailureLocal, RedisOnFailureClosed)
}

// checkRedisURL says what is wrong with a Redis URL, never repeating it
// (it may hold a password).
func checkRedisURL(s string) error {
	if s == "" {
		return fmt.Errorf("required: redis://host:6379, or rediss:// for TLS")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL (redis://host:6379)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("no host: want redis://host:6379")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a port", p)
		}
	}
	if db := u.Path; db != "" && db != "/" {
		if n, err := strconv.Atoi(db[1:]); err != nil || n < 0 {
			return fmt.Errorf("path %q: want a database number, like /0", db)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("no query or fragment is read: set the timeout with redis.timeout")
	}
	return nil
}

// Global reports whether an upstream's pace and pauses are shared through
// Redis.
func (c *Config) Global(u *Upstream) bool {
	return c.Redis != nil && u.RateLimit.Scope == ScopeGlobal
}
