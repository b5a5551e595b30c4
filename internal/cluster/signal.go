package cluster

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/ratelimit"
)

// learnedFor is how long Redis keeps a learned rate for a replica that
// starts: after that it learns afresh.
const learnedFor = 10 * time.Minute

// Tell implements ratelimit.Shared: the signal is kept in Redis, with its
// expiry, for a replica that starts later, and published to those live.
// A rate is "rate ID UPSTREAM RATE BAD BAD-FOR-µs", a stated quota "quota
// ID UPSTREAM REMAINING RESET-µs".
func (u *Upstream) Tell(ctx context.Context, s ratelimit.Signal) error {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	var msg, key, value string
	var expiry time.Duration
	switch {
	case s.Rate > 0:
		msg = fmt.Sprintf("rate %s %s %g %g %d", u.c.self.ID, u.name, s.Rate, s.Bad, s.BadFor.Microseconds())
		key, value, expiry = u.c.key("learned", u.name), strconv.FormatFloat(s.Rate, 'g', -1, 64), learnedFor
	case s.Reset > 0:
		msg = fmt.Sprintf("quota %s %s %d %d", u.c.self.ID, u.name, s.Remaining, s.Reset.Microseconds())
		key, value, expiry = u.c.key("stated", u.name), strconv.FormatInt(s.Remaining, 10), s.Reset
	default:
		return nil
	}
	pipe := u.c.db().Pipeline()
	pipe.Set(cctx, key, value, expiry)
	pipe.Publish(cctx, u.c.key("pauses"), msg)
	_, err := pipe.Exec(cctx)
	return u.c.result(err)
}

// Hear implements ratelimit.Shared: f is told the signals other replicas
// publish for this upstream (the last f given, since a reload makes a new
// limiter), and at once what Redis still keeps: one round trip, bounded
// by redis.timeout, as the upstream is made.
func (u *Upstream) Hear(f func(ratelimit.Signal)) {
	u.c.mu.Lock()
	u.c.hear[u.name] = f
	u.c.mu.Unlock()
	u.recall(f)
}

// recall tells f the learned rate and stated quota Redis keeps, if any.
func (u *Upstream) recall(f func(ratelimit.Signal)) {
	if !u.c.Up() {
		return
	}
	ctx, cancel := u.c.call(context.Background())
	defer cancel()
	pipe := u.c.db().Pipeline()
	rate := pipe.Get(ctx, u.c.key("learned", u.name))
	left := pipe.Get(ctx, u.c.key("stated", u.name))
	ttl := pipe.PTTL(ctx, u.c.key("stated", u.name))
	_, _ = pipe.Exec(ctx)                                                                       // a missing key is redis.Nil: nothing kept
	if r, err := strconv.ParseFloat(rate.Val(), 64); err == nil && r > 0 && !math.IsInf(r, 0) { // NaN > 0 is false
		f(ratelimit.Signal{Rate: r})
	}
	if n, err := strconv.ParseInt(left.Val(), 10, 64); err == nil && n >= 0 && ttl.Val() > 0 {
		f(ratelimit.Signal{Remaining: n, Reset: ttl.Val()})
	}
}

// signal reads a published rate or stated quota: ok is false when msg is
// neither, or is this replica's own.
func (c *Cluster) signal(msg string) (name string, s ratelimit.Signal, ok bool) {
	f := strings.Fields(msg)
	switch {
	case len(f) == 6 && f[0] == "rate":
		r, err1 := strconv.ParseFloat(f[3], 64)
		bad, err2 := strconv.ParseFloat(f[4], 64)
		us, err3 := strconv.ParseInt(f[5], 10, 64)
		// Negated, so that NaN, which no comparison holds for, is refused.
		if err1 != nil || err2 != nil || err3 != nil || !(r > 0) || math.IsInf(r, 0) || !(bad >= 0) || math.IsInf(bad, 0) || us < 0 || us > int64(learnedFor/time.Microsecond) {
			return "", s, false
		}
		s = ratelimit.Signal{Rate: r, Bad: bad, BadFor: time.Duration(us) * time.Microsecond}
	case len(f) == 5 && f[0] == "quota":
		n, err1 := strconv.ParseInt(f[3], 10, 64)
		us, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || n < 0 || us <= 0 || us > int64(31*24*time.Hour/time.Microsecond) {
			return "", s, false
		}
		s = ratelimit.Signal{Remaining: n, Reset: time.Duration(us) * time.Microsecond}
	default:
		return "", s, false
	}
	return f[2], s, f[1] != c.self.ID
}
