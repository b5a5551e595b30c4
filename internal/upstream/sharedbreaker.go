package upstream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/routine"
)

// Several replicas share a global upstream's breaker (docs/distributed.md):
// each replica's breaker judges its own calls, as alone, and every tick
// tells Redis whether it is open and whether its window would open it.
// Evidence from two replicas opens the cluster's breaker, and every
// replica holds its own open until then; one replica then probes the
// vendor for all, and its verdict closes or reopens every replica's.
const (
	breakerTick = 250 * time.Millisecond
	// holdPast is how long past the cluster's open-until a replica holds
	// its breaker open, renewed each tick: while it hears nothing (Redis
	// away) its own breaker decides again within it.
	holdPast = 2 * time.Second
	// probeTurn is the longest a replica keeps the turn to probe.
	probeTurn = 10 * time.Second
)

// sharedBreaker is the link between one replica's breaker and the others.
type sharedBreaker struct {
	b      *breaker.Breaker
	shared *cluster.Upstream
	id     string
	log    *slog.Logger
	wake   chan struct{}
	stop   chan struct{}
	once   sync.Once

	// zoneChanged, when set, is told each change of the verdict on this
	// replica's zone (docs/distributed.md, "The sick zone").
	zoneChanged func(v cluster.ZoneVerdict)

	mu      sync.Mutex
	zone    cluster.ZoneVerdict  // the last verdict on this replica's zone; zero while Redis does not answer
	zoneAge zoneAge              // how long the verdicts have said sick
	probing bool                 // this replica has the turn to probe
	answers []breaker.Transition // its probes' verdicts, to tell
	held    bool                 // held open by the replicas' verdict
	epoch   int64                // the cluster's closings heard of
}

// newSharedBreaker links b to the other replicas' breakers of the same
// upstream; start runs it.
func newSharedBreaker(b *breaker.Breaker, shared *cluster.Upstream, log *slog.Logger) *sharedBreaker {
	return &sharedBreaker{b: b, shared: shared, id: shared.Replica(), log: log, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (s *sharedBreaker) start(g *routine.Group, name string) {
	s.shared.OnBreaker(s.poke)
	g.Go("shared breaker "+name, s.run)
}

// poke has the loop run now.
func (s *sharedBreaker) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// changed hears this replica's breaker's transitions (with its lock
// held: it only notes them). A probe's verdict is told to the others.
func (s *sharedBreaker) changed(tr breaker.Transition) {
	if tr.Shared {
		return
	}
	s.mu.Lock()
	if tr.From == breaker.HalfOpen && s.probing {
		s.answers = append(s.answers, tr)
		s.probing = false
	}
	s.mu.Unlock()
	s.poke()
}

func (s *sharedBreaker) close() { s.once.Do(func() { close(s.stop) }) }

func (s *sharedBreaker) run() {
	t := time.NewTicker(breakerTick)
	defer t.Stop()
	for {
		s.tick()
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// tick tells the probes' verdicts, reports, and follows the verdict.
func (s *sharedBreaker) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	answers := s.answers
	s.answers = nil
	s.mu.Unlock()
	for _, tr := range answers {
		if err := s.shared.ProbeAnswered(ctx, tr.To == breaker.Closed, tr.OpenFor); err != nil {
			s.log.Warn("the probes' verdict could not be told to the other replicas", "to", tr.To.String(), "error", err.Error())
		}
	}
	e := s.b.Evidence()
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	v, err := s.shared.ReportBreaker(ctx, e.Open, s.b.Trips(e), s.b.OpenDuration(), epoch)
	now := time.Now()
	s.reportZone(ctx, e)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && v.Epoch > s.epoch {
		// Another replica's probes closed it: so is this one, held or
		// opened by its own calls before the close.
		s.epoch = v.Epoch
		if s.held || e.Open {
			s.held = false
			s.b.Close()
		}
	}
	switch {
	case err != nil:
		// Redis away: the hold lapses within holdPast, and this replica's
		// breaker decides alone.
	case v.OpenUntil.IsZero():
		if s.held {
			s.held = false
			s.b.Close() // lapsed in Redis: no replica probed in time
		}
	case now.Before(v.OpenUntil) || (v.Prober != "" && v.Prober != s.id):
		s.held, s.probing = true, false
		until := v.OpenUntil
		if until.Before(now) {
			until = now // another replica probes: held while it does
		}
		s.b.HoldOpen(until.Add(holdPast))
	case v.Prober == s.id || s.probing:
		// This replica's probes are out.
	default:
		ok, err := s.shared.ClaimProbe(ctx, probeTurn)
		if err == nil && ok {
			s.probing = true
			s.b.Release()
			return
		}
		s.b.HoldOpen(now.Add(holdPast))
	}
}

// reportZone tells the replicas what this replica's own calls say of the
// upstream, from its zone, and keeps their verdict on its zone. While the
// replicas hold its breaker open its calls say nothing: its word is
// unknown.
func (s *sharedBreaker) reportZone(ctx context.Context, e breaker.Evidence) {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	state := cluster.ZoneUnknown
	switch {
	case held:
		// Held open by the replicas: its own calls have said nothing since.
	case s.b.Trips(e) || e.Open:
		state = cluster.ZoneFailing
	case s.b.Clear(e):
		state = cluster.ZoneHealthy
	}
	v, err := s.shared.ReportZone(ctx, state)
	s.mu.Lock()
	was := s.zone
	v = s.zoneAge.judge(v, err, time.Now())
	s.zone = v
	s.mu.Unlock()
	if (was.Sick && !was.Overridden) != (v.Sick && !v.Overridden) && s.zoneChanged != nil {
		s.zoneChanged(v)
	}
}

// zoneSickFor is how long the verdict on a replica's zone must say sick
// before the replica reports unready.
const zoneSickFor = 2 * time.Second

// zoneAge is how long the verdicts on a replica's zone have said sick.
type zoneAge struct {
	sickSince time.Time // zero: the last verdict did not
	away      bool      // the last report found Redis away
	backAt    time.Time // when Redis last answered again
}

// judge is the verdict a replica acts on, given the one Redis gave (err:
// none, Redis away) at now. Sick counts only once the verdicts have said
// so for zoneSickFor: at the start of the vendor's own outage one zone's
// windows trip a moment before the others'. While Redis is away the
// replica is ready, as alone, and the verdicts' age is kept; for a
// report's lifetime after Redis answers again (restarted empty, it has
// only the reports made since), until a verdict says sick, a verdict of
// not sick does not end it, so that a zone sick before and after is
// unready again as soon as the other zones have reported, not 2 s later.
func (z *zoneAge) judge(v cluster.ZoneVerdict, err error, now time.Time) cluster.ZoneVerdict {
	if err != nil {
		z.away = true
		return cluster.ZoneVerdict{}
	}
	if z.away {
		z.away, z.backAt = false, now
	}
	if v.Sick {
		z.backAt = time.Time{} // the zones have reported: the grace is over
	}
	switch {
	case v.Overridden:
		z.sickSince = time.Time{}
	case !v.Sick:
		if now.Sub(z.backAt) >= cluster.ZoneStale {
			z.sickSince = time.Time{}
		}
	case z.sickSince.IsZero():
		z.sickSince = now
	}
	if v.Sick && !v.Overridden && now.Sub(z.sickSince) < zoneSickFor {
		v.Sick = false
	}
	return v
}

// zoneVerdict is the last verdict on this replica's zone.
func (s *sharedBreaker) zoneVerdict() cluster.ZoneVerdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.zone
}
