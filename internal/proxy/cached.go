package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"strconv"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/upstream"
)

// ErrNotCached answers a request with only-if-cached that the cache cannot serve.
var ErrNotCached = errors.New("not in cache")

// key is the primary cache key: method, upstream, path and the chosen
// query, then a hash of the caller's identity and the key headers. Purging
// by prefix works on "GET|upstream|/path".
func cacheKey(rc *upstream.CachePolicy, u *upstream.Upstream, r *http.Request, path string) string {
	query := r.URL.RawQuery
	if rc.KeyQuery != nil {
		q := r.URL.Query()
		kept := url.Values{}
		for _, name := range rc.KeyQuery {
			if v, ok := q[name]; ok {
				kept[name] = v
			}
		}
		query = kept.Encode()
	}
	hash := rc.KeyHash(r.Header)
	var b strings.Builder
	b.Grow(len("GET||") + len(u.Name) + len(path) + len(query) + 2 + len(hash))
	for _, part := range [...]string{upstream.CacheKeyPrefix(u.Name, path), "?", query, "|"} {
		b.WriteString(part)
	}
	b.Write(hash[:])
	return b.String()
}

// varyKey extends a primary key with the request's values of the headers
// the stored response varies on.
func varyKey(primary string, names []string, r *http.Request) string {
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		fmt.Fprintf(&b, "|%s=%q", n, cache.VaryValue(r.Header, n))
	}
	return b.String()
}

// lookup finds the stored entry for a request, following a Vary marker.
func (p *Proxy) lookup(primary string, r *http.Request) (*cache.Entry, string) {
	e, ok := p.cache.Get(primary)
	if !ok {
		return nil, primary
	}
	if e.Status != 0 {
		return e, primary
	}
	names, _ := cache.VaryNames(e.Header) // a Vary marker
	full := varyKey(primary, names, r)
	e, ok = p.cache.Get(full)
	if !ok {
		return nil, full
	}
	return e, full
}

// store keeps a response under its key, writing a Vary marker first when
// the response varies.
func (p *Proxy) store(primary string, r *http.Request, e *cache.Entry, o cache.Overrides) bool {
	keep := e.KeepFor(p.now(), o)
	names, _ := cache.VaryNames(e.Header)
	if len(names) == 0 {
		return p.cache.Set(primary, e, keep)
	}
	p.cache.Set(primary, &cache.Entry{Header: http.Header{"Vary": {strings.Join(names, ", ")}}}, keep)
	return p.cache.Set(varyKey(primary, names, r), e, keep)
}

// fillResult is what one upstream call for a key produced.
type fillResult struct {
	entry   *cache.Entry // the response, body in memory; nil on error or when too large
	stored  bool
	notes   string // why it was not stored
	status  int    // the upstream's status, 0 if none
	err     error
	stream  *http.Response // a response too large to hold, for the leader alone
	revalid bool           // a 304 refreshed the stale entry
	private bool           // it sets a cookie: for the leader alone
}

// serveCached is the cached mode of package doc step 1: answer from the
// cache, or fill it through the sync path.
func (p *Proxy) serveCached(w http.ResponseWriter, r *http.Request, c *call, path string) {
	rc := c.Route.Cache
	primary := cacheKey(rc, c.Upstream, r, path)
	rq := cache.ParseCacheControl(r.Header)
	stale, key := p.lookup(primary, r)
	now := p.cacheNow(c)
	var v cache.Verdict
	if stale != nil {
		v = stale.Judge(rq, now, rc.Over)
		switch {
		case v.Fresh:
			p.cacheHit(w, r, c, stale, now, hitStatus(ttlSeconds(v.TTL)), "hit")
			return
		case v.ServeWhileRevalidating:
			p.cacheHit(w, r, c, stale, now, fmt.Sprintf("Seawall; hit; ttl=%d; detail=stale-while-revalidate", ttlSeconds(v.TTL)), "stale")
			bg, br := *c, r.Clone(context.WithoutCancel(r.Context()))
			bg.interim = nil       // the app has its answer
			br.Header.Del("Range") // the revalidation fetches, and stores, the whole
			br.Header.Del("If-Range")
			p.goBackground("revalidate "+primary, func() {
				if res, _ := p.fill(br.Context(), br, &bg, primary, key, stale); res.stream != nil {
					_ = res.stream.Body.Close() // too large to cache; nobody to send it to
				}
			})
			return
		}
	}
	if rq.OnlyIfCached {
		p.cacheProblem(w, r, c, fmt.Errorf("%w: the request has only-if-cached", ErrNotCached), "fwd=miss; detail=only-if-cached")
		return
	}
	if headerFirst(r.Header, "Range") != "" {
		// A part is answered from a stored whole (writeEntry); without one
		// it is passed through, and not stored.
		c.Upstream.M.CacheLookup("bypass")
		w.Header().Set("Cache-Status", "Seawall; fwd=bypass; detail=range")
		p.serveSync(w, r, c)
		return
	}
	c.interim.begin(w, r)
	res, led := p.fill(r.Context(), r, c, primary, key, stale)
	c.interim.stop()
	if !led && (res.stream != nil || res.private) {
		res = fillResult{err: errTooLargeToShare} // not for another caller
	}
	if errors.Is(res.err, errTooLargeToShare) {
		c.Upstream.M.CacheLookup("bypass")
		p.serveSync(w, r, c)
		return
	}
	failed := res.err != nil || res.status >= 500
	if failed && stale != nil && v.ServeOnError && !c.ClientGone() {
		p.cacheHit(w, r, c, stale, now, fmt.Sprintf("Seawall; fwd=stale; %sttl=%d; detail=stale-if-error", fwdStatus(res.status), ttlSeconds(v.TTL)), "stale")
		p.staleEvents.Publish(incident.Event{Type: incident.CacheStale, Upstream: c.Upstream.Name, Severity: incident.Warning,
			Summary:  fmt.Sprintf("serving stale answers: the vendor failed (%s); answered from the cache, %s old", staleCause(res), stale.Age(now).Round(time.Second)),
			Evidence: map[string]any{"status": res.status, "path": truncate(c.Path, 200)}})
		return
	}
	p.cacheForwarded(w, r, c, res, stale != nil, led)
}

// cacheNow is the time a request's cached answer is judged at: its start,
// read once for the whole exchange, unless a test set the clock.
func (p *Proxy) cacheNow(c *call) time.Time {
	if p.clockSet {
		return p.now()
	}
	return c.start
}

// hitStatus is the Cache-Status of a fresh hit, built with one allocation.
func hitStatus(ttl int64) string {
	var b [48]byte
	return string(strconv.AppendInt(append(b[:0], "Seawall; hit; ttl="...), ttl, 10))
}

// errTooLargeToShare sends coalesced waiters of an oversized response, and
// requests that could not wait, down the sync path on their own.
var errTooLargeToShare = errors.New("response not shareable")

// fill makes the one upstream call for a key, or waits for the call already
// in flight (at most the route's coalesce_wait). led reports whether this
// caller made the call.
func (p *Proxy) fill(ctx context.Context, r *http.Request, c *call, primary, key string, stale *cache.Entry) (fillResult, bool) {
	f, leader := p.flights.join(key)
	t, shared := p.cache.(*cache.Tiered)
	if leader && !shared {
		// A flight for this key may have landed since the caller looked.
		// (With a shared cache fillTurn asks once it holds the turn.)
		if e := p.landed(primary, r, c, stale); e != nil {
			f.res = fillResult{entry: e, stored: true, status: e.Status}
			p.flights.land(key, f)
			return f.res, true
		}
	}
	if !leader {
		wait := time.NewTimer(c.Route.Cache.Wait)
		defer wait.Stop()
		select {
		case <-f.done:
			return f.res, false
		case <-wait.C:
		case <-ctx.Done():
		}
		return fillResult{err: errTooLargeToShare}, false
	}
	if shared {
		// Replicas share the cache: one of them fills the key.
		release, e := p.fillTurn(ctx, t, r, c, primary, key, stale)
		if e != nil {
			f.res = fillResult{entry: e, stored: true, status: e.Status}
			p.flights.land(key, f)
			return f.res, false // another replica's call
		}
		defer release()
	}
	// Waiters depend on this call: it outlives the leader's client, within
	// the route's overall timeout.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Route.Overall)
	fc, inner := *c, *c.Call
	inner.Client, fc.Call = fctx, &inner
	f.res = p.fetch(fctx, r, &fc, primary, stale)
	if f.res.stream != nil {
		f.res.stream.Body = &upstream.CancelOnClose{ReadCloser: f.res.stream.Body, Cancel: cancel}
	} else {
		cancel()
	}
	c.Attempts = fc.Attempts
	p.flights.land(key, f)
	return f.res, true
}

// fillTurn waits for this replica's turn to fill key, or for the entry
// another replica's fill stores: at most the route's coalesce_wait, then
// the turn is taken. It returns the turn's release, or the entry.
func (p *Proxy) fillTurn(ctx context.Context, t *cache.Tiered, r *http.Request, c *call, primary, key string, stale *cache.Entry) (func(), *cache.Entry) {
	deadline := time.Now().Add(c.Route.Cache.Wait)
	for {
		release, mine := t.Fill(key, c.Route.Overall)
		if mine {
			// The turn is free once the last fill stored its entry and
			// let go, which may be after this replica last looked: look
			// once more, holding the turn, so that no replica refills it.
			if e := p.landed(primary, r, c, stale); e != nil {
				release()
				return nil, e
			}
			return release, nil
		}
		if !time.Now().Before(deadline) {
			return func() {}, nil // waited long enough: fetch alongside
		}
		select {
		case <-ctx.Done():
			return func() {}, nil
		case <-time.After(sharedFillPoll):
		}
		if e := p.landed(primary, r, c, stale); e != nil {
			return nil, e
		}
	}
}

// landed is the fresh entry another fill stored for the request since
// the caller found stale (nil or expired); nil when there is none.
func (p *Proxy) landed(primary string, r *http.Request, c *call, stale *cache.Entry) *cache.Entry {
	if e, _ := p.lookup(primary, r); e != nil && e != stale && e.Judge(cache.ParseCacheControl(nil), p.now(), c.Route.Cache.Over).Fresh {
		return e
	}
	return nil
}

// sharedFillPoll is how often a replica waiting for another's fill looks
// for its entry.
const sharedFillPoll = 5 * time.Millisecond

// fetch calls the upstream through the sync attempt loop and stores what it may.
func (p *Proxy) fetch(ctx context.Context, r *http.Request, c *call, primary string, stale *cache.Entry) fillResult {
	u, rc := c.Upstream, c.Route.Cache
	out := u.Outbound(ctx, r, c.Call)
	c.Interim = c.interim.hook() // nil for a background revalidation: the app has its answer
	out.Body, out.ContentLength = nil, 0
	for _, h := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"} {
		out.Header.Del(h) // the cache needs the whole response
	}
	if stale != nil {
		if etag := stale.Header.Get("ETag"); etag != "" {
			out.Header.Set("If-None-Match", etag)
		}
		if lm := stale.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	c.Cache = "miss"
	if stale != nil {
		c.Cache = "revalidate"
	}
	sent := p.now()
	resp, err := u.Do(out, c.Call)
	if err != nil {
		return fillResult{err: err}
	}
	received := p.now()
	resp.Header = filtered(resp.Header, notRelayed)
	if resp.StatusCode == http.StatusNotModified && stale != nil {
		_ = resp.Body.Close()
		e := refreshed(stale, resp.Header, sent, received, rc.Over.Targets)
		return fillResult{entry: e, stored: p.store(primary, r, e, rc.Over), status: resp.StatusCode, revalid: true}
	}
	maxResp := p.settings().MaxResponse
	if resp.ContentLength > maxResp {
		_ = resp.Body.Close()
		return fillResult{err: fmt.Errorf("%w: %d bytes, the limit is %d", ErrResponseTooLarge, resp.ContentLength, maxResp), status: resp.StatusCode}
	}
	held := min(p.maxEntry, maxResp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, held+1))
	if err != nil {
		_ = resp.Body.Close()
		return fillResult{err: fmt.Errorf("%w: reading the body: %w", ErrUpstreamUnreachable, err), status: resp.StatusCode}
	}
	if int64(len(body)) > maxResp {
		_ = resp.Body.Close()
		return fillResult{err: fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, maxResp), status: resp.StatusCode}
	}
	if int64(len(body)) > p.maxEntry {
		resp.Body = upstream.ReadCloser{Reader: io.MultiReader(bytes.NewReader(body), resp.Body), Closer: resp.Body}
		return fillResult{stream: resp, status: resp.StatusCode, notes: "too-large"}
	}
	_ = resp.Body.Close()
	e := cache.NewEntry(resp.StatusCode, resp.Header, body, sent, received, rc.Over.Targets)
	res := fillResult{entry: e, status: resp.StatusCode, private: len(resp.Header.Values("Set-Cookie")) > 0}
	ok, why := cache.Storable(r.Header, resp.StatusCode, resp.Header, rc.Over)
	if ok && res.private {
		// Stored without the cookie, which stays the leader's alone.
		kept := *e
		kept.Header = e.Header.Clone()
		kept.Header.Del("Set-Cookie")
		e = &kept
	}
	switch {
	case !ok:
		res.notes = why
	case !p.store(primary, r, e, rc.Over):
		res.notes = "too-large"
	default:
		res.stored = true
	}
	return res
}

// refreshed is a stale entry updated by a 304 (RFC 9111 §4.3.4).
func refreshed(stale *cache.Entry, h http.Header, sent, received time.Time, targets []string) *cache.Entry {
	header := stale.Header.Clone()
	for k, vs := range h {
		if k != "Content-Length" {
			header[k] = vs
		}
	}
	return cache.NewEntry(stale.Status, header, stale.Body, sent, received, targets)
}

func (p *Proxy) cacheForwarded(w http.ResponseWriter, r *http.Request, c *call, res fillResult, hadStale, led bool) {
	if res.err != nil {
		p.cacheProblem(w, r, c, res.err, "fwd=miss")
		return
	}
	fwd := "miss"
	if hadStale {
		fwd = "stale"
	}
	status := fmt.Sprintf("fwd=%s; %s", fwd, fwdStatus(res.status))
	switch {
	case res.stored:
		status += fmt.Sprintf("stored; ttl=%d", ttlSeconds(res.entry.Lifetime(c.Route.Cache.Over)))
	case res.notes != "":
		status += "detail=" + res.notes
	}
	if !led {
		status += "; collapsed"
	}
	result := "miss"
	if res.revalid {
		result = "revalidated"
	}
	c.Upstream.M.CacheLookup(result)
	if res.stream != nil {
		err := proxyResponse(w, res.stream, status, p.settings().MaxResponse)
		if err != nil {
			c.err = fmt.Errorf("relaying the body: %w", err)
		}
		p.finish(w, r, c, res.status, "upstream")
		if err != nil {
			panic(http.ErrAbortHandler) // cut short, so the app cannot take it for whole
		}
		return
	}
	if !led {
		c.Upstream.SavedByCache(c.Route)
	}
	p.finish(w, r, c, writeEntry(w, r, res.entry, p.now(), "Seawall; "+status, fromUp), "upstream")
}

func (p *Proxy) cacheHit(w http.ResponseWriter, r *http.Request, c *call, e *cache.Entry, now time.Time, status, result string) {
	c.Upstream.M.CacheLookup(result)
	c.Upstream.SavedByCache(c.Route)
	p.finish(w, r, c, writeEntry(w, r, e, now, status, fromCache), "cache")
}

func (p *Proxy) cacheProblem(w http.ResponseWriter, r *http.Request, c *call, err error, status string) {
	c.Upstream.M.CacheLookup("miss")
	w.Header().Set("Cache-Status", "Seawall; "+status)
	p.finish(w, r, c, answerError(w, c, err), "seawall")
}

// autoLengthMax is the largest body net/http holds until the handler
// returns (its bufferBeforeChunkingSize; HTTP/2's buffer is larger) and
// then sends with a Content-Length of its own making, outside the header
// map. Each field in the map is copied, sorted and written at WriteHeader,
// so a small answer leaves its length to the server.
const autoLengthMax = 2048

// writeEntry answers from a response held in memory, with cacheStatus
// as its Cache-Status and source as its Seawall-Source.
// A request whose own conditions the entry meets gets 304 (RFC 9111
// §4.3.2), whether the entry was a hit or just fetched; else a GET with a
// Range gets its part of a stored 200 (RFC 9110 §14).
func writeEntry(w http.ResponseWriter, r *http.Request, e *cache.Entry, now time.Time, cacheStatus string, source []string) int {
	if _, ranged := r.Header["Range"]; ranged && r.Method == http.MethodGet && !cache.NotModified(r.Header, e) {
		if part := cache.PartOf(r.Header, e); !part.Whole {
			return writePart(w, e, part, now, cacheStatus, source)
		}
	}
	h := w.Header()
	// Each field is assigned once: a header map holding eight fields
	// grows into a table on any further assignment, even of a field it
	// has, and that growth was a tenth of a cache hit's work. The values
	// Seawall sets share one allocation, each capped so that an append
	// to one copies it, and the two numbers among them share one string.
	var digits [40]byte
	b := strconv.AppendInt(digits[:0], int64(e.Age(now)/time.Second), 10)
	ageEnd := len(b)
	b = strconv.AppendInt(b, int64(len(e.Body)), 10)
	numbers := string(b)
	vals := make([]string, 3)
	vals[0] = numbers[:ageEnd]
	vals[1] = cacheStatus
	status := http.StatusNotModified
	if cache.NotModified(r.Header, e) {
		copyHeader(h, cache.NotModifiedHeader(e), notRelayed)
	} else {
		status = e.Status
		copyHeader(h, e.Header, notRelayedOrLength)
		if len(e.Body) > autoLengthMax {
			vals[2] = numbers[ageEnd:]
			h["Content-Length"] = vals[2:3:3]
		}
	}
	h["Age"] = vals[0:1:1]
	h["Cache-Status"] = vals[1:2:2]
	h["Seawall-Source"] = source
	w.WriteHeader(status)
	if status != http.StatusNotModified {
		_, _ = w.Write(e.Body)
	}
	return status
}

// writePart answers a Range request from a stored 200: 206 with the part,
// or 416 when no part of it is satisfiable.
func writePart(w http.ResponseWriter, e *cache.Entry, part cache.Part, now time.Time, cacheStatus string, source []string) int {
	h := w.Header()
	copyHeader(h, e.Header, notRelayedOrLength)
	size := int64(len(e.Body))
	h.Set("Content-Range", part.ContentRange(size))
	h.Set("Age", strconv.FormatInt(int64(e.Age(now)/time.Second), 10))
	h.Set("Cache-Status", cacheStatus)
	h["Seawall-Source"] = source
	status, body := http.StatusRequestedRangeNotSatisfiable, []byte(nil)
	if part.Satisfiable {
		status, body = http.StatusPartialContent, e.Body[part.First:part.Last+1]
	} else {
		h.Del("Content-Type")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// proxyResponse streams a response too large to cache, at most maxResp
// bytes of it; an error means it was cut short.
func proxyResponse(w http.ResponseWriter, resp *http.Response, cacheStatus string, maxResp int64) error {
	defer resp.Body.Close()
	h := w.Header()
	copyHeader(h, resp.Header, notRelayed)
	h.Set("Cache-Status", "Seawall; "+cacheStatus)
	h["Seawall-Source"] = fromUp
	w.WriteHeader(resp.StatusCode)
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	return copyBody(w, nil, &limitedBody{Reader: resp.Body, left: maxResp}, resp.ContentLength < 0, *buf)
}

// staleCause names why a stale answer was served.
func staleCause(res fillResult) string {
	if res.err != nil {
		return truncate(res.err.Error(), 200)
	}
	return fmt.Sprintf("it answered %d", res.status)
}

func fwdStatus(status int) string {
	if status == 0 {
		return ""
	}
	return fmt.Sprintf("fwd-status=%d; ", status)
}

func ttlSeconds(d time.Duration) int64 {
	s := d / time.Second
	if d < 0 && d%time.Second != 0 {
		s--
	}
	return int64(s)
}
