package ratelimit

import (
	"math"
	"time"
)

// The adaptive rate's rule is written down in docs/ratelimit.md ("The
// adaptive rate"), which these constants are the parameters of. Rates are
// paces, in calls a second: a configured rate's ceiling is already less
// the headroom.
const (
	// adaptiveRound is the shortest time a rate is tried before it is
	// judged: a round. The rate falls at most once a round and rises at
	// most once a round, whatever the call rate, so that a limiter at a
	// low rate still moves within seconds.
	adaptiveRound = 250 * time.Millisecond
	// adaptiveFirstCut is the first decrease from an unknown rate (the
	// app's own pace, when nothing held it back): a quarter, since the
	// app's demand says nothing of the vendor's limit.
	adaptiveFirstCut = 0.25
	// adaptiveBeta is the decrease on a 429 when no lower rate is proven.
	adaptiveBeta = 0.5
	// adaptiveConverged: once the rate that drew a 429 is within this
	// factor of the rate proven, the bisection stops (its next probe, a
	// tenth above the proven rate, would as likely draw a 429 as not); the
	// rate then creeps up by adaptiveCreep a round, once adaptiveCalm has
	// passed since that 429, until it is within adaptiveSettled of it
	// (twice that while 429s pause every call: settleUnder): there it
	// stays. The bisection lands anywhere in the last 20% below a rate
	// that drew a 429; the creep, one 429 later, within 2% under the
	// vendor's limit (within 4% while 429s pause every call). It waits, so
	// that the search's first seconds cost no more 429s, each of which may
	// pause every call for a second or more.
	adaptiveConverged = 1.2
	adaptiveSettled   = 1.02
	adaptiveCreep     = 1.02
	adaptiveCalm      = 10 * time.Second
	// adaptiveProofCalls: near a rate that drew a 429 (within
	// adaptiveConverged), a round proves its rate only with this many calls
	// answered, or after adaptiveProofMax: a few calls may pass at a rate a
	// little above the vendor's limit.
	adaptiveProofCalls = 20
	adaptiveProofMax   = 2 * time.Second
	// adaptiveBelieve is how long a rate that drew a 429 while the pace
	// was pushing against it is believed to be too high; then the rate
	// probes again, so that a vendor that raised its limit is found.
	adaptiveBelieve = time.Minute
	// adaptiveMemory is how long the best rate calls succeeded at is
	// remembered without being confirmed again.
	adaptiveMemory = time.Minute
	// adaptiveForeign: a 429 at a pace under this share of the best rate
	// that recently succeeded is not about the pace (another client of
	// the account, a storm of refusals): it costs no decrease.
	adaptiveForeign = 0.6
	// adaptiveFloorShare: a 429 never takes the rate under this share of
	// the best rate that recently succeeded.
	adaptiveFloorShare = 0.5
	// adaptiveDoubt is how long a rate that drew a 429 is believed too
	// high when the pace did not hold the call back (the app's own pace
	// drew it), or within adaptiveBelieve of a storm: 429s the pace cannot
	// explain (at a rate just proven, or far below the best) coming close
	// together, in which a rate that drew one says little of the limit.
	adaptiveDoubt = 2 * time.Second
	// adaptiveStormCount 429s the pace cannot explain within
	// adaptiveStormWithin are a storm of refusals, in which a rate that
	// drew a 429 is believed for adaptiveDoubt only; fewer are jitter.
	adaptiveStormCount  = 3
	adaptiveStormWithin = 5 * time.Second
	// adaptiveHalfLife: while 429s keep coming at a pace far below the
	// best rate, that best rate is believed less, halving over this long,
	// so that a vendor that really lowered its limit is followed down.
	adaptiveHalfLife = 10 * time.Second
	// adaptiveRecover is the growth a round while the rate is under the
	// best rate that recently succeeded; adaptiveProbe the growth a round
	// above it when no rate is known to be too high.
	adaptiveRecover = 2
	adaptiveProbe   = 1.5
	// adaptiveCostlyStep: while the vendor's 429s pause every call (they
	// carry Retry-After), a probe above the proven rate rises at most this
	// much a round: a 429 then costs a second or more of the whole quota,
	// a round a tenth too slow a fortieth of one. The same holds once the
	// rate that drew the last such 429 is no longer believed: a jump to
	// the demand would likely cost another pause.
	adaptiveCostlyStep = 1.1
	// adaptiveSame: rates within this factor are the same rate, as the
	// pace's intervals round them.
	adaptiveSame = 1.01
	// adaptiveDemand: probing never takes the rate past this multiple of
	// the calls asking for slots, so that a backlog a pause left behind
	// does not push it to the vendor's limit and draw a 429 for nothing.
	adaptiveDemand = 2
	// adaptiveSeed: a pause that finds the rate unknown sets it to this
	// multiple of the pace calls were leaving at, so that the calls it held
	// leave spaced, and faster than new ones come.
	adaptiveSeed = 2
	// adaptiveMinRate is the floor, in calls a second: a vendor answering
	// only 429s is still asked now and then.
	adaptiveMinRate = 0.2
)

// adaptiveRate learns an upstream's real rate from its answers: it bisects
// between the rate last proven (calls the pace held back all succeeded for
// a round) and the rate that last drew a 429, and recovers quickly towards
// the best rate calls recently succeeded at. It is not safe for concurrent
// use; Local holds its lock.
type adaptiveRate struct {
	ceiling float64 // the configured rate less the headroom, or +Inf
	rate    float64 // the rate now; +Inf until the first 429 when unconfigured

	good   float64       // the last rate proven under pressure; 0 none
	bad    float64       // the rate that drew the last 429 counted; 0 none
	badAt  time.Time     // when
	badFor time.Duration // how long bad is believed

	best    float64   // the best rate calls succeeded at lately, measured
	bestAt  time.Time // when it was last confirmed
	foreign time.Time // the last 429 taken as not about the pace
	// unexplained are the times of the last 429s the pace cannot explain,
	// newest last; stormAt is when they last came close together.
	unexplained [adaptiveStormCount]time.Time
	stormAt     time.Time

	cutAt time.Time // the last 429 counted: those of calls sent before are its round's
	// costly says the last 429 counted paused every call (Retry-After).
	costly bool

	round   time.Time // when the round began
	oks     int       // calls answered without a 429 in the round
	refused bool      // a 429 came in the round
	pressed bool      // the pace held calls back or refused them in the round
	asked   int       // calls that asked for a slot in the round: the demand
	lastOK  bool      // the latest answer was not a 429
	heldCut bool      // the last decrease was a 429 of a call the pace held back
	// reprobe: the rate the pace pushed against has been believed too high
	// for adaptiveBelieve; the rate now creeps up to find whether the
	// vendor raised its limit, rather than jump to the demand.
	reprobe bool
}

func newAdaptiveRate(ceiling float64) adaptiveRate {
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	return adaptiveRate{ceiling: ceiling, rate: ceiling}
}

// bestNow is the best rate calls succeeded at, if confirmed lately.
func (a *adaptiveRate) bestNow(now time.Time) float64 {
	if now.Sub(a.bestAt) > adaptiveMemory {
		return 0
	}
	return a.best
}

// throttled records a 429 for a call sent at sent, when the pace it left
// at was from and held says the pace, not the app, set it; paused says
// the 429 paused every call. It reports whether the rate changed.
func (a *adaptiveRate) throttled(now, sent time.Time, from float64, held, paused bool) bool {
	a.refused, a.lastOK, a.reprobe = true, false, false
	if !sent.After(a.cutAt) {
		return false // sent before the last cut: that round is answered for
	}
	a.cutAt, a.costly = now, paused
	best := a.bestNow(now)
	if best > 0 && from < adaptiveForeign*best {
		// Far below a pace that just succeeded: not about the pace. The
		// rate stays; best fades while such refusals go on.
		if now.Sub(a.foreign) < 2*time.Second {
			a.best *= math.Exp2(-now.Sub(a.foreign).Seconds() / adaptiveHalfLife.Seconds())
		}
		a.foreign, a.bad = now, 0
		a.unexplainedAt(now)
		return false
	}
	proven := a.good > 0 && from <= a.good*adaptiveSame
	if proven {
		a.unexplainedAt(now) // refused at a rate just proven: not the pace alone
	}
	prev := a.rate
	switch {
	case a.good > 0 && !proven && a.costly:
		// Back to the rate proven, but never nearer the rate that drew
		// this 429 than the search settles.
		a.rate = min(a.good, a.settleUnder(from))
	case a.good > 0 && !proven:
		a.rate = a.good
	case proven:
		// The limit is just under a rate calls passed at: a step below
		// it, as far as the creep would have gone. Another 429 there,
		// before a round proves it, halves.
		a.rate = from / adaptiveSettled
	case math.IsInf(a.rate, 1):
		a.rate = from * adaptiveFirstCut
	default:
		a.rate = from * adaptiveBeta
	}
	if proven {
		a.good = 0
	}
	// A 429 at a pace the app set, not the limiter, is weak evidence:
	// believed for adaptiveDoubt only.
	a.heldCut, a.bad, a.badAt, a.badFor = held, from, now, adaptiveDoubt
	if held {
		a.badFor = adaptiveBelieve
	}
	a.rate = max(adaptiveMinRate, min(a.ceiling, max(a.rate, adaptiveFloorShare*best)))
	return a.rate != prev
}

// unexplainedAt records a 429 the pace cannot explain. A few of them
// close together are a storm; one alone is likely a call the network or
// the vendor's clock delayed, and changes no belief.
func (a *adaptiveRate) unexplainedAt(now time.Time) {
	copy(a.unexplained[:], a.unexplained[1:])
	a.unexplained[len(a.unexplained)-1] = now
	if now.Sub(a.unexplained[0]) <= adaptiveStormWithin {
		a.stormAt = now
	}
}

// succeeded records a call answered without a 429.
func (a *adaptiveRate) succeeded() { a.oks++; a.lastOK = true }

// step closes the round once it has run adaptiveRound (near a rate that
// drew a 429, once it has adaptiveProofCalls answers or adaptiveProofMax),
// and reports whether the rate changed. A round with calls answered and no
// 429 measures the rate they succeeded at; if the pace held calls back in
// it, the rate is proven and grows.
func (a *adaptiveRate) step(now time.Time) bool {
	elapsed := now.Sub(a.round)
	if elapsed < adaptiveRound {
		return false
	}
	if a.pressed && !a.refused && a.near() && a.oks < adaptiveProofCalls && elapsed < adaptiveProofMax {
		return false // not proven yet: the round goes on
	}
	prev := a.rate
	if !a.refused && a.oks > 1 {
		// Never above the rate in force: the calls answered in a short
		// round can be one more than its length at the rate allows.
		measured := min(a.rate, float64(a.oks)/elapsed.Seconds())
		if measured > a.best || measured >= 0.9*a.best || now.Sub(a.bestAt) > adaptiveMemory {
			a.best, a.bestAt = max(measured, a.bestNow(now)), now
		}
	}
	if a.pressed && !a.refused && (a.lastOK || !a.heldCut) && !math.IsInf(a.rate, 1) {
		if a.oks > 0 {
			a.good = a.rate
		}
		demand := float64(a.asked) / elapsed.Seconds()
		a.rate = a.grow(now, a.oks > 0, demand)
	}
	a.round, a.oks, a.refused, a.pressed, a.asked = now, 0, false, false, 0
	return a.rate != prev
}

// settleUnder is the rate the search settles at under bad, a rate that
// drew a 429: adaptiveSettled under it, or that twice while the vendor's
// 429s pause every call, since calls then arrive closer together than
// they left by as much as the network or the vendor's machine delays one
// of them, and each 429 costs a second of the whole quota.
func (a *adaptiveRate) settleUnder(bad float64) float64 {
	if a.costly {
		return bad / (adaptiveSettled * adaptiveSettled)
	}
	return bad / adaptiveSettled
}

// near says the rate is within adaptiveConverged of one that drew a 429.
func (a *adaptiveRate) near() bool { return a.bad > 0 && a.bad <= adaptiveConverged*a.rate }

// grow is the rate after a round in which the pace held calls back or
// refused them and no 429 came: answered says calls succeeded in it,
// proving the rate; without answers (a slow rate), the rate still grows
// while the last answer was a success or the last decrease was not the
// pace's fault, so that it cannot stay at a floor. demand is the
// rate calls asked for slots at in the round.
func (a *adaptiveRate) grow(now time.Time, answered bool, demand float64) float64 {
	believe := a.badFor
	if now.Sub(a.stormAt) < adaptiveBelieve {
		believe = min(believe, adaptiveDoubt)
	}
	if a.bad > 0 && now.Sub(a.badAt) > believe {
		a.bad, a.reprobe = 0, believe >= adaptiveBelieve
	}
	best := a.bestNow(now)
	next := a.rate
	switch {
	case a.rate < best && a.bad > adaptiveConverged*a.rate: // recovering, but never past a rate believed too high
		next = min(best, a.rate*adaptiveRecover, math.Sqrt(a.rate*a.bad))
	case a.rate < best && a.bad == 0:
		next = min(best, a.rate*adaptiveRecover)
	case a.bad > adaptiveConverged*a.rate && answered && a.costly:
		next = min(math.Sqrt(a.rate*a.bad), a.rate*adaptiveCostlyStep)
	case a.bad > adaptiveConverged*a.rate && answered:
		next = math.Sqrt(a.rate * a.bad)
	case a.settleUnder(a.bad) > a.rate*adaptiveSame && answered && now.Sub(a.badAt) >= adaptiveCalm:
		next = min(a.rate*adaptiveCreep, a.settleUnder(a.bad))
	case a.bad > 0: // settled, calming down, or not proven yet
	case a.reprobe && answered:
		next = a.rate * adaptiveCreep
	case a.costly && answered: // nothing known above, but a 429 pauses every call
		next = max(a.rate, min(a.rate*adaptiveCostlyStep, adaptiveDemand*demand))
	default: // nothing known above: up to the demand at once, past it gently
		next = max(a.rate, min(max(a.rate*adaptiveProbe, demand), adaptiveDemand*demand))
	}
	return min(a.ceiling, next)
}

// seed gives an unconfigured limiter a rate without a 429: above the pace
// calls were leaving at, so that calls held by a pause leave spaced after
// it, and faster than new ones come, so that they drain.
func (a *adaptiveRate) seed(pace float64) {
	if math.IsInf(a.rate, 1) {
		a.rate = max(adaptiveMinRate, adaptiveSeed*pace)
	}
}
