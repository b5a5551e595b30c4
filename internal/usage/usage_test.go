package usage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
)

type events struct{ got []incident.Event }

func (e *events) Publish(ev incident.Event) { e.got = append(e.got, ev) }

func upstream(t *testing.T, doc string) *config.Upstream {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("upstreams:\n  pay:\n    url: http://x\n"+doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Upstreams["pay"]
}

// Daily quota 100, warnings at 80 and 95: the events come at the 80th and
// 95th call, the 100th exhausts it, the 101st is refused until the local
// midnight of the quota's time zone; a new day starts afresh.
func TestQuotaWarnsAndRejects(t *testing.T) {
	ev := &events{}
	m := NewMeter("pay", ev)
	m.Configure(upstream(t, "    quota: {daily: 100, timezone: America/New_York}\n"))
	now := time.Date(2026, 11, 25, 22, 30, 0, 0, time.UTC) // 17:30 in New York
	m.now = func() time.Time { return now }
	at := map[int]string{}
	for i := 1; i <= 100; i++ {
		if err := m.Reserve(context.Background(), "default"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		for len(ev.got) > len(at) {
			at[i] = ev.got[len(at)].Type
		}
	}
	if at[80] != incident.QuotaWarning || at[95] != incident.QuotaWarning || at[100] != incident.QuotaExhausted || len(at) != 3 {
		t.Errorf("events at calls %v", at)
	}
	err := m.Reserve(context.Background(), "default")
	var qe *QuotaError
	if !errors.As(err, &qe) || qe.Period != "daily" || qe.RetryAfter != 6*time.Hour+30*time.Minute {
		t.Fatalf("call 101: %v, want refused until New York's midnight (6h30m)", err)
	}
	if r := m.Report(); r.Quota.UsedToday != 100 || r.Today.Billable != 100 {
		t.Errorf("a refused call was counted: %+v", r.Quota)
	}
	now = now.Add(6*time.Hour + 31*time.Minute)
	if err := m.Reserve(context.Background(), "default"); err != nil {
		t.Errorf("after midnight: %v", err)
	}
	if r := m.Report(); r.Quota.UsedToday != 1 || r.Quota.UsedMonth != 101 {
		t.Errorf("the new day: %+v", r.Quota)
	}
}

// Spent is billable × price and saved is savings × price, exact, with a
// route priced apart; alert mode lets calls go on past the quota.
func TestCostIsExact(t *testing.T) {
	m := NewMeter("pay", nil)
	m.Configure(upstream(t, "    cost: {per_call: \"0.002\"}\n    quota: {monthly: 50, on_exhausted: alert}\n    routes:\n      - {name: write, match: POST /x, cost: {per_call: \"0.01\"}}\n"))
	for range 100 {
		if err := m.Reserve(context.Background(), "default"); err != nil {
			t.Fatal(err)
		}
	}
	for range 900 {
		m.Saved("default", ByCache)
	}
	for range 3 {
		_ = m.Reserve(context.Background(), "write")
	}
	m.Reserve(context.Background(), "write")
	m.Refund("write") // never reached the vendor
	m.Saved("write", ByDedup)
	r := m.Report()
	if r.Today.Spent != "0.23" || r.Today.Saved != "1.81" || r.Currency != "USD" || r.Today.Billable != 103 {
		t.Errorf("today: spent %s saved %s billable %d (%s), want 0.23 (100 × 0.002 + 3 × 0.01), 1.81", r.Today.Spent, r.Today.Saved, r.Today.Billable, r.Currency)
	}
	if r.Month.Routes["write"].SavedDedup != 1 {
		t.Errorf("routes %+v", r.Month.Routes)
	}

	// The counts survive a restart within the same periods.
	fresh := NewMeter("pay", nil)
	fresh.Configure(upstream(t, "    cost: {per_call: \"0.002\"}\n"))
	fresh.Restore(m.State())
	if got := fresh.Report(); got.Today.Billable != 103 {
		t.Errorf("restored %+v", got.Today)
	}
	old := m.State()
	old.DayKey, old.MonthKey = "2020-01-01", "2020-01"
	stale := NewMeter("pay", nil)
	stale.Restore(old)
	if got := stale.Report(); got.Today.Billable != 0 || got.Month.Billable != 0 {
		t.Errorf("counts of periods gone by were restored: %+v", got)
	}
}

// The bookkeeping on the request path, for the closing note.
func BenchmarkReserve(b *testing.B) {
	m := NewMeter("pay", nil)
	cfg, _ := config.Parse("t.yaml", []byte("upstreams:\n  pay:\n    url: http://x\n    cost: {per_call: \"0.002\"}\n    quota: {daily: 1000000000}\n"), func(string) (string, bool) { return "", false })
	m.Configure(cfg.Upstreams["pay"])
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Reserve(context.Background(), "default")
	}
}

// memStore keeps states in memory, as the job store's records do.
type memStore struct{ saved map[string]State }

func (m *memStore) Save(_ context.Context, s map[string]State) error { m.saved = s; return nil }
func (m *memStore) Load(context.Context) (map[string]State, error)   { return m.saved, nil }

// Stopped by a signal, the book saves once more as Run ends: nothing
// counted is lost (docs/cost.md); a crash loses at most one period.
func TestBookSavesAsItStops(t *testing.T) {
	store := &memStore{saved: map[string]State{}}
	b := NewBook(nil)
	if err := b.Restore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); b.Run(time.Hour, stop) }()
	for range 7 {
		_ = b.Meter("pay").Reserve(context.Background(), "default")
	}
	close(stop)
	<-done
	if got := store.saved["pay"].DayN; got != 7 {
		t.Fatalf("saved %d calls as it stopped, want 7", got)
	}
	again := NewBook(nil)
	if err := again.Restore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if got := again.Meter("pay").Report().Today.Billable; got != 7 {
		t.Errorf("restored %d calls, want 7", got)
	}
}
