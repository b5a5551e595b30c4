// Package usage counts what each vendor is called, what Seawall saved
// it, what that costs, and keeps calls within a daily or monthly quota.
// docs/cost.md is its description.
package usage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
)

// Saving is why a call was not made.
type Saving int

// The savings.
const (
	ByCache    Saving = iota // a cache hit, a stale answer or a coalesced waiter
	ByDedup                  // an async request whose Idempotency-Key was already queued
	ByFailFast               // refused by an open breaker: a call that would have failed
)

// Counts are one route's calls in one period.
type Counts struct {
	Billable      int64 `json:"billable"` // calls that reached the vendor, retries and probes included
	SavedCache    int64 `json:"saved_by_cache"`
	SavedDedup    int64 `json:"saved_by_dedup"`
	SavedFailFast int64 `json:"saved_by_failing_fast"`
}

func (c *Counts) saved() int64 { return c.SavedCache + c.SavedDedup + c.SavedFailFast }

// ErrQuotaExhausted is a call refused because the vendor's quota is spent.
var ErrQuotaExhausted = errors.New("vendor quota exhausted")

// QuotaError says which quota is spent and when it resets.
type QuotaError struct {
	Upstream   string
	Period     string // daily or monthly
	Limit      int64
	RetryAfter time.Duration // until the period resets
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v: %s's %s quota of %d calls is spent; it resets in %s", ErrQuotaExhausted, e.Upstream, e.Period, e.Limit, e.RetryAfter.Round(time.Second))
}

func (e *QuotaError) Unwrap() error { return ErrQuotaExhausted }

// Meter counts one upstream's calls, by route and period (the local day
// and month of its quota's time zone, UTC without one).
type Meter struct {
	upstream string
	events   incident.Publisher
	now      func() time.Time

	mu       sync.Mutex
	cost     *config.Cost            // nil: not priced
	prices   map[string]config.Money // by route; missing: cost's
	quota    *config.Quota           // nil: none
	loc      *time.Location
	dayKey   string
	monthKey string
	dayEnd   time.Time // when the day and the month in force end
	monthEnd time.Time
	day      map[string]*Counts // by route
	month    map[string]*Counts
	dayN     int64 // billable calls today and this month, for the quota
	monthN   int64
	warned   map[string]int // period → the highest warn_at percentage crossed
	levels   []int          // the quota's warn_at, then 100

	// With the other replicas (shared.go): the cluster's counts as last
	// heard, and this replica's calls (less its refunds) not yet told.
	shared             Shared
	replica            string
	seenDay, seenMonth int64
	pendDay, pendMonth int64
	cluster            *ClusterFigures
}

// NewMeter returns the meter of an upstream; Configure sets its price and
// quota. events receives quota.warning and quota.exhausted.
func NewMeter(upstream string, events incident.Publisher) *Meter {
	if events == nil {
		events = incident.Discard
	}
	return &Meter{upstream: upstream, events: events, now: time.Now, loc: time.UTC,
		day: map[string]*Counts{}, month: map[string]*Counts{}, warned: map[string]int{}}
}

// Configure applies an upstream's config (again, after a reload): its
// price, its routes' prices and its quota. The counts go on.
func (m *Meter) Configure(c *config.Upstream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cost, m.quota, m.loc = c.Cost, c.Quota, time.UTC
	m.dayEnd, m.monthEnd = time.Time{}, time.Time{} // the zone may have changed
	m.prices = map[string]config.Money{}
	for _, r := range c.Routes {
		if r.Cost != nil {
			m.prices[r.Name] = r.Cost.PerCall
		}
	}
	m.levels = nil
	if c.Quota != nil {
		m.loc, _ = time.LoadLocation(c.Quota.Timezone) // validated
		m.levels = append(slices.Clone(c.Quota.WarnAt), 100)
	}
}

// roll starts a new day or month when the clock has passed into one.
// m.mu is held.
func (m *Meter) roll(now time.Time) {
	if now.Before(m.dayEnd) && now.Before(m.monthEnd) {
		return // the common case: no string made, no zone looked up
	}
	local := now.In(m.loc)
	m.dayEnd = time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, m.loc)
	m.monthEnd = time.Date(local.Year(), local.Month()+1, 1, 0, 0, 0, 0, m.loc)
	if d := local.Format(time.DateOnly); d != m.dayKey {
		m.dayKey, m.day, m.dayN, m.seenDay, m.pendDay = d, map[string]*Counts{}, 0, 0, 0
		delete(m.warned, "daily")
	}
	if mo := local.Format("2006-01"); mo != m.monthKey {
		m.monthKey, m.month, m.monthN, m.seenMonth, m.pendMonth = mo, map[string]*Counts{}, 0, 0, 0
		delete(m.warned, "monthly")
		m.cluster = nil
	}
}

func (m *Meter) counts(route string) (day, month *Counts) {
	if m.day[route] == nil {
		m.day[route] = &Counts{}
	}
	if m.month[route] == nil {
		m.month[route] = &Counts{}
	}
	return m.day[route], m.month[route]
}

// Reserve counts a call about to go to the vendor on route. With a quota
// whose on_exhausted is reject, a call past it is refused with a
// *QuotaError and not counted. Refund undoes a reservation whose call
// never reached the vendor. A shared meter asks the store within ctx.
func (m *Meter) Reserve(ctx context.Context, route string) error {
	now := m.now()
	var events []incident.Event
	m.mu.Lock()
	m.roll(now)
	if m.shared != nil {
		if err := m.reserveShared(ctx, now); err != nil {
			m.mu.Unlock()
			return err
		}
	} else if q := m.quota; q != nil && q.OnExhausted == config.OnExhaustedReject {
		if err := m.exhausted(now); err != nil {
			m.mu.Unlock()
			return err
		}
	}
	d, mo := m.counts(route)
	d.Billable++
	mo.Billable++
	m.dayN++
	m.monthN++
	if m.quota != nil {
		events = m.crossed(now)
	}
	m.mu.Unlock()
	for _, e := range events {
		m.events.Publish(e)
	}
	return nil
}

// exhausted is the error of a spent quota, or nil. m.mu is held.
func (m *Meter) exhausted(now time.Time) error {
	q := m.quota
	day, month := m.used()
	switch {
	case q.Daily > 0 && day >= q.Daily:
		return &QuotaError{Upstream: m.upstream, Period: "daily", Limit: q.Daily, RetryAfter: m.dayEnd.Sub(now)}
	case q.Monthly > 0 && month >= q.Monthly:
		return &QuotaError{Upstream: m.upstream, Period: "monthly", Limit: q.Monthly, RetryAfter: m.monthEnd.Sub(now)}
	}
	return nil
}

// crossed returns the events of the warn_at percentages, and of the
// quota itself, that this call crossed. m.mu is held.
func (m *Meter) crossed(now time.Time) []incident.Event {
	var out []incident.Event
	check := func(period string, used, limit int64) {
		if limit <= 0 {
			return
		}
		for _, pct := range m.levels {
			if pct <= m.warned[period] || used*100 < limit*int64(pct) {
				continue
			}
			m.warned[period] = pct
			e := incident.Event{Time: now, Upstream: m.upstream, Type: incident.QuotaWarning, Severity: incident.Warning,
				Summary:  fmt.Sprintf("%d%% of the %s quota used: %d of %d calls", pct, period, used, limit),
				Evidence: map[string]any{"period": period, "used": used, "limit": limit, "percent": pct}}
			if pct == 100 {
				e.Type, e.Severity = incident.QuotaExhausted, incident.Error
				e.Summary = fmt.Sprintf("the %s quota of %d calls is spent (on_exhausted: %s)", period, limit, m.quota.OnExhausted)
			}
			out = append(out, e)
		}
	}
	day, month := m.used()
	check("daily", day, m.quota.Daily)
	check("monthly", month, m.quota.Monthly)
	return out
}

// Refund undoes a Reserve whose call never reached the vendor.
func (m *Meter) Refund(route string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, mo := m.counts(route)
	d.Billable--
	mo.Billable--
	m.dayN--
	m.monthN--
	if m.shared != nil {
		m.pendDay-- // told at the next call or Sync
		m.pendMonth--
	}
}

// Saved counts a call Seawall did not have to make.
func (m *Meter) Saved(route string, by Saving) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	d, mo := m.counts(route)
	for _, c := range []*Counts{d, mo} {
		switch by {
		case ByCache:
			c.SavedCache++
		case ByDedup:
			c.SavedDedup++
		default:
			c.SavedFailFast++
		}
	}
}

// Figures are one period's usage of an upstream.
type Figures struct {
	Counts
	// Spent and Saved are money, exact ("2.00"), with a cost configured.
	Spent  string            `json:"spent,omitempty"`
	Saved  string            `json:"saved,omitempty"`
	Routes map[string]Counts `json:"routes"`
}

// QuotaReport is where an upstream stands against its quota.
type QuotaReport struct {
	Daily       int64     `json:"daily,omitempty"`
	UsedToday   int64     `json:"used_today"`
	Monthly     int64     `json:"monthly,omitempty"`
	UsedMonth   int64     `json:"used_this_month"`
	Share       float64   `json:"share"` // the larger of the used shares
	OnExhausted string    `json:"on_exhausted"`
	Timezone    string    `json:"timezone"`
	DayResets   time.Time `json:"day_resets"`
}

// Report is an upstream's usage, today and this month.
type Report struct {
	Upstream string       `json:"upstream"`
	Currency string       `json:"currency,omitempty"`
	PerCall  string       `json:"per_call,omitempty"`
	Today    Figures      `json:"today"`
	Month    Figures      `json:"this_month"`
	Quota    *QuotaReport `json:"quota,omitempty"`
	// Cluster is a global upstream's count with the other replicas';
	// Today and Month are this replica's. The quota is the cluster's.
	Cluster *ClusterFigures `json:"cluster,omitempty"`
}

// Report describes the meter now.
func (m *Meter) Report() Report {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	r := Report{Upstream: m.upstream, Today: m.figures(m.day), Month: m.figures(m.month)}
	if m.cost != nil {
		r.Currency, r.PerCall = m.cost.Currency, m.cost.PerCall.String()
	}
	if m.cluster != nil {
		c := *m.cluster
		r.Cluster = &c
	}
	if q := m.quota; q != nil {
		day, month := m.used()
		qr := &QuotaReport{Daily: q.Daily, UsedToday: day, Monthly: q.Monthly, UsedMonth: month, OnExhausted: q.OnExhausted,
			Timezone: q.Timezone, DayResets: m.dayEnd}
		if q.Daily > 0 {
			qr.Share = float64(day) / float64(q.Daily)
		}
		if q.Monthly > 0 {
			qr.Share = max(qr.Share, float64(month)/float64(q.Monthly))
		}
		r.Quota = qr
	}
	return r
}

// figures totals a period's routes, and prices them. m.mu is held.
func (m *Meter) figures(byRoute map[string]*Counts) Figures {
	f := Figures{Routes: map[string]Counts{}}
	var spent, saved config.Money
	for _, route := range slices.Sorted(maps.Keys(byRoute)) {
		c := *byRoute[route]
		f.Routes[route] = c
		f.Billable += c.Billable
		f.SavedCache += c.SavedCache
		f.SavedDedup += c.SavedDedup
		f.SavedFailFast += c.SavedFailFast
		if m.cost != nil {
			price, ok := m.prices[route]
			if !ok {
				price = m.cost.PerCall
			}
			spent += price * config.Money(c.Billable)
			saved += price * config.Money(c.saved())
		}
	}
	if m.cost != nil {
		f.Spent, f.Saved = spent.String(), saved.String()
	}
	return f
}

// State is what a meter keeps across restarts.
type State struct {
	DayKey   string             `json:"day"`
	MonthKey string             `json:"month"`
	Day      map[string]*Counts `json:"today"`
	Month    map[string]*Counts `json:"this_month"`
	DayN     int64              `json:"day_calls"`
	MonthN   int64              `json:"month_calls"`
	Warned   map[string]int     `json:"warned"`
	// The cluster's counts, for a shared meter: where they start again
	// when the store has lost them.
	ClusterDay   int64 `json:"cluster_day,omitempty"`
	ClusterMonth int64 `json:"cluster_month,omitempty"`
}

// State snapshots the counts.
func (m *Meter) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	clone := func(in map[string]*Counts) map[string]*Counts {
		out := make(map[string]*Counts, len(in))
		for k, v := range in {
			c := *v
			out[k] = &c
		}
		return out
	}
	s := State{DayKey: m.dayKey, MonthKey: m.monthKey, Day: clone(m.day), Month: clone(m.month), DayN: m.dayN, MonthN: m.monthN, Warned: maps.Clone(m.warned)}
	if m.shared != nil {
		s.ClusterDay, s.ClusterMonth = m.used()
	}
	return s
}

// Restore takes back the counts of a State saved in the same periods
// (the rest belong to periods gone by), adding them to any made since.
func (m *Meter) Restore(s State) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	if s.MonthKey == m.monthKey {
		for route, c := range s.Month {
			_, mo := m.counts(route)
			add(mo, c)
		}
		m.monthN += s.MonthN
		m.seenMonth = max(m.seenMonth, s.ClusterMonth)
		if s.Warned["monthly"] > m.warned["monthly"] {
			m.warned["monthly"] = s.Warned["monthly"]
		}
	}
	if s.DayKey == m.dayKey {
		for route, c := range s.Day {
			d, _ := m.counts(route)
			add(d, c)
		}
		m.dayN += s.DayN
		m.seenDay = max(m.seenDay, s.ClusterDay)
		if s.Warned["daily"] > m.warned["daily"] {
			m.warned["daily"] = s.Warned["daily"]
		}
	}
}

func add(to, c *Counts) {
	to.Billable += c.Billable
	to.SavedCache += c.SavedCache
	to.SavedDedup += c.SavedDedup
	to.SavedFailFast += c.SavedFailFast
}
