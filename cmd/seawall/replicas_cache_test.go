package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testcallers"
	"github.com/seawall/seawall/internal/testredis"
)

// versionVendor answers a GET with the resource's version, cacheable for
// ten minutes, and a POST by moving to the next version; it counts GETs.
type versionVendor struct {
	version, gets atomic.Int64
}

func (v *versionVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		v.version.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	v.gets.Add(1)
	time.Sleep(20 * time.Millisecond) // long enough for the replicas' misses to meet
	w.Header().Set("Cache-Control", "max-age=600")
	_, _ = io.WriteString(w, r.URL.Path+" v"+strconv.FormatInt(v.version.Load(), 10))
}

func getBody(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("Cache-Status")
}

// Several replicas, one view, acceptance 3 with three seawall processes:
// 3 replicas × 50 concurrent GETs of one cold cacheable key make one
// vendor call; a write through replica 1 leaves replicas 2 and 3 serving
// the new version once its answer has reached the app (the window
// measured, at most 200 ms); a restarted replica serves from the shared
// level at once; with Redis killed each replica caches alone, and shares
// again once Redis is back.
func TestReplicasShareOneCache(t *testing.T) {
	alone(t, "three replicas and a measured invalidation window")
	redis := testredis.Start(t)
	vendor := &versionVendor{}
	vsrv := httptest.NewServer(vendor)
	defer vsrv.Close()
	// Redis's timeout a second: 150 requests at once on two cores delay a
	// 50 ms call now and then, and a replica whose fill turn Redis did not
	// answer fills for itself, as documented (2 vendor calls seen once).
	replicas := startReplicas(t, 3, redis.URL(), ", timeout: 1s", vsrv.URL, "    mode: cached\n    retry: {max_attempts: 1}\n    cache: {}\n    routes:\n      - {name: writes, match: \"POST /*\", mode: sync}\n")
	waitForReplicas(t, replicas, 3)

	var wg sync.WaitGroup
	var wrong atomic.Int64
	for _, r := range replicas {
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if b, _ := getBody(t, r.base+"/v/item"); b != "/item v0" {
					wrong.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if n := vendor.gets.Load(); n != 1 || wrong.Load() > 0 {
		t.Errorf("150 concurrent GETs of one cold key through 3 replicas: %d vendor calls, %d wrong answers; want 1 and 0", n, wrong.Load())
	}

	var windows []time.Duration
	old := 0 // old answers read after a write's answer
	for round := range 5 {
		resp, err := http.Post(replicas[0].base+"/v/item", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		answered := time.Now()
		want := "/item v" + strconv.Itoa(round+1)
		var window time.Duration // from the write's answer to the last old answer's arrival
		for _, r := range replicas[1:] {
			for {
				b, _ := getBody(t, r.base+"/v/item")
				if b == want {
					break
				}
				old++
				window = max(window, time.Since(answered)) // an old answer's arrival bounds the window
				if time.Since(answered) > 2*time.Second {
					t.Fatalf("round %d: %s still served %q 2 s after the write's answer", round+1, r.base, b)
				}
			}
		}
		windows = append(windows, window)
	}
	worst := time.Duration(0)
	for _, w := range windows {
		worst = max(worst, w)
	}
	if worst > 200*time.Millisecond {
		t.Errorf("after a write, replicas 2 and 3 served the old entry for up to %s, want at most 200 ms", worst)
	}

	before := vendor.gets.Load()
	replicas[2].stop(t)
	replicas[2].start(t)
	waitForReplicas(t, replicas, 3)
	if b, status := getBody(t, replicas[2].base+"/v/item"); b != "/item v5" || vendor.gets.Load() != before {
		t.Errorf("the restarted replica served %q (%s) with %d vendor calls, want /item v5 from the shared level with none", b, status, vendor.gets.Load()-before)
	}

	redis.Kill()
	before = vendor.gets.Load()
	for i, r := range replicas {
		if b, _ := getBody(t, r.base+"/v/alone"); b != "/alone v5" {
			t.Errorf("with Redis gone, replica %d served %q", i+1, b)
		}
	}
	alone := vendor.gets.Load() - before
	redis.Restart(t)
	time.Sleep(2 * time.Second) // each replica's next call to Redis finds it
	before = vendor.gets.Load()
	for _, r := range replicas {
		getBody(t, r.base+"/v/again")
	}
	if again := vendor.gets.Load() - before; alone != 3 || again != 1 {
		t.Errorf("with Redis gone the replicas made %d calls for one key (want 3, each its own); with it back, %d (want 1)", alone, again)
	}
	t.Logf("1 vendor call for 150 GETs; after five writes, %d old answers read on replicas 2 and 3 (the last arrived %v after each write's answer); restarted replica warm; Redis gone: 3 calls, back: 1", old, windows)
}

// countingVendor answers each call with a body of its own, cacheable.
type countingVendor struct{ n atomic.Int64 }

func (v *countingVendor) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=600")
	_, _ = io.WriteString(w, "answer "+strconv.FormatInt(v.n.Add(1), 10))
}

// Several replicas, one view, acceptance 3, the callers: every caller
// form of TestCacheNeverCrossesCallers (internal/testcallers), asked of
// one of three seawall processes sharing the cache and then of the other
// two: each caller gets its own answer from each, the vendor answers once
// per caller, and no caller gets another's.
func TestReplicasKeepCallersApart(t *testing.T) {
	alone(t, "three replicas")
	redis := testredis.Start(t)
	vendor := &countingVendor{}
	vsrv := httptest.NewServer(vendor)
	defer vsrv.Close()
	replicas := startReplicas(t, 3, redis.URL(), "", vsrv.URL, testcallers.Policy)
	waitForReplicas(t, replicas, 3)
	get := func(r *replica, w testcallers.Way) string {
		req, _ := http.NewRequest(http.MethodGet, r.base+"/v/profile"+w.Query, nil)
		if w.Header != nil {
			req.Header.Set(w.Header[0], w.Header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ways := testcallers.CacheWays()
	seen := map[string]string{}
	for i, w := range ways {
		first := get(replicas[i%3], w)
		if who, ok := seen[first]; ok {
			t.Errorf("%s got %q, the answer fetched for %s", w.Name, first, who)
		}
		seen[first] = w.Name
		for k := 1; k <= 2; k++ {
			if again := get(replicas[(i+k)%3], w); again != first {
				t.Errorf("%s through replica %d: %q, want its own %q", w.Name, (i+k)%3+1, again, first)
			}
		}
	}
	if n := vendor.n.Load(); n != int64(len(ways)) {
		t.Errorf("the vendor answered %d calls for %d callers, want one each", n, len(ways))
	}
	t.Logf("%d callers, each asked of the three replicas: %d vendor calls, each caller its own answer", len(ways), vendor.n.Load())
}
