package config

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seawall/seawall/internal/webhook"
)

const defaultShutdownGrace = 15 * time.Second

// defaulter fills the fields a file left out. A key written in the file
// keeps its value, even zero, so that Validate can reject it.
type defaulter struct {
	present map[string]int
	// applied, if set, hears each default given: the defaults test
	// compares them with docs/config.md.
	applied func(path string, def any)
}

func set[T any](d defaulter, path string, field *T, def T) {
	if _, ok := d.present[path]; !ok {
		*field = def
		if d.applied != nil {
			d.applied(path, def)
		}
	}
}

func (c *Config) applyDefaults(d defaulter) {
	set(d, "listen", &c.Listen, DefaultListen)
	set(d, "engine", &c.Engine, DefaultEngine)
	set(d, "admin.listen", &c.Admin.Listen, DefaultAdminListen)
	set(d, "log.level", &c.Log.Level, DefaultLogLevel)
	set(d, "log.format", &c.Log.Format, DefaultLogFormat)
	set(d, "limits.max_request_body", &c.Limits.MaxRequestBody, DefaultMaxRequestBody)
	set(d, "limits.max_response_body", &c.Limits.MaxResponseBody, DefaultMaxResponseBody)
	set(d, "limits.body_read_timeout", &c.Limits.BodyReadTimeout, Duration(DefaultBodyReadTimeout))
	set(d, "limits.write_timeout", &c.Limits.WriteTimeout, Duration(DefaultWriteTimeout))
	set(d, "shutdown_grace", &c.ShutdownGrace, Duration(defaultShutdownGrace))
	set(d, "data_dir", &c.DataDir, DefaultDataDir)
	inc := DefaultIncidents()
	set(d, "incidents.resolve_after", &c.Incidents.ResolveAfter, inc.ResolveAfter)
	set(d, "incidents.queue_age_high", &c.Incidents.QueueAgeHigh, inc.QueueAgeHigh)
	set(d, "incidents.keep_events", &c.Incidents.KeepEvents, inc.KeepEvents)
	set(d, "incidents.keep_incidents", &c.Incidents.KeepIncidents, inc.KeepIncidents)
	if pd := c.Incidents.PagerDuty; pd != nil {
		set(d, "incidents.pagerduty.url", &pd.URL, DefaultPagerDutyURL)
		set(d, "incidents.pagerduty.min_severity", &pd.MinSeverity, DefaultMinSeverity)
	}
	for i, w := range c.Incidents.Webhooks {
		if w != nil {
			set(d, fmt.Sprintf("incidents.webhooks[%d].min_severity", i), &w.MinSeverity, DefaultMinSeverity)
		}
	}
	set(d, "jobs.store", &c.Jobs.Store, filepath.Join(c.DataDir, filepath.Base(DefaultJobsStore)))
	j := DefaultJobs()
	set(d, "jobs.max_attempts", &c.Jobs.MaxAttempts, j.MaxAttempts)
	set(d, "jobs.base_delay", &c.Jobs.BaseDelay, j.BaseDelay)
	set(d, "jobs.max_delay", &c.Jobs.MaxDelay, j.MaxDelay)
	set(d, "jobs.fsync", &c.Jobs.Fsync, j.Fsync)
	set(d, "jobs.max_age", &c.Jobs.MaxAge, j.MaxAge)
	set(d, "jobs.retention", &c.Jobs.Retention, j.Retention)
	set(d, "jobs.dead_retention", &c.Jobs.DeadRetention, j.DeadRetention)
	set(d, "jobs.max_result", &c.Jobs.MaxResult, j.MaxResult)
	set(d, "jobs.callbacks.max_attempts", &c.Jobs.Callbacks.MaxAttempts, j.Callbacks.MaxAttempts)
	set(d, "jobs.callbacks.timeout", &c.Jobs.Callbacks.Timeout, j.Callbacks.Timeout)
	set(d, "jobs.visibility_timeout", &c.Jobs.VisibilityTimeout, j.VisibilityTimeout)
	set(d, "jobs.enqueue_timeout", &c.Jobs.EnqueueTimeout, j.EnqueueTimeout)
	set(d, "jobs.concurrency", &c.Jobs.Concurrency, j.Concurrency)
	set(d, "cache.max_bytes", &c.Cache.MaxBytes, DefaultCacheMaxBytes)
	set(d, "cache.max_entry", &c.Cache.MaxEntry, DefaultCacheMaxEntry)
	set(d, "cache.shared", &c.Cache.Shared, c.Redis != nil)
	set(d, "cache.shared_max_bytes", &c.Cache.SharedMaxBytes, DefaultCacheSharedMaxBytes)
	scope := ScopeLocal
	if c.Redis != nil {
		c.Redis.applyDefaults(d)
		scope = ScopeGlobal
	}
	for name, u := range c.Upstreams {
		if u == nil {
			u = &Upstream{}
			c.Upstreams[name] = u
		}
		u.applyDefaults(d, "upstreams."+name)
		set(d, "upstreams."+name+".job_concurrency", &u.JobConcurrency, c.Jobs.Concurrency)
		set(d, "upstreams."+name+".rate_limit.scope", &u.RateLimit.Scope, scope)
	}
}

func (u *Upstream) applyDefaults(d defaulter, p string) {
	u.Timeouts.inherit(d, p+".timeouts", Timeouts{
		Connect: Duration(DefaultConnectTimeout),
		PerTry:  Duration(DefaultPerTryTimeout),
		Overall: Duration(DefaultOverallTimeout),
	})
	rl, rp := &u.RateLimit, p+".rate_limit"
	set(d, rp+".burst", &rl.Burst, 1)
	set(d, rp+".on_limit", &rl.OnLimit, OnLimitWait)
	set(d, rp+".max_wait", &rl.MaxWait, Duration(DefaultMaxWait))
	set(d, rp+".headroom", &rl.Headroom, DefaultHeadroom)
	set(d, rp+".adaptive", &rl.Adaptive, rl.Rate.IsZero())
	b, bp := &u.Breaker, p+".breaker"
	set(d, bp+".window", &b.Window, Duration(DefaultBreakerWindow))
	set(d, bp+".min_calls", &b.MinCalls, DefaultBreakerMinCalls)
	set(d, bp+".failure_rate", &b.FailureRate, DefaultBreakerFailureRate)
	set(d, bp+".slow_call_rate", &b.SlowCallRate, DefaultBreakerSlowCallRate)
	set(d, bp+".slow_call_duration", &b.SlowCallDuration, Duration(DefaultBreakerSlowCall))
	set(d, bp+".open_duration", &b.OpenDuration, Duration(DefaultBreakerOpenDuration))
	set(d, bp+".half_open_calls", &b.HalfOpenCalls, DefaultBreakerHalfOpenCalls)
	set(d, bp+".failure_statuses", &b.FailureStatuses, DefaultFailureStatuses)
	u.Retry.inherit(d, p+".retry", Retry{
		MaxAttempts: DefaultRetryMaxAttempts,
		BaseDelay:   Duration(DefaultRetryBaseDelay),
		MaxDelay:    Duration(DefaultRetryMaxDelay),
		Statuses:    DefaultRetryStatuses,
		AllMethods:  false,
		BufferBody:  DefaultRetryBufferBody,
		Budget:      RetryBudget{Ratio: DefaultRetryBudgetRatio, MinPerSecond: DefaultRetryBudgetMin},
	})
	if len(u.Endpoints) == 0 && u.URL != "" {
		u.Endpoints = []Endpoint{{URL: u.URL}}
	}
	for i := range u.Endpoints {
		set(d, fmt.Sprintf("%s.endpoints[%d].weight", p, i), &u.Endpoints[i].Weight, 1)
	}
	h, hp, def := &u.Health, p+".health", DefaultHealth()
	set(d, hp+".window", &h.Window, def.Window)
	set(d, hp+".min_calls", &h.MinCalls, def.MinCalls)
	set(d, hp+".failure_margin", &h.FailureMargin, def.FailureMargin)
	set(d, hp+".failure_floor", &h.FailureFloor, def.FailureFloor)
	set(d, hp+".latency_margin", &h.LatencyMargin, def.LatencyMargin)
	set(d, hp+".latency_floor", &h.LatencyFloor, def.LatencyFloor)
	set(d, hp+".max_isolated", &h.MaxIsolated, def.MaxIsolated)
	set(d, hp+".base_isolation", &h.BaseIsolation, def.BaseIsolation)
	set(d, hp+".max_isolation", &h.MaxIsolation, def.MaxIsolation)
	set(d, hp+".probe_share", &h.ProbeShare, def.ProbeShare)
	set(d, hp+".probe_calls", &h.ProbeCalls, def.ProbeCalls)
	if u.Cost != nil {
		set(d, p+".cost.currency", &u.Cost.Currency, DefaultCurrency)
	}
	if q := u.Quota; q != nil {
		set(d, p+".quota.timezone", &q.Timezone, DefaultQuotaZone)
		set(d, p+".quota.warn_at", &q.WarnAt, []int{80, 95})
		set(d, p+".quota.on_exhausted", &q.OnExhausted, OnExhaustedReject)
	}
	set(d, p+".mode", &u.Mode, ModeSync)
	set(d, p+".forwarded", &u.Forwarded, ForwardedNone)
	u.Cache.applyDefaults(d, p+".cache")
	for i, r := range u.Routes {
		if r == nil {
			continue
		}
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		set(d, rp+".mode", &r.Mode, u.Mode)
		set(d, rp+".cache", &r.Cache, u.Cache)
		r.Cache.applyDefaults(d, rp+".cache")
		set(d, rp+".name", &r.Name, r.Match)
		if r.Cost != nil {
			set(d, rp+".cost.currency", &r.Cost.Currency, DefaultCurrency)
		}
		set(d, rp+".timeouts.per_try", &r.Timeouts.PerTry, u.Timeouts.PerTry)
		set(d, rp+".timeouts.overall", &r.Timeouts.Overall, u.Timeouts.Overall)
		r.Retry.inherit(d, rp+".retry", u.Retry)
	}
}

func (c *Cache) applyDefaults(d defaulter, p string) {
	if c != nil {
		set(d, p+".coalesce_wait", &c.CoalesceWait, Duration(DefaultCacheCoalesceWait))
		set(d, p+".targeted_fields", &c.TargetedFields, []string{DefaultCacheTargetedField})
	}
}

func (t *Timeouts) inherit(d defaulter, p string, from Timeouts) {
	set(d, p+".overall", &t.Overall, from.Overall)
	set(d, p+".per_try", &t.PerTry, min(from.PerTry, t.Overall))
	set(d, p+".connect", &t.Connect, min(from.Connect, t.PerTry))
}

func (r *Retry) inherit(d defaulter, p string, from Retry) {
	set(d, p+".max_attempts", &r.MaxAttempts, from.MaxAttempts)
	set(d, p+".base_delay", &r.BaseDelay, from.BaseDelay)
	set(d, p+".max_delay", &r.MaxDelay, from.MaxDelay)
	set(d, p+".buffer_body", &r.BufferBody, from.BufferBody)
	set(d, p+".budget.ratio", &r.Budget.Ratio, from.Budget.Ratio)
	set(d, p+".budget.min_per_second", &r.Budget.MinPerSecond, from.Budget.MinPerSecond)
	set(d, p+".statuses", &r.Statuses, from.Statuses)
	set(d, p+".all_methods", &r.AllMethods, from.AllMethods)
}

// checker collects problems by path.
type checker struct{ problems []Problem }

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) check(ok bool, path, format string, args ...any) {
	if !ok {
		c.add(path, format, args...)
	}
}

// warn records what is accepted but will surprise an operator: said
// beside the errors, never a reason to refuse the config.
func (c *checker) warn(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// checkChoice checks that value is one of choices, naming them, and the
// nearest one when value looks like a misspelling of it.
func (c *checker) checkChoice(value, path string, choices ...string) {
	if oneOf(value, choices...) {
		return
	}
	msg := fmt.Sprintf("%q is not one of %s", value, strings.Join(choices, ", "))
	if near := Nearest(value, choices); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	c.add(path, "%s", msg)
}

var upstreamName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// validate reports every problem in a defaulted config. It expands secrets.
func (c *Config) validate(lookup func(string) (string, bool)) []Problem {
	v := &checker{}
	v.checkAddr("listen", c.Listen)
	if c.Admin.Listen != "off" {
		v.checkAddr("admin.listen", c.Admin.Listen)
		if err := c.Admin.Token.expand(lookup); err != nil {
			v.add("admin.token", "%v", err)
		}
		if n := len(c.Admin.Token.Value()); n > 0 && n < MinAdminTokenBytes {
			v.add("admin.token", "is %d bytes; at least %d are required (leave it unset to have Seawall generate one into %s)", n, MinAdminTokenBytes, c.AdminTokenFile())
		}
	}
	v.checkChoice(c.Engine, "engine", EngineNetHTTP, EngineFastHTTP)
	v.checkChoice(c.Log.Level, "log.level", "debug", "info", "warn", "error")
	v.checkChoice(c.Log.Format, "log.format", "json", "text")
	v.check(len(c.Upstreams) > 0, "upstreams", "at least one upstream is required")
	v.check(c.Zone == "" || zoneName.MatchString(c.Zone), "zone", "must be letters, digits, '.', '-' or '_' (at most 64)")
	v.check(c.Cache.MaxEntry <= c.Cache.MaxBytes, "cache.max_entry", "must not exceed cache.max_bytes")
	v.check(!c.Cache.Shared || c.Redis != nil, "cache.shared", "needs a redis block: the shared level is kept in Redis")
	v.check(!c.Cache.Shared || c.Cache.MaxEntry <= c.Cache.SharedMaxBytes, "cache.shared_max_bytes", "must not be under cache.max_entry")
	v.check(c.Jobs.MaxAttempts >= 1, "jobs.max_attempts", "must be >= 1")
	v.check(c.Jobs.Concurrency >= 1, "jobs.concurrency", "must be >= 1")
	v.check(c.Limits.BodyReadTimeout > 0, "limits.body_read_timeout", "must be > 0")
	c.Incidents.validate(v, lookup)
	if c.Redis != nil {
		c.Redis.validate(v, lookup)
	}
	v.check(c.Limits.WriteTimeout > 0, "limits.write_timeout", "must be > 0")
	v.check(c.Jobs.EnqueueTimeout > 0, "jobs.enqueue_timeout", "must be > 0")
	v.check(c.Jobs.MaxDelay >= c.Jobs.BaseDelay, "jobs.max_delay", "must be >= base_delay")
	for i, d := range c.Jobs.Schedule {
		v.check(d > 0, fmt.Sprintf("jobs.schedule[%d]", i), "must be > 0")
	}
	v.check(c.Jobs.MaxAge >= 0, "jobs.max_age", "must be >= 0 (0: no limit)")
	v.check(c.Jobs.Retention > 0, "jobs.retention", "must be > 0")
	v.check(c.Jobs.DeadRetention > 0, "jobs.dead_retention", "must be > 0")
	v.check(c.Jobs.MaxResult > 0, "jobs.max_result", "must be > 0")
	c.Jobs.Callbacks.validate(v, "jobs.callbacks", lookup)
	if c.UsesAsync() {
		checkStorePath(v, "jobs.store", c.Jobs.Store)
	}
	c.warnings(v)
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := "upstreams." + name
		v.check(upstreamName.MatchString(name), p, "name must be lower-case letters, digits, '-' or '_'")
		v.check(!strings.HasPrefix(name, "seawall") && name != "_seawall", p, "names starting with seawall are reserved")
		c.Upstreams[name].validate(v, p, lookup)
		if c.Upstreams[name].RateLimit.Scope == ScopeGlobal && c.Redis == nil {
			v.add(p+".rate_limit.scope", "global shares the pace through Redis: set a redis block, or leave scope unset")
		}
	}
	return v.problems
}

func (u *Upstream) validate(v *checker, p string, lookup func(string) (string, bool)) {
	v.check(u.JobConcurrency >= 1, p+".job_concurrency", "must be >= 1")
	u.validateEndpoints(v, p)
	hdrs := make([]string, 0, len(u.Headers))
	for h := range u.Headers {
		hdrs = append(hdrs, h)
	}
	sort.Strings(hdrs)
	for _, h := range hdrs {
		s := u.Headers[h]
		if err := s.expand(lookup); err != nil {
			v.add(p+".headers."+h, "%v", err)
		}
		u.Headers[h] = s
		v.check(validHeaderName(h), p+".headers."+h, "not a valid header name")
		v.check(validHeaderValue(s.Value()), p+".headers."+h, "the value holds a line break or another control character (from a secret file with a trailing newline?): it cannot be sent in a header")
	}
	v.checkChoice(u.Forwarded, p+".forwarded", ForwardedNone, ForwardedXForwarded, ForwardedRFC7239)
	u.Timeouts.validate(v, p+".timeouts")
	if u.TLS != nil {
		for _, e := range u.Endpoints {
			u.TLS.validate(v, p+".tls", e.URL)
		}
	}
	validateMode(v, p, u.Mode, u.Cache)
	u.Cost.validate(v, p+".cost")
	u.Quota.validate(v, p+".quota")
	u.RateLimit.validate(v, p+".rate_limit")
	u.Breaker.validate(v, p+".breaker")
	u.Retry.validate(v, p+".retry")
	mux := http.NewServeMux()
	for i, r := range u.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		if r == nil {
			v.add(rp, "empty route")
			continue
		}
		if r.Match == "" {
			v.add(rp+".match", "required")
		} else if err := registerPattern(mux, r.Match); err != nil {
			v.add(rp+".match", "%v", err)
		}
		Timeouts{PerTry: r.Timeouts.PerTry, Overall: r.Timeouts.Overall}.validate(v, rp+".timeouts")
		r.Retry.validate(v, rp+".retry")
		validateMode(v, rp, r.Mode, r.Cache)
		r.Cost.validate(v, rp+".cost")
		if r.Cost != nil && u.Cost != nil && r.Cost.Currency != u.Cost.Currency {
			v.add(rp+".cost.currency", "is %s, the upstream's is %s: one upstream is priced in one currency", r.Cost.Currency, u.Cost.Currency)
		}
	}
}

// validateEndpoints checks url or endpoints, each endpoint, and the
// health knobs.
func (u *Upstream) validateEndpoints(v *checker, p string) {
	switch {
	case u.URL != "" && (len(u.Endpoints) != 1 || u.Endpoints[0] != Endpoint{URL: u.URL, Weight: 1}):
		v.add(p+".url", "set url (one endpoint) or endpoints, not both")
		return
	case len(u.Endpoints) == 0:
		v.add(p+".url", "required (or endpoints)")
		return
	case u.URL != "":
		checkBaseURL(v, p+".url", u.URL)
	}
	seen := map[string]bool{}
	zoned := 0
	for i, e := range u.Endpoints {
		ep := fmt.Sprintf("%s.endpoints[%d]", p, i)
		if u.URL == "" {
			checkBaseURL(v, ep+".url", e.URL)
		}
		v.check(!seen[e.URL], ep+".url", "listed twice")
		seen[e.URL] = true
		v.check(e.Weight >= 1 && e.Weight <= 1000, ep+".weight", "must be in [1, 1000]")
		v.check(e.Zone == "" || zoneName.MatchString(e.Zone), ep+".zone", "must be letters, digits, '.', '-' or '_' (at most 64)")
		if e.Zone != "" {
			zoned++
		}
	}
	v.check(zoned == 0 || zoned == len(u.Endpoints), p+".endpoints", "name a zone for every endpoint or for none")
	h, hp := u.Health, p+".health"
	v.check(h.Window >= Duration(time.Second), hp+".window", "must be at least 1s")
	v.check(h.MinCalls >= 1, hp+".min_calls", "must be >= 1")
	v.check(h.FailureMargin > 0, hp+".failure_margin", "must be > 0")
	v.check(h.FailureFloor <= 100, hp+".failure_floor", "must be at most 100%%")
	v.check(h.LatencyMargin > 0, hp+".latency_margin", "must be > 0")
	v.check(h.MaxIsolated <= 100, hp+".max_isolated", "must be at most 100%%")
	v.check(h.BaseIsolation >= Duration(time.Second), hp+".base_isolation", "must be at least 1s")
	v.check(h.MaxIsolation >= h.BaseIsolation, hp+".max_isolation", "must be >= base_isolation")
	v.check(h.ProbeShare > 0 && h.ProbeShare <= 50, hp+".probe_share", "must be in (0, 50%%]")
	v.check(h.ProbeCalls >= 1 && h.ProbeCalls <= 1000, hp+".probe_calls", "must be in [1, 1000]")
}

var zoneName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkBaseURL checks an upstream's or an endpoint's base URL.
func checkBaseURL(v *checker, p, raw string) {
	switch pu, err := url.Parse(raw); {
	case raw == "":
		v.add(p, "required")
	case err != nil:
		v.add(p, "not a URL: %v", err)
	case pu.Scheme != "http" && pu.Scheme != "https":
		v.add(p, "scheme must be http or https, got %q", pu.Scheme)
	case pu.Host == "":
		v.add(p, "has no host")
	case pu.RawQuery != "" || pu.Fragment != "":
		v.add(p, "must not have a query or fragment")
	}
}

// registerPattern checks a route pattern with the ServeMux that will match it.
func registerPattern(mux *http.ServeMux, pattern string) (err error) {
	fields := strings.Fields(pattern)
	if len(fields) == 0 || len(fields) > 2 || !strings.HasPrefix(fields[len(fields)-1], "/") {
		return fmt.Errorf("invalid pattern %q: want [METHOD] /path, like \"GET /v1/items/{id}\"", pattern)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// validate checks the callback hosts and expands the signing secret.
func (cb *Callbacks) validate(v *checker, p string, lookup func(string) (string, bool)) {
	v.check(cb.MaxAttempts >= 1, p+".max_attempts", "must be >= 1")
	v.check(cb.Timeout > 0, p+".timeout", "must be > 0")
	for i, h := range cb.AllowedHosts {
		u, err := url.Parse("http://" + h)
		v.check(err == nil && u.Host == h && h != "" && u.Path == "", fmt.Sprintf("%s.allowed_hosts[%d]", p, i), "must be a host or host:port, like app.internal:8080")
	}
	if err := cb.Secret.expand(lookup); err != nil {
		v.add(p+".secret", "%v", err)
		return
	}
	switch {
	case len(cb.AllowedHosts) > 0 && cb.Secret.Value() == "":
		v.add(p+".secret", "required when allowed_hosts is set: callbacks are always signed")
	case cb.Secret.Value() != "":
		if _, err := webhook.Key(cb.Secret.Value()); err != nil {
			v.add(p+".secret", "%v", err)
		}
	}
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (c *Cost) validate(v *checker, p string) {
	if c == nil {
		return
	}
	v.check(c.PerCall <= 1_000_000*MoneyScale, p+".per_call", "must be at most 1000000 a call")
	v.check(currencyCode.MatchString(c.Currency), p+".currency", "must be an ISO 4217 code, like USD or EUR")
}

func (q *Quota) validate(v *checker, p string) {
	if q == nil {
		return
	}
	v.check(q.Daily >= 0 && q.Monthly >= 0, p, "daily and monthly must not be negative")
	v.check(q.Daily > 0 || q.Monthly > 0, p, "set daily, monthly or both")
	if _, err := time.LoadLocation(q.Timezone); err != nil {
		v.add(p+".timezone", "unknown time zone %q: want an IANA name like UTC or Europe/Paris", q.Timezone)
	}
	for i, w := range q.WarnAt {
		v.check(w >= 1 && w <= 99 && (i == 0 || w > q.WarnAt[i-1]), fmt.Sprintf("%s.warn_at[%d]", p, i), "must be percentages in [1, 99], rising")
	}
	v.checkChoice(q.OnExhausted, p+".on_exhausted", OnExhaustedReject, OnExhaustedAlert)
}

func (in *Incidents) validate(v *checker, lookup func(string) (string, bool)) {
	v.check(in.ResolveAfter >= Duration(time.Second), "incidents.resolve_after", "must be at least 1s")
	v.check(in.QueueAgeHigh >= Duration(time.Second), "incidents.queue_age_high", "must be at least 1s")
	v.check(in.KeepEvents >= 100 && in.KeepEvents <= 1_000_000, "incidents.keep_events", "must be in [100, 1000000]")
	v.check(in.KeepIncidents >= 10 && in.KeepIncidents <= 100_000, "incidents.keep_incidents", "must be in [10, 100000]")
	severity := func(p, s string) {
		v.checkChoice(s, p, "info", "warning", "error", "critical")
	}
	if pd := in.PagerDuty; pd != nil {
		p := "incidents.pagerduty"
		if err := pd.RoutingKey.expand(lookup); err != nil {
			v.add(p+".routing_key", "%v", err)
		} else {
			v.check(pd.RoutingKey.Value() != "", p+".routing_key", "required")
			v.check(validHeaderValue(pd.RoutingKey.Value()), p+".routing_key", "holds a line break or another control character (a secret file with a trailing newline?)")
		}
		checkBaseURL(v, p+".url", pd.URL)
		severity(p+".min_severity", pd.MinSeverity)
	}
	for i, w := range in.Webhooks {
		p := fmt.Sprintf("incidents.webhooks[%d]", i)
		if w == nil {
			v.add(p, "empty webhook")
			continue
		}
		checkBaseURL(v, p+".url", w.URL)
		severity(p+".min_severity", w.MinSeverity)
		if err := w.Secret.expand(lookup); err != nil {
			v.add(p+".secret", "%v", err)
			continue
		}
		if w.Secret.Value() == "" {
			v.add(p+".secret", "required: incident webhooks are always signed")
		} else if _, err := webhook.Key(w.Secret.Value()); err != nil {
			v.add(p+".secret", "%v", err)
		}
	}
}

func validateMode(v *checker, p, mode string, c *Cache) {
	v.checkChoice(mode, p+".mode", ModeSync, ModeCached, ModeAsync, ModeDeferred)
	if mode == ModeCached && c == nil {
		v.add(p+".cache", "required when mode is cached")
	}
	if c == nil {
		return
	}
	for field, list := range map[string][]string{"key_headers": c.KeyHeaders, "identity_headers": c.IdentityHeaders, "targeted_fields": c.TargetedFields} {
		for i, h := range list {
			v.check(validHeaderName(h), fmt.Sprintf("%s.cache.%s[%d]", p, field, i), "not a valid header name")
		}
	}
	for i, h := range c.TargetedFields {
		// The fields a targeted one replaces cannot be one.
		v.check(!strings.EqualFold(h, "Cache-Control") && !strings.EqualFold(h, "Expires"), fmt.Sprintf("%s.cache.targeted_fields[%d]", p, i),
			"%s is what a targeted field replaces; name a field such as CDN-Cache-Control or Seawall-Cache-Control", h)
	}
}

func (t Timeouts) validate(v *checker, p string) {
	v.check(t.PerTry <= t.Overall, p+".per_try", "must not exceed overall (%s)", t.Overall.D())
	v.check(t.Connect <= t.PerTry || t.Connect == 0, p+".connect", "must not exceed per_try (%s)", t.PerTry.D())
	v.check(t.Overall > 0, p+".overall", "must be > 0")
}

func (r RateLimit) validate(v *checker, p string) {
	v.check(r.Burst >= 1, p+".burst", "must be >= 1")
	v.checkChoice(r.OnLimit, p+".on_limit", OnLimitWait, OnLimitReject)
	v.checkChoice(r.Scope, p+".scope", ScopeGlobal, ScopeLocal)
	if r.KeyHeader != "" {
		v.check(validHeaderName(r.KeyHeader), p+".key_header", "not a valid header name")
	}
	v.check(r.Headroom >= 0 && r.Headroom <= 50, p+".headroom", "must be a percentage in [0, 50]")
}

func (b Breaker) validate(v *checker, p string) {
	v.check(b.MinCalls >= 1, p+".min_calls", "must be >= 1")
	v.check(b.FailureRate > 0 && b.FailureRate <= 100, p+".failure_rate", "must be a percentage in (0, 100]")
	v.check(b.SlowCallRate > 0 && b.SlowCallRate <= 100, p+".slow_call_rate", "must be a percentage in (0, 100]")
	v.check(b.Window >= Duration(time.Second), p+".window", "must be at least 1s")
	v.check(b.HalfOpenCalls >= 1, p+".half_open_calls", "must be >= 1")
	v.check(b.MaxOpenDuration == 0 || b.MaxOpenDuration >= b.OpenDuration, p+".max_open_duration", "must be 0 or >= open_duration (%s)", b.OpenDuration.D())
	checkStatuses(v, p+".failure_statuses", b.FailureStatuses)
}

func (r Retry) validate(v *checker, p string) {
	v.check(r.MaxAttempts >= 1, p+".max_attempts", "must be >= 1")
	v.check(r.MaxDelay >= r.BaseDelay, p+".max_delay", "must be >= base_delay (%s)", r.BaseDelay.D())
	v.check(r.Budget.Ratio >= 0 && r.Budget.Ratio <= 1, p+".budget.ratio", "must be between 0 and 1")
	v.check(r.Budget.MinPerSecond >= 0, p+".budget.min_per_second", "must be >= 0")
	checkStatuses(v, p+".statuses", r.Statuses)
}

func checkStatuses(v *checker, p string, list []string) {
	for i, s := range list {
		if _, _, err := ParseStatus(s); err != nil {
			v.add(fmt.Sprintf("%s[%d]", p, i), "%v", err)
		}
	}
}

// ParseStatus parses a status code ("503") or class ("5xx") into the
// inclusive range it covers.
func ParseStatus(s string) (lo, hi int, err error) {
	if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		c := int(s[0]-'0') * 100
		return c, c + 99, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, 0, fmt.Errorf("invalid status %q: want a code like \"503\" or a class like \"5xx\"", s)
	}
	return n, n, nil
}

func (c *checker) checkAddr(p, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		c.add(p, "want host:port, like 127.0.0.1:8080: %v", err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.add(p, "invalid port %q", port)
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func oneOf(s string, choices ...string) bool {
	for _, c := range choices {
		if s == c {
			return true
		}
	}
	return false
}

// validHeaderValue reports whether v may be sent as a header field value
// (RFC 9110 §5.5): no CR, LF, NUL or other control character but tab.
func validHeaderValue(v string) bool {
	for _, r := range v {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

// warnings says what the config allows but an operator would not expect.
func (c *Config) warnings(v *checker) {
	if !isLoopback(c.Listen) {
		v.warn("listen", "%s is reachable from other machines: whoever reaches it can call every configured upstream with the credentials Seawall injects; keep it on loopback, or behind a network policy or an authenticating proxy", c.Listen)
	}
	if c.Admin.Listen != "off" && !isLoopback(c.Admin.Listen) {
		v.warn("admin.listen", "%s is reachable from other machines: the admin token is then all that guards the job bodies, shifts and reloads", c.Admin.Listen)
	}
	if c.Admin.Listen != "off" {
		if why := weakToken(c.Admin.Token.Value()); why != "" {
			v.warn("admin.token", "looks weak (%s); use a random one, such as the output of `openssl rand -hex 32`, or leave it unset to have Seawall generate one", why)
		}
	}
	if cb := c.Jobs.Callbacks; len(cb.AllowedHosts) > 0 && cb.Timeout.D() > MaxCallbackTimeout {
		v.warn("jobs.callbacks.timeout", "%s is longer than a callback attempt may run (%s): attempts are cut off then", cb.Timeout.D(), MaxCallbackTimeout)
	}
	if !c.UsesAsync() || isPostgres(c.Jobs.Store) {
		return
	}
	if rel, err := filepath.Rel(filepath.Clean(c.DataDir), filepath.Clean(c.Jobs.Store)); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		v.warn("jobs.store", "%s is outside data_dir (%s): back up, and protect, both", c.Jobs.Store, c.DataDir)
	}
}

// weakToken says why token looks weak, or "" when it does not: few
// distinct characters, or a placeholder word.
func weakToken(token string) string {
	if token == "" {
		return "" // generated at first start
	}
	lower := strings.ToLower(token)
	for _, w := range []string{"changeme", "password", "example", "123456", "qwerty", "letmein"} {
		if strings.Contains(lower, w) {
			return fmt.Sprintf("it holds %q", w)
		}
	}
	distinct := map[rune]bool{}
	for _, r := range token {
		distinct[r] = true
	}
	if len(distinct) < 10 {
		return fmt.Sprintf("only %d distinct characters", len(distinct))
	}
	return ""
}

// isPostgres reports whether a jobs.store value is a PostgreSQL URL.
func isPostgres(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// checkStorePath checks that an embedded job store's file can be created
// where the config says: its directory exists and is writable, or can be
// made under a writable ancestor. A postgres:// URL is checked when the
// store is opened.
func checkStorePath(v *checker, p, store string) {
	if isPostgres(store) {
		return
	}
	dir := filepath.Dir(store)
	for {
		info, err := os.Stat(dir)
		switch {
		case err == nil && !info.IsDir():
			v.add(p, "cannot create %s: %s is not a directory", store, dir)
			return
		case err == nil:
			if unix.Access(dir, unix.W_OK) != nil {
				v.add(p, "cannot create %s: the directory %s is not writable", store, dir)
			}
			return
		case !os.IsNotExist(err):
			v.add(p, "cannot create %s: %v", store, err)
			return
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if r > 127 || !strings.ContainsRune("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", r) {
			return false
		}
	}
	return true
}
