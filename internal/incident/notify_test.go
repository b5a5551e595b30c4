package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// memPending keeps pending notices in memory, as the job store does.
type memPending struct {
	mu sync.Mutex
	m  map[int64]Notice
}

func (p *memPending) Put(_ context.Context, _ string, n Notice) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[n.Seq] = n
	return nil
}

func (p *memPending) Done(_ context.Context, _ string, seq int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, seq)
	return nil
}

func (p *memPending) List(context.Context, string) ([]Notice, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Notice
	for _, n := range p.m {
		out = append(out, n)
	}
	return out, nil
}

// A sink gets its notices in order: a 429 or a 5xx is tried again, the
// next notice waiting behind it; any other refusal is not; below the
// sink's severity nothing is sent; a delivered notice leaves the pending
// store, a refused one too.
func TestDispatcherOrderAndRetries(t *testing.T) {
	var mu sync.Mutex
	answers := []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusAccepted, http.StatusBadRequest, http.StatusAccepted}
	var got []PagerDutyEvent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev PagerDutyEvent
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		status := answers[0]
		answers = answers[1:]
		got = append(got, ev)
		mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	pending := &memPending{m: map[int64]Notice{}}
	pd := &PagerDuty{URL: srv.URL, RoutingKey: "k", MinSev: Warning, Client: srv.Client()}
	d := NewDispatcher([]Sink{pd}, pending, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	d.Backoff, d.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	d.Start(context.Background())
	in := Incident{ID: 1, Upstream: "pay", Severity: Error}
	d.Notify(Notice{Action: Trigger, Incident: in})
	d.Notify(Notice{Action: Resolve, Incident: in})
	d.Notify(Notice{Action: Trigger, Incident: Incident{ID: 2, Upstream: "pay", Severity: Info}}) // below warning
	d.Notify(Notice{Action: Trigger, Incident: Incident{ID: 3, Upstream: "pay", Severity: Critical}})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d posts", n)
		}
	}
	d.Stop()
	var seq []string
	for _, ev := range got {
		seq = append(seq, ev.EventAction+" "+ev.DedupKey)
	}
	want := "[trigger seawall/pay/1 trigger seawall/pay/1 trigger seawall/pay/1 resolve seawall/pay/1 trigger seawall/pay/3]"
	if fmt.Sprint(seq) != want {
		t.Errorf("posts %v\nwant %s (429 and 502 retried, the 400 not, the info incident not sent)", seq, want)
	}
	if len(pending.m) != 0 {
		t.Errorf("%d notices left pending", len(pending.m))
	}
}
