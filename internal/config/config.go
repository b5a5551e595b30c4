// Package config defines Seawall's configuration file, loads it strictly and
// validates it, reporting every problem with its file, line and path.
//
// The lifecycle is: decode (unknown keys are errors) → defaults from the named
// constants below → Validate (all problems at once) → build runtime objects.
package config

import (
	"path/filepath"
	"time"

	"github.com/seawall/seawall/internal/ratelimit"
)

// Defaults for keys a file leaves out; a key that is written keeps its
// value, even zero. Each field's comment names the default it takes.
const (
	DefaultListen          = "127.0.0.1:8080"
	EngineNetHTTP          = "net/http"
	EngineFastHTTP         = "fasthttp"
	DefaultEngine          = EngineFastHTTP
	DefaultAdminListen     = "127.0.0.1:9090"
	DefaultMaxRequestBody  = 10 << 20
	DefaultMaxResponseBody = 50 << 20
	DefaultBodyReadTimeout = 15 * time.Second
	DefaultWriteTimeout    = 15 * time.Second

	DefaultLogLevel  = "info"
	DefaultLogFormat = "json"

	// DefaultMinSeverity is the least severity a notification sink is sent.
	DefaultMinSeverity = "warning"
	DefaultCurrency    = "USD"
	DefaultQuotaZone   = "UTC"

	DefaultConnectTimeout = 2 * time.Second
	DefaultPerTryTimeout  = 10 * time.Second
	DefaultOverallTimeout = 30 * time.Second

	DefaultMaxWait = time.Second

	// DefaultHeadroom is rate_limit.headroom's default, in percent: the pace
	// is kept this far under the configured rate so that jitter between a
	// call's release and its arrival never lands two calls closer than the
	// vendor's interval (docs/ratelimit.md has the measurement).
	DefaultHeadroom = 100 * ratelimit.DefaultHeadroom

	DefaultBreakerWindow        = 10 * time.Second
	DefaultBreakerMinCalls      = 20
	DefaultBreakerFailureRate   = 80
	DefaultBreakerSlowCallRate  = 100
	DefaultBreakerSlowCall      = 5 * time.Second
	DefaultBreakerOpenDuration  = 5 * time.Second
	DefaultBreakerHalfOpenCalls = 3

	DefaultRetryMaxAttempts = 3
	DefaultRetryBaseDelay   = 100 * time.Millisecond
	DefaultRetryMaxDelay    = 2 * time.Second
	DefaultRetryBudgetRatio = 0.2
	DefaultRetryBudgetMin   = 3
	DefaultRetryBufferBody  = 64 << 10

	DefaultCacheMaxBytes       = 64 << 20
	DefaultCacheMaxEntry       = 1 << 20
	DefaultCacheSharedMaxBytes = 256 << 20
	DefaultCacheCoalesceWait   = 10 * time.Second
	DefaultCacheTargetedField  = "CDN-Cache-Control"

	DefaultDataDir   = "data"
	DefaultJobsStore = "data/seawall-jobs.db"

	// MaxCallbackTimeout is the longest one callback attempt may run: a
	// longer jobs.callbacks.timeout is cut off there, and validate warns.
	MaxCallbackTimeout = 30 * time.Second

	// MinAdminTokenBytes is the shortest admin token validate accepts.
	MinAdminTokenBytes = 16
	// AdminTokenFileName is the file under data_dir holding the admin
	// token Seawall generates when admin.token is not set.
	AdminTokenFileName = "admin-token"
)

// DefaultFailureStatuses are the upstream statuses the breaker counts as
// failures when breaker.failure_statuses is unset. A 429 is not among
// them: it is a rate signal, answered by pausing and adapting the rate,
// and a vendor that throttles is not sick.
var DefaultFailureStatuses = []string{"5xx"}

// DefaultRetryStatuses are the upstream statuses retried when retry.statuses is unset.
var DefaultRetryStatuses = []string{"429", "502", "503", "504"}

// Config is the whole configuration file.
type Config struct {
	// Listen is the address of the application-facing listener.
	// Default DefaultListen (loopback only).
	Listen string `yaml:"listen"`
	// H2C also serves HTTP/2 without TLS on Listen, to apps that speak it
	// with prior knowledge (RFC 9113 §3.3), beside HTTP/1.1 on the same
	// port. Default false: only HTTP/1.x.
	H2C bool `yaml:"h2c"`
	// Engine is the server that reads HTTP/1.x from apps on Listen:
	// EngineNetHTTP (Go's net/http) or EngineFastHTTP (fasthttp, cheaper
	// a request; ADR 0006). Default DefaultEngine (fasthttp). HTTP/2 (H2C) and the
	// admin listener are served by net/http either way.
	Engine string `yaml:"engine"`
	// Admin configures the operator listener (metrics, health).
	Admin Admin `yaml:"admin"`
	// Log configures structured logging.
	Log Log `yaml:"log"`
	// Limits bounds request and response sizes for all upstreams.
	Limits Limits `yaml:"limits"`
	// Jobs configures the durable queue behind async mode.
	Jobs Jobs `yaml:"jobs"`
	// Cache bounds the response cache shared by all cached routes.
	Cache CacheLimits `yaml:"cache"`
	// DataDir holds what Seawall writes for itself: the generated admin
	// token (and, by default, the embedded job store). Default
	// DefaultDataDir, relative to the working directory.
	DataDir string `yaml:"data_dir"`
	// ShutdownGrace is how long in-flight calls may finish after a stop
	// signal. Default 15s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Incidents groups events into incidents (docs/incidents.md).
	Incidents Incidents `yaml:"incidents"`
	// Redis, when set, shares each global upstream's pace and pauses among
	// the replicas (docs/distributed.md). Unset: nothing is shared and no
	// external service is needed.
	Redis *Redis `yaml:"redis"`
	// Zone is the zone Seawall itself runs in. Where an upstream's
	// endpoints name zones, calls prefer the endpoints in this one while
	// enough of them are available. Unset: no preference.
	Zone string `yaml:"zone"`
	// Upstreams maps the first path segment of a request to a third party.
	// At least one is required.
	Upstreams map[string]*Upstream `yaml:"upstreams"`

	// Warnings are what the file asks for that is accepted but would
	// surprise an operator (validate prints them, serve logs them).
	Warnings Problems `yaml:"-"`
}

// Admin is the operator listener.
type Admin struct {
	// Listen is the admin address. Default DefaultAdminListen; "off" disables it.
	Listen string `yaml:"listen"`
	// Token is the bearer token required on every admin endpoint except
	// /healthz, at least MinAdminTokenBytes long. When unset, Seawall
	// generates one at first start into AdminTokenFile.
	Token Secret `yaml:"token"`
}

// AdminTokenFile is where the generated admin token is kept when
// admin.token is not set.
func (c *Config) AdminTokenFile() string {
	return filepath.Join(c.DataDir, AdminTokenFileName)
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// Limits bounds sizes.
type Limits struct {
	// MaxRequestBody is the largest request body accepted; larger ones get 413.
	// Default DefaultMaxRequestBody (10MiB).
	MaxRequestBody Size `yaml:"max_request_body"`
	// MaxResponseBody is the largest upstream response body relayed; a larger
	// one is cut off and answered 502. Default DefaultMaxResponseBody (50MiB).
	MaxResponseBody Size `yaml:"max_response_body"`
	// BodyReadTimeout is how long after its head an app's request body may
	// take to arrive whole; past it the app gets 408. Default 15s.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// WriteTimeout is how long one write of an answer to the app may
	// block (an app that does not read); past it the connection is cut.
	// Default 15s.
	WriteTimeout Duration `yaml:"write_timeout"`
}

// CacheLimits bounds the in-memory response cache.
type CacheLimits struct {
	// MaxBytes is the most the cache holds; least recently used entries are
	// evicted past it. Default DefaultCacheMaxBytes (64MiB).
	MaxBytes Size `yaml:"max_bytes"`
	// MaxEntry is the largest response stored; larger ones pass through
	// uncached. Default DefaultCacheMaxEntry (1MiB).
	MaxEntry Size `yaml:"max_entry"`
	// Shared keeps cached responses in Redis too, where every replica
	// reads them (docs/distributed.md, "The cache"). Default true with a
	// redis block; it needs one.
	Shared bool `yaml:"shared"`
	// SharedMaxBytes is the most the shared level holds in Redis; past
	// it, the entries closest to expiring go first. Default
	// DefaultCacheSharedMaxBytes (256MiB).
	SharedMaxBytes Size `yaml:"shared_max_bytes"`
}

// Forwarding header styles (Upstream.Forwarded).
const (
	ForwardedNone       = "none"
	ForwardedXForwarded = "x-forwarded"
	ForwardedRFC7239    = "forwarded"
)

// Access modes.
const (
	ModeSync     = "sync"
	ModeCached   = "cached"
	ModeAsync    = "async"
	ModeDeferred = "deferred"
)

// DefaultJobs is Jobs with every key at its default (Store aside, which
// follows data_dir): the one table of the job store's defaults.
func DefaultJobs() Jobs {
	return Jobs{
		MaxAttempts:       10,
		BaseDelay:         Duration(time.Second),
		MaxDelay:          Duration(5 * time.Minute),
		Fsync:             true,
		MaxAge:            Duration(24 * time.Hour),
		Retention:         Duration(24 * time.Hour),
		DeadRetention:     Duration(7 * 24 * time.Hour),
		MaxResult:         Size(1 << 20),
		Callbacks:         Callbacks{MaxAttempts: 10, Timeout: Duration(10 * time.Second)},
		VisibilityTimeout: Duration(5 * time.Minute),
		EnqueueTimeout:    Duration(5 * time.Second),
		Concurrency:       4,
	}
}

// Jobs configures the durable job store and its consumers.
type Jobs struct {
	// Store is where accepted jobs live: a SQLite file path (the embedded
	// default) or a postgres:// URL for several replicas. Default
	// seawall-jobs.db in DataDir (DefaultJobsStore when DataDir is too).
	Store string `yaml:"store"`
	// Fsync makes every enqueue wait until its commit is flushed to disk
	// before the 202 (SQLite synchronous=FULL; on PostgreSQL the server's
	// own synchronous_commit, which Seawall leaves as it is). false acknowledges a commit that survives a
	// crash of Seawall but may be lost if the machine or database server
	// crashes. Default true.
	Fsync bool `yaml:"fsync"`
	// MaxAttempts dead-letters a job after this many failed deliveries.
	// Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// BaseDelay and MaxDelay space retries: capped exponential backoff with
	// full jitter. Defaults 1s and 5m.
	BaseDelay Duration `yaml:"base_delay"`
	MaxDelay  Duration `yaml:"max_delay"`
	// Schedule, when set, lists the delays before each retry, like
	// ["10s", "1m", "5m", "30m", "2h"]; retries past its end use the last.
	// It replaces base_delay and max_delay.
	Schedule []Duration `yaml:"schedule"`
	// MaxAge dead-letters a job not delivered this long after it was
	// accepted, however few attempts it has spent. Default 24h; 0 means
	// no limit.
	MaxAge Duration `yaml:"max_age"`
	// Retention is how long succeeded and canceled jobs are kept after they
	// finish, with deferred results and idempotency keys. Default 24h.
	Retention Duration `yaml:"retention"`
	// DeadRetention is how long dead jobs are kept for inspection and
	// replay. Default 168h (7 days).
	DeadRetention Duration `yaml:"dead_retention"`
	// MaxResult bounds the response body kept for a deferred job; a longer
	// body is cut and marked truncated. Default 1MiB.
	MaxResult Size `yaml:"max_result"`
	// EnqueueTimeout is how long an async request waits for the store to
	// commit it, and a job read for its answer, before 503
	// queue-unavailable. Default 5s.
	EnqueueTimeout Duration `yaml:"enqueue_timeout"`
	// VisibilityTimeout requeues a job whose consumer died mid-delivery.
	// Default 5m; it must exceed every route's overall timeout.
	VisibilityTimeout Duration `yaml:"visibility_timeout"`
	// Concurrency is how many deliveries run at once per upstream, unless
	// the upstream sets job_concurrency. Default 4.
	Concurrency int `yaml:"concurrency"`
	// Callbacks configures the POSTs that tell the app a job has ended.
	Callbacks Callbacks `yaml:"callbacks"`
}

// Callbacks configures job callbacks (the Seawall-Callback request header),
// signed in the Standard Webhooks format.
type Callbacks struct {
	// AllowedHosts lists the hosts (host or host:port) a callback may be
	// sent to; a request naming another is refused at enqueue. Empty means
	// callbacks are refused.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// Secret signs callbacks: base64, optionally prefixed "whsec_", at
	// least 16 bytes decoded. Required when allowed_hosts is set.
	Secret Secret `yaml:"secret"`
	// MaxAttempts bounds the tries of one callback, spaced by jobs.schedule
	// or base_delay/max_delay. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// Timeout bounds one callback POST. Default 10s.
	Timeout Duration `yaml:"timeout"`
}

// Cache is a route's caching policy, used in cached mode.
type Cache struct {
	// TTL is the freshness of responses that state none (no max-age,
	// s-maxage or Expires). Zero means only the response's headers decide.
	TTL Duration `yaml:"ttl"`
	// StaleWhileRevalidate serves an expired entry for this long while one
	// background request revalidates it, when the response says less.
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	// StaleIfError serves an expired entry for this long when the upstream
	// fails, times out, is rate limited or its breaker is open, when the
	// response says less.
	StaleIfError Duration `yaml:"stale_if_error"`
	// KeyHeaders are request headers added to the cache key (beyond Vary).
	KeyHeaders []string `yaml:"key_headers"`
	// KeyQuery, when set, lists the only query parameters in the key; unset
	// means the whole query.
	KeyQuery []string `yaml:"key_query"`
	// IdentityHeaders name the request headers that identify the caller; a
	// response is only served to requests with the same values. Authorization
	// and the rate limit's key_header always count.
	IdentityHeaders []string `yaml:"identity_headers"`
	// CoalesceWait bounds how long a request waits for another's identical
	// in-flight miss before going on its own. Default 10s.
	CoalesceWait Duration `yaml:"coalesce_wait"`
	// ShareCookies leaves Cookie out of the caller's identity, for APIs
	// whose cookies do not tell callers apart. Default false: a response
	// is only served to requests with the same Cookie.
	ShareCookies bool `yaml:"share_cookies"`
	// StoreSetCookie lets a response carrying Set-Cookie be stored; the
	// Set-Cookie itself is never stored nor replayed. Default false: such a
	// response is not stored.
	StoreSetCookie bool `yaml:"store_set_cookie"`
	// TargetedFields are the targeted cache-control fields (RFC 9213)
	// that, when a response carries one with a valid value, govern
	// Seawall's cache in place of Cache-Control and Expires, the first
	// present winning: a field of Seawall's own (say Seawall-Cache-Control)
	// can come before CDN-Cache-Control. Default [CDN-Cache-Control]; []
	// obeys Cache-Control alone.
	TargetedFields []string `yaml:"targeted_fields"`
}

// Upstream is one third-party API.
type Upstream struct {
	// URL is the base URL requests are forwarded to; the path after the
	// upstream name is appended to its path; http or https. It is the
	// one-endpoint shorthand: set url or endpoints.
	URL string `yaml:"url"`
	// Endpoints are the addresses of one third party (regions, zones or
	// hosts) sharing the upstream's policies, rate limit and credentials;
	// calls are balanced among them and a sick one is isolated. After
	// loading it always holds at least one endpoint (url's, if set).
	Endpoints []Endpoint `yaml:"endpoints"`
	// Health tunes how endpoints are judged and isolated.
	Health Health `yaml:"health"`
	// Cost is the vendor's price per call (docs/cost.md).
	Cost *Cost `yaml:"cost"`
	// Quota is the vendor's daily or monthly allowance of calls.
	Quota *Quota `yaml:"quota"`
	// Headers are set on every request to the upstream, replacing the app's
	// value; values may reference ${ENV_VAR} or ${file:/path}. Never logged.
	Headers map[string]Secret `yaml:"headers"`
	// Timeouts bounds each call.
	Timeouts Timeouts `yaml:"timeouts"`
	// RateLimit keeps calls within the third party's quota. Unset means unlimited.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Breaker stops calls while the third party is failing.
	Breaker Breaker `yaml:"breaker"`
	// Retry retries transient failures.
	Retry Retry `yaml:"retry"`
	// Mode is the default access mode: sync or cached. Default sync.
	// A request may ask for cached with Seawall-Mode where Cache is set.
	Mode string `yaml:"mode"`
	// Cache is the caching policy for cached mode.
	Cache *Cache `yaml:"cache"`
	// Forwarded is what the upstream is told of the app's request: "none"
	// (the default: nothing, so that internal addresses stay inside),
	// "x-forwarded" (X-Forwarded-For, -Proto and -Host) or "forwarded"
	// (RFC 7239). The app's own forwarding headers are never passed on.
	Forwarded string `yaml:"forwarded"`
	// JobConcurrency is how many of this upstream's jobs are delivered at
	// once. Default jobs.concurrency.
	JobConcurrency int `yaml:"job_concurrency"`
	// Routes override timeouts and retry for requests they match, first
	// match wins. Requests matching no route use the upstream's policies.
	Routes []*Route `yaml:"routes"`
	// TLS configures HTTPS to the upstream. Unset: the system's roots,
	// the URL's host name, TLS 1.2 or later.
	TLS *TLS `yaml:"tls"`
	// HTTP2 speaks HTTP/2 to an HTTPS upstream that offers it, through
	// net/http's client. Unset: HTTP/1.1 over keep-alive connections,
	// through Seawall's own client (docs/adr/0004-upstream-client.md).
	HTTP2 bool `yaml:"http2"`
}

// Cost is what the vendor charges per call.
type Cost struct {
	// PerCall is the price of one billable call, a decimal written as a
	// string ("0.002"), at most 9 decimal places: kept exact, never a
	// float. Required.
	PerCall Money `yaml:"per_call"`
	// Currency is an ISO 4217 code. Default USD.
	Currency string `yaml:"currency"`
}

// Quota is a vendor's allowance of billable calls.
type Quota struct {
	// Daily and Monthly are the calls allowed per local day and month;
	// zero means no such limit. One of them is required.
	Daily   int64 `yaml:"daily"`
	Monthly int64 `yaml:"monthly"`
	// Timezone is where the day and month begin (IANA name). Default UTC.
	Timezone string `yaml:"timezone"`
	// WarnAt are the percentages of a quota whose crossing is an event
	// (quota.warning). Default [80, 95].
	WarnAt []int `yaml:"warn_at"`
	// OnExhausted is reject (a 429 quota-exhausted until the period
	// resets; jobs wait) or alert (an event, and calls go on). Default
	// reject.
	OnExhausted string `yaml:"on_exhausted"`
}

// DefaultIncidents is Incidents with every key at its default: the one
// table of the incident timeline's defaults.
func DefaultIncidents() Incidents {
	return Incidents{
		ResolveAfter:  Duration(2 * time.Minute),
		QueueAgeHigh:  Duration(10 * time.Minute),
		KeepEvents:    10000,
		KeepIncidents: 500,
	}
}

// Incidents is how events are grouped into incidents.
type Incidents struct {
	// ResolveAfter is the quiet period: an incident resolves once all its
	// conditions have been clear this long. Default 2m.
	ResolveAfter Duration `yaml:"resolve_after"`
	// KeepEvents and KeepIncidents bound the timeline kept (in the job
	// store, or in memory), the oldest dropped first. Defaults 10000 and
	// 500.
	KeepEvents    int `yaml:"keep_events"`
	KeepIncidents int `yaml:"keep_incidents"`
	// QueueAgeHigh is how long an upstream's oldest unfinished job may
	// wait before it is an event (jobs.queue_age_high). Default 10m.
	QueueAgeHigh Duration `yaml:"queue_age_high"`
	// PagerDuty sends incidents to PagerDuty's Events API v2.
	PagerDuty *PagerDuty `yaml:"pagerduty"`
	// Webhooks receive incidents as signed JSON.
	Webhooks []*IncidentWebhook `yaml:"webhooks"`
}

// PagerDuty is where and how incidents are triggered and resolved.
type PagerDuty struct {
	// RoutingKey is the integration's key; a secret (${ENV} or
	// ${file:...}), never logged. Required.
	RoutingKey Secret `yaml:"routing_key"`
	// URL is the Events API v2 endpoint. Default DefaultPagerDutyURL.
	URL string `yaml:"url"`
	// MinSeverity is the least severity sent: info, warning, error or
	// critical. Default warning.
	MinSeverity string `yaml:"min_severity"`
}

// DefaultPagerDutyURL is PagerDuty's Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// IncidentWebhook is a receiver of incidents, signed as Standard Webhooks.
type IncidentWebhook struct {
	// URL receives a POST per notification. Required; http or https.
	URL string `yaml:"url"`
	// Secret signs them: base64, optionally prefixed "whsec_", at least
	// 16 bytes decoded. Required.
	Secret Secret `yaml:"secret"`
	// MinSeverity is the least severity sent. Default warning.
	MinSeverity string `yaml:"min_severity"`
}

// Endpoint is one address of an upstream.
type Endpoint struct {
	// URL is the endpoint's base URL, as Upstream.URL. Required.
	URL string `yaml:"url"`
	// Zone names where it runs, for zone affinity and zone isolation.
	Zone string `yaml:"zone"`
	// Weight is its share among equally healthy endpoints. Default 1.
	Weight int `yaml:"weight"`
}

// DefaultHealth is Health with every key at its default: the one table
// of endpoint-health defaults, which the endpoint package takes as given.
func DefaultHealth() Health {
	return Health{
		Window:        Duration(10 * time.Second),
		MinCalls:      20,
		FailureMargin: 100,
		FailureFloor:  5,
		LatencyMargin: 100,
		LatencyFloor:  Duration(50 * time.Millisecond),
		MaxIsolated:   50,
		BaseIsolation: Duration(10 * time.Second),
		MaxIsolation:  Duration(5 * time.Minute),
		ProbeShare:    1,
		ProbeCalls:    5,
	}
}

// Health is how an upstream's endpoints are judged (docs/endpoints.md).
type Health struct {
	// Window is how far back an endpoint's calls are judged. Default 10s.
	Window Duration `yaml:"window"`
	// MinCalls is the fewest calls in the window for an endpoint to be
	// judged. Default 20.
	MinCalls int `yaml:"min_calls"`
	// FailureMargin: an outlier's failure rate is above the baseline's by
	// this much, relatively (100% means more than twice). Default 100%.
	FailureMargin Percent `yaml:"failure_margin"`
	// FailureFloor is the least absolute gap, in percentage points, for
	// a failure-rate outlier. Default 5%.
	FailureFloor Percent `yaml:"failure_floor"`
	// LatencyMargin is FailureMargin for the p90 latency. Default 100%.
	LatencyMargin Percent `yaml:"latency_margin"`
	// LatencyFloor is the least absolute latency gap. Default 50ms.
	LatencyFloor Duration `yaml:"latency_floor"`
	// MaxIsolated is the largest share of the endpoints isolated at
	// once. Default 50%.
	MaxIsolated Percent `yaml:"max_isolated"`
	// BaseIsolation is the first isolation's length, doubled on each
	// isolation in a row up to MaxIsolation. Defaults 10s and 5m.
	BaseIsolation Duration `yaml:"base_isolation"`
	MaxIsolation  Duration `yaml:"max_isolation"`
	// ProbeShare is the share of calls an endpoint being probed after its
	// isolation gets. Default 1%.
	ProbeShare Percent `yaml:"probe_share"`
	// ProbeCalls is how many probe calls decide a restore. Default 5.
	ProbeCalls int `yaml:"probe_calls"`
}

// TLS is how Seawall verifies an HTTPS upstream and proves itself to it.
type TLS struct {
	// CAFile is a PEM file of the CAs trusted for this upstream, instead of
	// the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// an upstream that requires mutual TLS. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the upstream's certificate (and
	// sent as SNI). Default: the URL's host.
	ServerName string `yaml:"server_name"`
	// MinVersion is "1.2" or "1.3". Default "1.2".
	MinVersion string `yaml:"min_version"`
	// InsecureSkipVerify accepts any certificate. Refused unless the
	// upstream is on a loopback address or AllowInsecure is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// AllowInsecure permits InsecureSkipVerify off loopback. Default false.
	AllowInsecure bool `yaml:"allow_insecure"`
}

// Timeouts bounds an upstream call.
type Timeouts struct {
	// Connect bounds dialing and the TLS handshake. Default 2s, or per_try if less.
	Connect Duration `yaml:"connect"`
	// PerTry bounds one attempt, up to the response headers. Default 10s,
	// or overall if less.
	PerTry Duration `yaml:"per_try"`
	// Overall bounds the whole call including retries and waits. Default 30s.
	Overall Duration `yaml:"overall"`
}

// RouteTimeouts are the timeouts a route may override; the connect timeout
// belongs to the upstream's connection pool.
type RouteTimeouts struct {
	// PerTry bounds one attempt, up to the response headers. Default: the upstream's.
	PerTry Duration `yaml:"per_try"`
	// Overall bounds the whole call. Default: the upstream's.
	Overall Duration `yaml:"overall"`
}

// Limit actions.
const (
	OnLimitWait   = "wait"
	OnLimitReject = "reject"

	// What a quota does when its period's calls are spent.
	OnExhaustedReject = "reject"
	OnExhaustedAlert  = "alert"
)

// RateLimit is a token bucket per upstream, or per tenant with KeyHeader.
type RateLimit struct {
	// Rate is the sustained rate, like "50/s". Zero means no limit.
	Rate Rate `yaml:"rate"`
	// Burst is how many calls may go at once above the sustained rate.
	// Default 1.
	Burst int `yaml:"burst"`
	// KeyHeader, when set, gives each value of this request header its own
	// bucket (per-tenant quotas). Empty means one bucket for the upstream.
	KeyHeader string `yaml:"key_header"`
	// OnLimit is "wait" (queue up to MaxWait) or "reject" (429 at once).
	// Default "wait".
	OnLimit string `yaml:"on_limit"`
	// MaxWait is the longest a request waits for a slot in wait mode before
	// it is rejected with 429. Default 1s.
	MaxWait Duration `yaml:"max_wait"`
	// Headroom is the share of Rate, in percent (0–50), the pace is kept
	// under, for jitter between release and arrival. Default
	// DefaultHeadroom (5); 0 paces at exactly Rate.
	Headroom float64 `yaml:"headroom"`
	// Adaptive learns the vendor's real rate from its 429s: at most one
	// decrease a round, a search between the rate last proven and the rate
	// that drew the last 429, and a quick climb back while calls succeed
	// (docs/ratelimit.md), never above Rate. Default true when Rate is
	// unset, false otherwise.
	Adaptive bool `yaml:"adaptive"`
	// Scope is "global" (the pace and pauses are shared with the other
	// replicas through redis) or "local" (this replica's own). Default
	// global when redis is set, else local.
	Scope string `yaml:"scope"`
}

// Breaker is a circuit breaker per upstream.
type Breaker struct {
	// Disabled turns the breaker off. Default false.
	Disabled bool `yaml:"disabled"`
	// Window is the time window over which rates are judged. Default 10s.
	Window Duration `yaml:"window"`
	// MinCalls is how many calls the window must hold before judging.
	// Default 20.
	MinCalls int `yaml:"min_calls"`
	// FailureRate is the failure percentage (1–100) that opens the breaker,
	// and that half-open probes must stay under to close it. Default 80:
	// retries already mask a vendor failing part of the time, and a
	// breaker that opens on half of the calls failing serves the app
	// worse than no breaker at all.
	FailureRate float64 `yaml:"failure_rate"`
	// SlowCallRate is the percentage (1–100) of calls slower than
	// SlowCallDuration that opens the breaker. Default 100.
	SlowCallRate float64 `yaml:"slow_call_rate"`
	// SlowCallDuration is how long a call may take before it counts as slow.
	// Default 5s.
	SlowCallDuration Duration `yaml:"slow_call_duration"`
	// OpenDuration is how long the breaker stays open before probing.
	// Default 5s.
	OpenDuration Duration `yaml:"open_duration"`
	// MaxOpenDuration caps the open duration, which doubles on each
	// consecutive reopening. Zero means it never grows.
	MaxOpenDuration Duration `yaml:"max_open_duration"`
	// HalfOpenCalls is how many probe calls are let through while
	// half-open, one after another; the breaker closes when their failure
	// rate is under FailureRate (and their slow-call rate under
	// SlowCallRate), and opens again otherwise. Default 3.
	HalfOpenCalls int `yaml:"half_open_calls"`
	// FailureStatuses lists upstream statuses that count as failures, as
	// codes ("503") or classes ("5xx"). Connection errors and timeouts
	// always count; errors of Seawall's own host never do. Default
	// ["5xx"]: a 429 is a rate signal, not a health one.
	FailureStatuses []string `yaml:"failure_statuses"`
}

// Retry is the retry policy of an upstream or route.
type Retry struct {
	// MaxAttempts counts the first try; 1 disables retries. Default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// BaseDelay is the first backoff; each retry doubles it, with full
	// jitter. Default 100ms.
	BaseDelay Duration `yaml:"base_delay"`
	// MaxDelay caps the backoff. Default 2s.
	MaxDelay Duration `yaml:"max_delay"`
	// Statuses lists upstream statuses retried, as codes or classes.
	// Default ["429", "502", "503", "504"].
	Statuses []string `yaml:"statuses"`
	// AllMethods retries non-idempotent requests (POST, PATCH) even without
	// an Idempotency-Key. Default false.
	AllMethods bool `yaml:"all_methods"`
	// BufferBody is the largest request body kept for replay; a larger body
	// is streamed once and not retried. Default 64KiB.
	BufferBody Size `yaml:"buffer_body"`
	// Budget bounds retries to a share of recent requests.
	Budget RetryBudget `yaml:"budget"`
}

// RetryBudget bounds retries over a sliding 10s window.
type RetryBudget struct {
	// Ratio is the share of requests that may be retried (0–1). Default 0.2.
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond allows this many retries per second even at low traffic.
	// Default 3.
	MinPerSecond float64 `yaml:"min_per_second"`
}

// Route overrides policies for requests it matches.
type Route struct {
	// Name labels the route in metrics and logs. Default: the Match pattern.
	Name string `yaml:"name"`
	// Match is a net/http ServeMux pattern without host, like
	// "POST /v1/charges" or "GET /v1/items/{id}". Required.
	Match string `yaml:"match"`
	// Timeouts override the upstream's; keys left out inherit.
	Timeouts RouteTimeouts `yaml:"timeouts"`
	// Retry overrides the upstream's; keys left out inherit.
	Retry Retry `yaml:"retry"`
	// Mode overrides the upstream's access mode.
	Mode string `yaml:"mode"`
	// Cache replaces the upstream's caching policy as a whole.
	Cache *Cache `yaml:"cache"`
	// Cost replaces the upstream's price for calls on this route.
	Cost *Cost `yaml:"cost"`
}

// KeepsState reports whether Seawall needs its job store at start: an
// upstream queues requests, or has a quota whose count must survive a
// restart (kept there beside the jobs).
func (c *Config) KeepsState() bool {
	if c.UsesAsync() {
		return true
	}
	for _, u := range c.Upstreams {
		if u.Quota != nil {
			return true
		}
	}
	return false
}

// UsesAsync reports whether any upstream or route defaults to async or
// deferred mode, which makes Seawall open its job store.
func (c *Config) UsesAsync() bool {
	queued := func(m string) bool { return m == ModeAsync || m == ModeDeferred }
	for _, u := range c.Upstreams {
		if queued(u.Mode) {
			return true
		}
		for _, r := range u.Routes {
			if r != nil && queued(r.Mode) {
				return true
			}
		}
	}
	return false
}
