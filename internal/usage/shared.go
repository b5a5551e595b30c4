package usage

import (
	"context"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// Shared is a count every replica keeps together: a global upstream's
// billable calls in each period, in total and by replica, in Redis
// (internal/cluster). docs/distributed.md describes it.
type Shared interface {
	// Count adds Add to each period's count unchecked (calls counted while
	// the store was away, refunds), then, with Take, counts one call more
	// unless that would pass a limit. A period's count that the store lost
	// starts again from its Seed.
	Count(ctx context.Context, c Count) (Counted, error)
	// Share is this replica's place among the replicas last seen live:
	// rank from 0, of n (at least 1).
	Share() (rank, n int)
}

// Count is one call to Shared.Count.
type Count struct {
	Day, Month       Period
	Take             bool
	Detail           bool // also each replica's part
	DayLim, MonthLim int64
}

// Period is one period's key and what the call does to it.
type Period struct {
	Key  string    // "2026-12-06", "2026-12": the quota's time zone's
	Ends time.Time // the store may forget it a day after
	Add  int64
	Seed int64
}

// Counted is Shared.Count's answer.
type Counted struct {
	Taken      bool
	Day, Month Tally
}

// Tally is one period's billable calls, cluster-wide.
type Tally struct {
	Billable int64 `json:"billable"`
	// Replicas are each replica's part, by id, with Detail; what the
	// parts do not add up to was counted before the store last lost the
	// count (it starts again from the total the replicas had saved).
	Replicas map[string]int64 `json:"replicas,omitempty"`
}

// ClusterFigures are a global upstream's counts as every replica shares
// them, at the last time the store answered.
type ClusterFigures struct {
	Replica string    `json:"replica"` // this replica's id
	AsOf    time.Time `json:"as_of"`
	Today   Tally     `json:"today"`
	Month   Tally     `json:"this_month"`
}

// Share counts the meter's calls with the other replicas through s (nil:
// this replica's calls only), as replica id.
func (m *Meter) Share(s Shared, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shared, m.replica = s, id
}

// used is the calls counted against the quota in each period: the
// cluster's, as last heard plus those not yet told, when shared. m.mu is
// held.
func (m *Meter) used() (day, month int64) {
	if m.shared == nil {
		return m.dayN, m.monthN
	}
	return m.seenDay + m.pendDay, m.seenMonth + m.pendMonth
}

// count asks the store to count, telling it the calls it was not yet
// told; with take, one call more unless a quota refuses it. m.mu is held
// on entry and on return, not during the call. ok is false when the store
// did not answer; the calls are then still to tell.
func (m *Meter) count(ctx context.Context, take, detail bool) (c Counted, ok bool) {
	q := Count{Take: take, Detail: detail,
		Day:   Period{Key: m.dayKey, Ends: m.dayEnd, Add: m.pendDay, Seed: m.seenDay},
		Month: Period{Key: m.monthKey, Ends: m.monthEnd, Add: m.pendMonth, Seed: m.seenMonth}}
	if take && m.quota != nil {
		q.DayLim, q.MonthLim = m.quota.Daily, m.quota.Monthly
	}
	m.pendDay, m.pendMonth = 0, 0 // told now: another call must not tell them too
	s := m.shared
	m.mu.Unlock()
	c, err := s.Count(ctx, q)
	m.mu.Lock()
	if err != nil {
		m.pendDay += q.Day.Add
		m.pendMonth += q.Month.Add
		return Counted{}, false
	}
	if q.Day.Key == m.dayKey {
		m.seenDay = c.Day.Billable
	}
	if q.Month.Key == m.monthKey {
		m.seenMonth = c.Month.Billable
	}
	if detail {
		m.cluster = &ClusterFigures{Replica: m.replica, AsOf: m.now().UTC(), Today: c.Day, Month: c.Month}
	}
	return c, true
}

// reserveShared counts a call with the other replicas. A quota that
// refuses is asked of the store, one round trip, so that replicas cannot
// pass it together; otherwise the call is told at the next Sync. While
// the store does not answer, this replica takes its share of what was
// left. m.mu is held.
func (m *Meter) reserveShared(ctx context.Context, now time.Time) error {
	if m.quota == nil || m.quota.OnExhausted != config.OnExhaustedReject {
		m.pendDay++
		m.pendMonth++
		return nil
	}
	c, ok := m.count(ctx, true, false)
	switch {
	case ok && !c.Taken:
		if err := m.exhausted(now); err != nil {
			return err
		}
		return &QuotaError{Upstream: m.upstream, Period: "daily", Limit: m.quota.Daily, RetryAfter: m.dayEnd.Sub(now)}
	case ok:
		return nil
	}
	if err := m.exhaustedShare(now); err != nil {
		return err
	}
	m.pendDay++
	m.pendMonth++
	return nil
}

// exhaustedShare is exhausted while the store is away: each replica may
// take its share of what the quota had left when last heard. m.mu is held.
func (m *Meter) exhaustedShare(now time.Time) error {
	rank, n := m.shared.Share()
	share := func(limit, seen int64) int64 {
		left := max(limit-seen, 0)
		s := left / int64(n)
		if int64(rank) < left%int64(n) {
			s++
		}
		return seen + s
	}
	q := m.quota
	switch {
	case q.Daily > 0 && m.seenDay+m.pendDay >= share(q.Daily, m.seenDay):
		return &QuotaError{Upstream: m.upstream, Period: "daily", Limit: q.Daily, RetryAfter: m.dayEnd.Sub(now)}
	case q.Monthly > 0 && m.seenMonth+m.pendMonth >= share(q.Monthly, m.seenMonth):
		return &QuotaError{Upstream: m.upstream, Period: "monthly", Limit: q.Monthly, RetryAfter: m.monthEnd.Sub(now)}
	}
	return nil
}

// Sync tells the store the calls counted here since it was last told
// and reads the cluster's counts, by replica, for Report.
func (m *Meter) Sync(ctx context.Context) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shared == nil {
		return
	}
	m.roll(now)
	m.count(ctx, false, true)
}
