// Package fakeapi is a controllable stand-in for a third-party HTTP API, for
// tests, demos and benchmarks. It injects errors, latency, quota 429s,
// outages and dropped connections, and records every call it receives so a
// test can assert what reached the upstream.
//
// Besides serving as an upstream, it answers a control API under /_fake/:
// GET /_fake/calls, PUT /_fake/behavior (JSON Behavior), POST /_fake/reset.
package fakeapi

import (
	"cmp"
	"encoding/json"

	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRecorded bounds the calls kept in memory; Count goes on past it.
const maxRecorded = 200_000

// Behavior is how the fake answers. The zero value answers 200 at once.
type Behavior struct {
	// Status answers successful calls. Default 200.
	Status int `json:"status,omitempty"`
	// Body is the response body of successful calls; "{n}" in it becomes the
	// call's number, so tests can tell answers apart. Default `{"ok":true}`.
	Body string `json:"body,omitempty"`
	// Headers are added to every response.
	Headers map[string]string `json:"headers,omitempty"`
	// ErrorRate is the share of calls (0–1) answered with ErrorStatus.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatus answers failed calls. Default 503.
	ErrorStatus int `json:"error_status,omitempty"`
	// LatencyMin and LatencyMax bound a uniform delay before answering.
	LatencyMin Duration `json:"latency_min,omitempty"`
	LatencyMax Duration `json:"latency_max,omitempty"`
	// QuotaPerSecond answers 429 with Retry-After past this many calls in
	// one clock second. Zero means no quota.
	QuotaPerSecond int `json:"quota_per_second,omitempty"`
	// RetryAfter is the Retry-After value, in seconds, sent with quota 429s
	// and outage errors. Zero sends none.
	RetryAfter int `json:"retry_after,omitempty"`
	// Down answers every call with ErrorStatus, as in an outage.
	Down bool `json:"down,omitempty"`
	// Outages are windows, relative to the fake's start or last reset,
	// during which it is down.
	Outages []Outage `json:"outages,omitempty"`
	// Drop closes the connection without answering.
	Drop bool `json:"drop,omitempty"`
	// LeakyRate is a leaky bucket without burst, as nginx's limit_req
	// without burst: a call less than 1/LeakyRate after the last one
	// accepted gets 429 (with Retry-After only if RetryAfter is set). A
	// refused call does not move the bucket. Zero means none.
	LeakyRate float64 `json:"leaky_rate,omitempty"`
	// Window is a fixed-window quota stated in headers on every answer.
	Window *Window `json:"window,omitempty"`
}

// Window is a fixed-window quota: Limit calls per Every, windows aligned
// to multiples of Every since the Unix epoch, the quota stated on every
// answer in the form Headers names, and 429 once it is spent.
type Window struct {
	Limit int      `json:"limit"`
	Every Duration `json:"every"`
	// Headers is the form the quota is stated in:
	//   "x-ratelimit" (default): X-RateLimit-Limit/Remaining, and
	//     X-RateLimit-Reset as the Unix time the window ends (GitHub's form);
	//   "ratelimit": the IETF draft, RateLimit-Policy: "default";q=L;w=W and
	//     RateLimit: "default";r=R;t=T with T the seconds to the reset,
	//     rounded up;
	//   "llm": x-ratelimit-limit-requests, x-ratelimit-remaining-requests and
	//     x-ratelimit-reset-requests as a duration ("1.5s"), as LLM APIs do.
	Headers string `json:"headers,omitempty"`
}

// Outage is a window of downtime relative to the fake's start.
type Outage struct {
	Start Duration `json:"start"`
	For   Duration `json:"for"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Call is one request the fake received.
type Call struct {
	At     time.Time   `json:"at"`
	Method string      `json:"method"`
	Path   string      `json:"path"` // with the query
	Header http.Header `json:"header"`
	Body   string      `json:"body,omitempty"`
	Status int         `json:"status"` // 0 when dropped
}

// Server is the fake API. It is safe for concurrent use.
type Server struct {
	// Now, if set, dates responses (the Date header), so that a test can
	// move the fake's clock together with Seawall's.
	Now func() time.Time

	mu       sync.Mutex
	b        Behavior  // guarded by mu
	start    time.Time // guarded by mu
	calls    []Call    // guarded by mu
	count    int       // guarded by mu
	secStart int64     // guarded by mu; the clock second counted for the quota
	secCalls int       // guarded by mu
	leakyAt  time.Time // guarded by mu; the last call the leaky bucket accepted
	winStart int64     // guarded by mu; the window counted, in Every since the epoch
	winCalls int       // guarded by mu
}

// New returns a fake answering as b.
func New(b Behavior) *Server {
	return &Server{b: b, start: time.Now()}
}

// Set replaces the behavior; the quota counters start afresh.
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	s.b = b
	s.leakyAt, s.winStart, s.winCalls, s.secStart, s.secCalls = time.Time{}, 0, 0, 0, 0
	s.mu.Unlock()
}

// Update changes the behavior in place.
func (s *Server) Update(f func(*Behavior)) {
	s.mu.Lock()
	f(&s.b)
	s.mu.Unlock()
}

// Calls returns a copy of the recorded calls, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Count is how many calls arrived, recorded or not.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Reset forgets the calls and restarts the outage clock.
func (s *Server) Reset() {
	s.mu.Lock()
	s.calls, s.count, s.start = nil, 0, time.Now()
	s.mu.Unlock()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.control(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	now := time.Now() // read under mu so the record is in time order
	b := s.b
	status, retryAfter := s.decide(b, now)
	quota := s.quotaHeaders(b, now)
	s.count++
	seq := s.count
	if len(s.calls) < maxRecorded {
		s.calls = append(s.calls, Call{At: now, Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body), Status: status})
	}
	s.mu.Unlock()

	if d := latency(b); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if status == 0 {
		drop(w)
		return
	}
	if s.Now != nil {
		w.Header().Set("Date", s.Now().UTC().Format(http.TimeFormat))
	}
	for k, v := range b.Headers {
		w.Header().Set(k, v)
	}
	for k, v := range quota {
		w.Header()[k] = v
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	if status >= 400 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"fake %d"}`, status)
		return
	}
	out := strings.ReplaceAll(cmp.Or(b.Body, `{"ok":true}`), "{n}", strconv.Itoa(seq))
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

// decide picks the status for a call at now (0 to drop). Caller holds mu.
func (s *Server) decide(b Behavior, now time.Time) (status, retryAfter int) {
	errStatus := cmp.Or(b.ErrorStatus, http.StatusServiceUnavailable)
	if b.Drop {
		return 0, 0
	}
	if b.Down || s.inOutage(b, now) {
		return errStatus, b.RetryAfter
	}
	if b.LeakyRate > 0 {
		if !s.leakyAt.IsZero() && now.Sub(s.leakyAt) < time.Duration(float64(time.Second)/b.LeakyRate) {
			return http.StatusTooManyRequests, b.RetryAfter
		}
		s.leakyAt = now
	}
	if w := b.Window; w != nil && w.Every > 0 {
		if n := now.UnixNano() / int64(w.Every); n != s.winStart {
			s.winStart, s.winCalls = n, 0
		}
		if s.winCalls >= w.Limit {
			return http.StatusTooManyRequests, b.RetryAfter
		}
		s.winCalls++
	}
	if b.QuotaPerSecond > 0 {
		if sec := now.Unix(); sec != s.secStart {
			s.secStart, s.secCalls = sec, 0
		}
		s.secCalls++
		if s.secCalls > b.QuotaPerSecond {
			return http.StatusTooManyRequests, b.RetryAfter
		}
	}
	if b.ErrorRate > 0 && rand.Float64() < b.ErrorRate {
		return errStatus, 0
	}
	return cmp.Or(b.Status, http.StatusOK), 0
}

// ParseWindow reads a window written LIMIT/PERIOD[/FORM], like "100/10s"
// or "50/5s/ratelimit".
func ParseWindow(v string) (*Window, error) {
	parts := strings.Split(v, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("%q: want LIMIT/PERIOD[/FORM], like 100/10s", v)
	}
	limit, err := strconv.Atoi(parts[0])
	if err != nil || limit < 1 {
		return nil, fmt.Errorf("%q: the limit must be a positive number", v)
	}
	every, err := time.ParseDuration(parts[1])
	if err != nil || every <= 0 {
		return nil, fmt.Errorf("%q: the period must be a duration, like 10s", v)
	}
	w := &Window{Limit: limit, Every: Duration(every)}
	if len(parts) == 3 {
		switch parts[2] {
		case "x-ratelimit", "ratelimit", "llm":
			w.Headers = parts[2]
		default:
			return nil, fmt.Errorf("%q: the form must be x-ratelimit, ratelimit or llm", v)
		}
	}
	return w, nil
}

// quotaHeaders states the window's quota after a call at now. Caller
// holds mu.
func (s *Server) quotaHeaders(b Behavior, now time.Time) http.Header {
	w := b.Window
	if w == nil || w.Every <= 0 {
		return nil
	}
	end := time.Unix(0, (s.winStart+1)*int64(w.Every))
	left := max(0, w.Limit-s.winCalls)
	h := http.Header{}
	switch w.Headers {
	case "ratelimit":
		h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, w.Limit, int(time.Duration(w.Every).Seconds())))
		h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, left, int((end.Sub(now)+time.Second-1)/time.Second)))
	case "llm":
		h.Set("X-Ratelimit-Limit-Requests", strconv.Itoa(w.Limit))
		h.Set("X-Ratelimit-Remaining-Requests", strconv.Itoa(left))
		h.Set("X-Ratelimit-Reset-Requests", ((end.Sub(now) + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String())
	default:
		h.Set("X-RateLimit-Limit", strconv.Itoa(w.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(left))
		h.Set("X-RateLimit-Reset", strconv.FormatInt((end.UnixNano()+int64(time.Second)-1)/int64(time.Second), 10))
	}
	return h
}

func (s *Server) inOutage(b Behavior, now time.Time) bool {
	since := now.Sub(s.start)
	for _, o := range b.Outages {
		if since >= time.Duration(o.Start) && since < time.Duration(o.Start+o.For) {
			return true
		}
	}
	return false
}

func latency(b Behavior) time.Duration {
	lo, hi := time.Duration(b.LatencyMin), time.Duration(b.LatencyMax)
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

func drop(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = c.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_fake/calls" && r.Method == http.MethodGet:
		s.mu.Lock()
		out := struct {
			Count int    `json:"count"`
			Calls []Call `json:"calls"`
		}{s.count, s.calls}
		w.Header().Set("Content-Type", "application/json")
		err := json.NewEncoder(w).Encode(out)
		s.mu.Unlock()
		if err != nil {
			return
		}
	case r.URL.Path == "/_fake/behavior" && r.Method == http.MethodPut:
		var b Behavior
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			http.Error(w, "bad behavior: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.Set(b)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_fake/reset" && r.Method == http.MethodPost:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown control call", http.StatusNotFound)
	}
}

// MaxInWindow is the largest number of calls recorded in any window of
// length d (a sliding window over the call times).
func MaxInWindow(calls []Call, d time.Duration) int {
	best, lo := 0, 0
	for hi := range calls {
		for calls[hi].At.Sub(calls[lo].At) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
