package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/usage"
)

// The board's pace: what the page shows is refreshed every boardTick, and
// each upstream's traffic is kept as one point a boardStep for
// boardHistory, so that a page opened mid-incident shows the build-up.
const (
	boardTick    = time.Second
	boardStep    = 5 * time.Second
	boardHistory = 15 * time.Minute
	// boardEvents is how many of the newest events a page starts with.
	boardEvents = 50
	// subscriberBacklog is how many ticks a slow page may fall behind
	// before its stream is ended; the page reconnects and starts afresh.
	subscriberBacklog = 8
)

// Board keeps what the dashboard shows and sends it to every open page
// over Server-Sent Events: a full view when a page connects, then each
// second the cards that changed. It reads the upstreams' live state, the
// metrics registry, the job counts and the incident recorder; nothing on
// the request path waits for it.
type Board struct {
	parts Parts
	guard *guard
	steps int // history points kept

	mu       sync.Mutex
	prev     map[string]*tally   // the tallies at the last step
	prevAt   time.Time           // when they were read
	history  map[string]*history // by upstream
	jobs     map[string]*JobsCard
	jobsErr  string
	cluster  *ClusterView
	stepped  bool                // a step was taken since the last tick
	sent     map[string]sentCard // each card as last sent, for telling what changed
	sentInc  []byte
	sentClu  []byte
	lastEvt  int64 // the newest event sent
	subs     map[chan []byte]struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewBoard returns the board for parts; Run keeps it current.
func NewBoard(parts Parts) *Board {
	if parts.Token == "" {
		panic("admin: the dashboard needs the admin token")
	}
	return &Board{parts: parts, guard: newGuard(parts.Token), steps: int(boardHistory / boardStep), history: map[string]*history{},
		subs: map[chan []byte]struct{}{}, done: make(chan struct{})}
}

// LoginLink returns a path on the admin listener that logs one browser
// in, once, within ten minutes, without typing the token.
func (b *Board) LoginLink() string { return b.guard.loginLink() }

// Run refreshes the board until ctx ends, then ends every open stream.
func (b *Board) Run(ctx context.Context) {
	defer b.stopOnce.Do(func() { close(b.done) })
	b.step(ctx, time.Now())
	t := time.NewTicker(boardTick)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n%int(boardStep/boardTick) == 0 {
				b.step(ctx, now)
			}
			b.tick(now)
		}
	}
}

// step reads the metrics, the job counts and the cluster, and adds a
// history point to each upstream.
func (b *Board) step(ctx context.Context, now time.Time) {
	cur := tallies(b.parts.Upstreams.Metrics().Traffic)
	if b.watched() {
		b.readLive(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.prevAt.IsZero() {
		secs := now.Sub(b.prevAt).Seconds()
		for name := range b.parts.Upstreams.All() {
			h := b.history[name]
			if h == nil {
				h = &history{}
				b.history[name] = h
			}
			h.add(now, cur[name].since(b.prev[name], secs), b.steps)
		}
		for name := range b.history {
			if b.parts.Upstreams.Get(name) == nil {
				delete(b.history, name)
			}
		}
	}
	b.prev, b.prevAt, b.stepped = cur, now, true
}

// watched says whether a page is open.
func (b *Board) watched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// readLive reads the job counts and the cluster's replicas, which only an
// open page needs: a replica nobody watches asks its store and Redis
// nothing for the board.
func (b *Board) readLive(ctx context.Context) {
	jobsCards, jobsErr := b.readJobs(ctx)
	var clu *ClusterView
	if b.parts.Cluster != nil {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		v := clusterView(cctx, b.parts.Cluster)
		cancel()
		clu = &v
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs, b.jobsErr, b.cluster = jobsCards, jobsErr, clu
}

// readJobs counts each upstream's jobs by state.
func (b *Board) readJobs(ctx context.Context) (map[string]*JobsCard, string) {
	if b.parts.Jobs == nil {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	counts, err := b.parts.Jobs.Counts(ctx)
	if err != nil {
		return nil, err.Error()
	}
	out := map[string]*JobsCard{}
	for _, c := range counts {
		j := out[c.Upstream]
		if j == nil {
			j = &JobsCard{ByState: map[jobs.State]int{}}
			out[c.Upstream] = j
		}
		j.ByState[c.State] += c.N
		if c.State == jobs.Dead {
			j.Dead += c.N
		}
		if !c.Oldest.IsZero() && (j.Oldest == nil || c.Oldest.Before(*j.Oldest)) {
			oldest := c.Oldest
			j.Oldest = &oldest
		}
	}
	return out, ""
}

// JobsCard is an upstream's durable queue.
type JobsCard struct {
	ByState map[jobs.State]int `json:"by_state"`
	// Oldest is when its oldest unfinished job was accepted.
	Oldest *time.Time `json:"oldest,omitempty"`
	Dead   int        `json:"dead"`
}

// Card is one upstream as the dashboard shows it.
type Card struct {
	upstream.Status
	// Health is "down", "degraded" or "ok", and Why says what makes it so,
	// in words: the page sorts and marks by it, not by colour alone.
	Health string   `json:"health"`
	Why    []string `json:"why,omitempty"`
	// Traffic is the last step's; Cache sums the last five minutes.
	Traffic Traffic      `json:"traffic"`
	Cache   *CacheCard   `json:"cache,omitempty"`
	Jobs    *JobsCard    `json:"jobs,omitempty"`
	Usage   usage.Report `json:"usage"`
}

// CacheCard is the cache's share of the last five minutes.
type CacheCard struct {
	HitRatio float64 `json:"hit_ratio"`
	Lookups  float64 `json:"lookups"`
	Stale    float64 `json:"stale"`
}

// View is what a page starts with.
type View struct {
	At          time.Time           `json:"at"`
	StepSeconds int                 `json:"step_seconds"`
	Upstreams   []Card              `json:"upstreams"`
	History     map[string]*history `json:"history"`
	Incidents   []incident.Incident `json:"incidents"`
	Events      []incident.Event    `json:"events"`
	Cluster     *ClusterView        `json:"cluster,omitempty"`
	JobsError   string              `json:"jobs_error,omitempty"`
}

// Tick is what changed since the last one; a page applies it to its view.
type Tick struct {
	At        time.Time            `json:"at"`
	Upstreams []Card               `json:"upstreams,omitempty"`
	Removed   []string             `json:"removed,omitempty"`
	Points    map[string][]float64 `json:"points,omitempty"` // each upstream's newest history point, after a step
	Incidents []incident.Incident  `json:"incidents,omitempty"`
	Events    []incident.Event     `json:"events,omitempty"`
	Cluster   *ClusterView         `json:"cluster,omitempty"`
}

// cards builds every upstream's card, sick ones first. Caller holds mu.
func (b *Board) cards() []Card {
	usages := map[string]usage.Report{}
	for _, r := range b.parts.Upstreams.UsageReports() {
		usages[r.Upstream] = r
	}
	status := b.parts.Upstreams.Status()
	out := make([]Card, 0, len(status))
	for _, st := range status {
		u := usages[st.Name]
		u.Today.Routes, u.Month.Routes = nil, nil // the page shows the upstream's totals
		c := Card{Status: st, Usage: u, Jobs: b.jobs[st.Name]}
		if h := b.history[st.Name]; h != nil {
			c.Traffic = h.last
			c.Cache = h.cache(int(5 * time.Minute / boardStep))
		}
		c.Health, c.Why = judge(c)
		out = append(out, c)
	}
	rank := map[string]int{"down": 0, "degraded": 1, "ok": 2}
	slices.SortStableFunc(out, func(a, b Card) int { return rank[a.Health] - rank[b.Health] })
	return out
}

// judge says how an upstream is, and why, in words.
func judge(c Card) (string, []string) {
	var down, degraded []string
	switch c.Breaker {
	case "open":
		down = append(down, "breaker open")
	case "half-open":
		degraded = append(degraded, "breaker half-open")
	}
	if c.PausedFor > 0 {
		why := fmt.Sprintf("paused %.0fs", c.PausedFor)
		if c.RateLimit.PauseReason != "" {
			why += " (" + c.RateLimit.PauseReason + ")"
		}
		degraded = append(degraded, why)
	}
	if c.RateLimit.Degraded != "" {
		degraded = append(degraded, "limiter "+c.RateLimit.Degraded)
	}
	isolated := 0
	for _, e := range c.Endpoints {
		if e.State != endpoint.Healthy {
			isolated++
		}
	}
	switch {
	case len(c.Endpoints) > 0 && isolated == len(c.Endpoints):
		down = append(down, "every endpoint isolated")
	case isolated > 0:
		degraded = append(degraded, fmt.Sprintf("%d of %d endpoints isolated", isolated, len(c.Endpoints)))
	}
	if f := c.Traffic.failing(); f >= 0.05 {
		degraded = append(degraded, fmt.Sprintf("%.0f%% of requests failing", 100*f))
	}
	if q := c.Usage.Quota; q != nil && q.Share >= 1 {
		degraded = append(degraded, "quota used up")
	}
	if j := c.Jobs; j != nil && j.Dead > 0 {
		degraded = append(degraded, fmt.Sprintf("%d dead letters", j.Dead))
	}
	switch {
	case len(down) > 0:
		return "down", append(down, degraded...)
	case len(degraded) > 0:
		return "degraded", degraded
	}
	return "ok", nil
}

// sentCard is a card as a page last got it, and its state alone.
type sentCard struct{ full, state []byte }

// cardState is what of a card changes its meaning, not just its figures.
type cardState struct {
	Health, Breaker string
	Why             []string
	Since           *time.Time
	Paused          float64
	Limit           [3]string
	Endpoints       [][4]string
	Shifts          []endpoint.Shift
}

func (c Card) state() cardState {
	s := cardState{Health: c.Health, Breaker: c.Breaker, Why: c.Why, Since: c.BreakerSince, Paused: c.PausedFor,
		Limit: [3]string{c.RateLimit.Scope, c.RateLimit.Degraded, c.RateLimit.PauseReason}, Shifts: c.Shifts}
	for _, e := range c.Endpoints {
		s.Endpoints = append(s.Endpoints, [4]string{e.URL, string(e.State), fmt.Sprint(e.Shifted), e.Reason})
	}
	return s
}

// view is the full view. Caller holds mu.
func (b *Board) view(now time.Time) View {
	v := View{At: now, StepSeconds: int(boardStep / time.Second), Upstreams: b.cards(), History: maps.Clone(b.history),
		Incidents: []incident.Incident{}, Events: []incident.Event{}, Cluster: b.cluster, JobsError: b.jobsErr}
	if rec := b.parts.Incidents; rec != nil {
		v.Incidents = openIncidents(rec)
		evs := rec.Events("", time.Time{})
		v.Events = evs[max(0, len(evs)-boardEvents):]
	}
	return v
}

// openIncidents are the open incidents; the page finds each one's events
// among those it has, by their incident id.
func openIncidents(rec *incident.Recorder) []incident.Incident {
	out := []incident.Incident{}
	for _, in := range rec.Incidents() {
		if in.Resolved == nil {
			in.Events = nil
			out = append(out, in)
		}
	}
	return out
}

// tick sends every open page what changed.
func (b *Board) tick(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		b.sent, b.sentInc, b.sentClu = nil, nil, nil
		return
	}
	t := Tick{At: now}
	stepped := b.stepped
	b.stepped = false
	// A change of state (breaker, pause, health, an endpoint's state, a
	// shift) is sent at once; a card whose figures alone changed waits for
	// the next step, so that fifty busy upstreams stay a small stream.
	seen := map[string]sentCard{}
	for _, c := range b.cards() {
		full, _ := json.Marshal(c)
		state, _ := json.Marshal(c.state())
		prev, ok := b.sent[c.Name]
		if !ok || !bytes.Equal(state, prev.state) || (stepped && !bytes.Equal(full, prev.full)) {
			t.Upstreams = append(t.Upstreams, c)
			prev = sentCard{full, state}
		}
		seen[c.Name] = prev
	}
	for name := range b.sent {
		if _, ok := seen[name]; !ok {
			t.Removed = append(t.Removed, name)
		}
	}
	b.sent = seen
	if stepped {
		t.Points = map[string][]float64{}
		for name, h := range b.history {
			if p := h.point(len(h.Rate) - 1); p != nil { // an upstream with no point yet sends none
				t.Points[name] = p
			}
		}
	}
	if rec := b.parts.Incidents; rec != nil {
		inc := openIncidents(rec)
		if js, _ := json.Marshal(inc); !bytes.Equal(js, b.sentInc) {
			t.Incidents, b.sentInc = inc, js
		}
		for _, e := range rec.Events("", now.Add(-time.Minute)) {
			if e.ID > b.lastEvt {
				t.Events = append(t.Events, e)
				b.lastEvt = e.ID
			}
		}
	}
	if js, _ := json.Marshal(b.cluster); b.cluster != nil && !bytes.Equal(js, b.sentClu) {
		t.Cluster, b.sentClu = b.cluster, js
	}
	msg := sse("tick", t)
	for ch := range b.subs {
		select {
		case ch <- msg:
		default: // too far behind: end its stream, and the page starts afresh
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the full view, as an SSE message, and the channel of
// the ticks after it; the channel is closed when the board stops or the
// page falls too far behind. cancel ends the subscription.
func (b *Board) subscribe() (first []byte, ticks <-chan []byte, cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan []byte, subscriberBacklog)
	select {
	case <-b.done:
		close(ch)
		return sse("snapshot", b.view(time.Now())), ch, func() {}
	default:
	}
	v := b.view(time.Now())
	if len(v.Events) > 0 {
		b.lastEvt = max(b.lastEvt, v.Events[len(v.Events)-1].ID)
	}
	b.subs[ch] = struct{}{}
	return sse("snapshot", v), ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// stopped is closed when the board stops; every stream ends with it.
func (b *Board) stopped() <-chan struct{} { return b.done }

// sse is one Server-Sent Event: JSON has no raw newline, so one data line.
func sse(event string, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		js = []byte(`{"error":` + fmt.Sprintf("%q", err.Error()) + `}`)
	}
	var buf bytes.Buffer
	buf.Grow(len(js) + len(event) + 16)
	buf.WriteString("event: ")
	buf.WriteString(event)
	buf.WriteString("\ndata: ")
	buf.Write(js)
	buf.WriteString("\n\n")
	return buf.Bytes()
}

// history is an upstream's traffic, one point a step, oldest first, in
// columns: the page draws its sparklines from them.
type history struct {
	End     int64     `json:"end"` // the newest point's time, Unix seconds
	Rate    []float64 `json:"rps"`
	P50     []float64 `json:"p50_ms"`
	P99     []float64 `json:"p99_ms"`
	Failing []float64 `json:"failing"` // the share of requests failing
	lookups []float64
	hits    []float64
	stale   []float64
	last    Traffic
}

func (h *history) add(now time.Time, tr Traffic, keep int) {
	push := func(s []float64, v float64) []float64 {
		if len(s) >= keep {
			s = s[len(s)-keep+1:]
		}
		return append(s, v)
	}
	h.End, h.last = now.Unix(), tr
	h.Rate, h.P50, h.P99 = push(h.Rate, tr.Rate), push(h.P50, tr.P50), push(h.P99, tr.P99)
	h.Failing = push(h.Failing, round(tr.failing()))
	h.lookups, h.hits, h.stale = push(h.lookups, tr.Lookups), push(h.hits, tr.Hits), push(h.stale, tr.Stale)
}

// point is the i-th point as [time, rps, p50, p99, failing].
func (h *history) point(i int) []float64 {
	if i < 0 {
		return nil
	}
	return []float64{float64(h.End), h.Rate[i], h.P50[i], h.P99[i], h.Failing[i]}
}

// cache sums the cache's figures over the last n points; nil when the
// upstream had no cached-mode request in them.
func (h *history) cache(n int) *CacheCard {
	var c CacheCard
	var hits float64
	for i := max(0, len(h.lookups)-n); i < len(h.lookups); i++ {
		c.Lookups += h.lookups[i]
		hits += h.hits[i]
		c.Stale += h.stale[i]
	}
	if c.Lookups == 0 {
		return nil
	}
	c.HitRatio = round(hits / c.Lookups)
	return &c
}
