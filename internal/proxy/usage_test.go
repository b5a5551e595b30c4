package proxy_test

import (
	"fmt"
	"testing"

	"github.com/seawall/seawall/internal/fakeapi"
)

// Cost, acceptance row 6: 1,000 requests on a cached route, 900 of them
// answered from the cache: spent is the billable calls × the price, and
// saved is 900 × the price, exact to the cent; a route priced apart and
// a deduplicated job count on their own.
func TestUsageCostIsExact(t *testing.T) {
	s := newStack(t, "", `    cost: {per_call: "0.002"}
    cache: {ttl: 1m}
    routes:
      - {name: list, match: "GET /v1/items/{id}", mode: cached}
`)
	s.fake.Set(fakeapi.Behavior{Headers: map[string]string{"Cache-Control": "max-age=600"}})
	for i := range 1000 {
		if r := s.get(fmt.Sprintf("/api/v1/items/%d", i/10)); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	reports := s.ups.UsageReports()
	if len(reports) != 1 {
		t.Fatalf("usage %+v", reports)
	}
	r := reports[0]
	t.Logf("billable %d, saved by the cache %d, spent %s %s, saved %s", r.Today.Billable, r.Today.SavedCache, r.Today.Spent, r.Currency, r.Today.Saved)
	if r.Today.Billable != int64(s.fake.Count()) || r.Today.Billable != 100 {
		t.Errorf("billable %d, the vendor saw %d calls", r.Today.Billable, s.fake.Count())
	}
	if r.Today.SavedCache != 900 || r.Today.Spent != "0.20" || r.Today.Saved != "1.80" || r.Month.Spent != "0.20" || r.Currency != "USD" {
		t.Errorf("today %+v, want 900 saved, 0.20 spent, 1.80 saved", r.Today)
	}
	if got := s.metric("usage_calls", "upstream=api", "period=day", "kind=saved_by_cache"); got != 900 {
		t.Errorf("seawall_usage_calls{kind=saved_by_cache} = %v", got)
	}
}
