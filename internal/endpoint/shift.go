package endpoint

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Shift is an operator's move of traffic away from a zone or one
// endpoint, until it expires or is removed (a zonal shift).
type Shift struct {
	ID       string    `json:"id"`
	Zone     string    `json:"zone,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Until    time.Time `json:"until"`
	// Shared says every replica has it (kept in Redis): removed on one,
	// it ends on all.
	Shared bool `json:"shared,omitempty"`
}

// Shift lengths: default and most.
const (
	DefaultShift = time.Hour
	MaxShift     = 72 * time.Hour
)

// ErrShift refuses a shift that names nothing, or would leave no endpoint.
var ErrShift = errors.New("shift refused")

func (s Shift) covers(e *Endpoint) bool {
	return (s.Zone != "" && e.Zone == s.Zone) || (s.Endpoint != "" && (e.URL.String() == s.Endpoint || e.URL.Redacted() == s.Endpoint))
}

// AddShift moves traffic away from a zone or an endpoint for d (0: the
// default, at most MaxShift), at once for every new call.
func (p *Pool) AddShift(now time.Time, zone, endpoint string, d time.Duration) (Shift, error) {
	return p.AddShiftID(now, "", zone, endpoint, d)
}

// AddShiftID is AddShift with the shift's id given, one no other replica
// makes; empty, the pool numbers it.
func (p *Pool) AddShiftID(now time.Time, id, zone, endpoint string, d time.Duration) (Shift, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if (zone == "") == (endpoint == "") {
		return Shift{}, fmt.Errorf("%w: name a zone or an endpoint, not both", ErrShift)
	}
	if d == 0 {
		d = DefaultShift
	}
	if d < 0 || d > MaxShift {
		return Shift{}, fmt.Errorf("%w: a shift lasts up to %s", ErrShift, MaxShift)
	}
	p.expireShifts(now)
	s := Shift{Zone: zone, Endpoint: endpoint, Until: now.Add(d)}
	named, left := 0, 0
	for _, e := range p.eps {
		switch {
		case s.covers(e):
			named++
		case !p.shifted(e):
			left++
		}
	}
	if named == 0 {
		return Shift{}, fmt.Errorf("%w: upstream %s has no endpoint in %q", ErrShift, p.upstream, zone+endpoint)
	}
	if left == 0 {
		return Shift{}, fmt.Errorf("%w: it would leave upstream %s no endpoint", ErrShift, p.upstream)
	}
	s.ID = id
	if id == "" {
		p.nextShift++
		s.ID = p.upstream + "-" + strconv.Itoa(p.nextShift)
	}
	p.shifts = append(p.shifts, s)
	p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "shift-added", Endpoint: endpoint, Zone: zone,
		Reason: fmt.Sprintf("shift %s until %s", s.ID, s.Until.UTC().Format(time.RFC3339))})
	return s, nil
}

// RemoveShift ends a shift at once.
func (p *Pool) RemoveShift(now time.Time, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.shifts, func(s Shift) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("no shift %q on upstream %s", id, p.upstream)
	}
	s := p.shifts[i]
	p.shifts = slices.Delete(p.shifts, i, i+1)
	p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "shift-removed", Endpoint: s.Endpoint, Zone: s.Zone, Reason: "shift " + id + " removed"})
	return nil
}

// Adopt takes over the shifts in force of the pool this one replaces on a
// config reload, those that still name an endpoint or zone of this one,
// so that a reload does not undo an operator's shift.
func (p *Pool) Adopt(now time.Time, old *Pool) {
	shifts := old.Shifts(now)
	old.mu.Lock()
	next := old.nextShift
	old.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextShift = max(p.nextShift, next)
	for _, s := range shifts {
		if slices.ContainsFunc(p.eps, s.covers) {
			p.shifts = append(p.shifts, s)
		}
	}
}

// SyncShifts takes the shifts every replica has (another replica's, or
// this one's once kept): those that name an endpoint of this pool are in
// force, and one among the removed ids ends. A shift this replica has
// that is in neither list stays, and is returned to be shared (again):
// one it made while the store did not answer, or one the store lost.
func (p *Pool) SyncShifts(now time.Time, shared []Shift, removed map[string]bool) (lost []Shift) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireShifts(now)
	in := map[string]bool{}
	for _, s := range shared {
		if !now.Before(s.Until) || !slices.ContainsFunc(p.eps, s.covers) {
			continue
		}
		in[s.ID] = true
		s.Shared = true
		if i := slices.IndexFunc(p.shifts, func(x Shift) bool { return x.ID == s.ID }); i >= 0 {
			p.shifts[i] = s
			continue
		}
		p.shifts = append(p.shifts, s)
		p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "shift-added", Endpoint: s.Endpoint, Zone: s.Zone,
			Reason: fmt.Sprintf("shift %s until %s, made on another replica", s.ID, s.Until.UTC().Format(time.RFC3339))})
	}
	p.shifts = slices.DeleteFunc(p.shifts, func(s Shift) bool {
		switch {
		case in[s.ID]:
			return false
		case removed[s.ID]:
			p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "shift-removed", Endpoint: s.Endpoint, Zone: s.Zone, Reason: "shift " + s.ID + " removed on another replica"})
			return true
		default:
			lost = append(lost, s)
		}
		return false
	})
	return lost
}

// Shifts lists the shifts in force.
func (p *Pool) Shifts(now time.Time) []Shift {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireShifts(now)
	return slices.Clone(p.shifts)
}

// expireShifts drops the shifts whose time is up. p.mu is held.
func (p *Pool) expireShifts(now time.Time) {
	p.shifts = slices.DeleteFunc(p.shifts, func(s Shift) bool {
		if now.Before(s.Until) {
			return false
		}
		p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "shift-expired", Endpoint: s.Endpoint, Zone: s.Zone, Reason: "shift " + s.ID + " expired"})
		return true
	})
}

// shifted reports whether a shift in force covers e. p.mu is held.
func (p *Pool) shifted(e *Endpoint) bool {
	return slices.ContainsFunc(p.shifts, func(s Shift) bool { return s.covers(e) })
}
