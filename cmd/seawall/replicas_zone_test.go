package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// toxiproxy is a Shopify toxiproxy server the test runs: one TCP proxy
// per replica's path to the vendor, each of which can be made to fail.
type toxiproxy struct{ api string }

// startToxiproxy runs toxiproxy's server (go install
// github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0; CI's tools step
// does), found as TOXIPROXY_SERVER or server in GOPATH/bin.
func startToxiproxy(t *testing.T) *toxiproxy {
	t.Helper()
	bin := os.Getenv("TOXIPROXY_SERVER")
	if bin == "" {
		out, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(out)), "bin", "server")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("toxiproxy's server is not installed (%s): CI's tools step installs it", bin)
		}
		t.Skipf("toxiproxy's server is not installed (%s): go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0", bin)
	}
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-host", host, "-port", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tp := &toxiproxy{api: "http://" + addr}
	if _, ok := testwait.Within(10*time.Second, func() bool {
		resp, err := http.Get(tp.api + "/version")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil
	}); !ok {
		t.Fatal("toxiproxy did not answer within 10 s")
	}
	return tp
}

func (tp *toxiproxy) call(t *testing.T, method, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, tp.api+path, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("toxiproxy %s %s: %d %s", method, path, resp.StatusCode, msg)
	}
}

// proxy opens a path to upstream (host:port) and returns its address.
func (tp *toxiproxy) proxy(t *testing.T, name, upstream string) string {
	listen := freeAddr(t)
	tp.call(t, http.MethodPost, "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true})
	return listen
}

// Several replicas, one view, acceptance 2: three replicas in zones a, b
// and c, each reaching the vendor through its own toxiproxy path, each
// sent 20 requests a second. Only replica 1's path fails (toxiproxy
// resets its connections): replicas 2 and 3 never open their breakers;
// replica 1's /readyz answers 503 with the evidence within 10 s; healed,
// 200 again within 30 s. Then the vendor fails every call: every replica
// stays ready and every breaker opens. Redis killed while replica 1's path
// fails: each replica has its own view (replica 1 ready); restarted,
// replica 1 is found unready again.
func TestReplicasFindTheSickZone(t *testing.T) {
	alone(t, "three replicas through toxiproxy for about 40 s")
	tp := startToxiproxy(t)
	redis := testredis.Start(t)
	vendor := &switchVendor{}
	vsrv := httptest.NewServer(vendor)
	defer vsrv.Close()
	paths := make([]string, 3)
	for i := range paths {
		paths[i] = tp.proxy(t, fmt.Sprintf("path-%d", i+1), strings.TrimPrefix(vsrv.URL, "http://"))
	}
	replicas := startReplicasEach(t, 3, redis.URL(), "", func(i int) (string, string, []string) {
		return "http://" + paths[i], "    retry: {max_attempts: 1}\n    breaker: {window: 5s, min_calls: 5, failure_rate: 50, open_duration: 1s, max_open_duration: 2s}\n",
			[]string{fmt.Sprintf("zone: %c", 'a'+i)}
	})
	waitForReplicas(t, replicas, 3)

	var phase atomic.Int32             // 0 healthy, 1 replica 1's path broken, 2 healed, 3 the vendor down
	var circuitOpen [4][3]atomic.Int64 // fail-fast answers by phase and replica
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for k := 0; k < 2000; k++ { // at most 100 s
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := client.Get(r.base + "/v/x")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.Header.Get("Seawall-Error") == "circuit-open" {
					circuitOpen[phase.Load()][i].Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	ready := func(r *replica) (bool, string) {
		resp, err := http.Get(r.admin + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, string(b)
	}
	// othersReady polls replicas 2 and 3's /readyz until ok holds for
	// replica 1's, failing if either is ever unready.
	watch := func(within time.Duration, ok func(bool, string) bool) (time.Duration, string) {
		start := time.Now()
		for time.Since(start) < within {
			for i, r := range replicas[1:] {
				if up, body := ready(r); !up {
					t.Errorf("replica %d unready: %s", i+2, body)
				}
			}
			if up, body := ready(replicas[0]); ok(up, body) {
				return time.Since(start), body
			}
			time.Sleep(100 * time.Millisecond)
		}
		return within, ""
	}

	time.Sleep(3 * time.Second) // every replica's window fills with successes
	if up, body := ready(replicas[0]); !up {
		t.Fatalf("replica 1 unready before any trouble: %s", body)
	}
	phase.Store(1)
	tp.call(t, http.MethodPost, "/proxies/path-1/toxics", map[string]any{"name": "reset", "type": "reset_peer", "stream": "downstream", "attributes": map[string]any{"timeout": 0}})
	took, body := watch(10*time.Second, func(up bool, body string) bool { return !up && strings.Contains(body, "zone a") })
	if took >= 10*time.Second {
		t.Fatalf("replica 1 was not reported unready within 10 s of its path failing")
	}
	t.Logf("replica 1 unready %s after its path failed: %s", took.Round(time.Millisecond), strings.TrimSpace(body))
	time.Sleep(3 * time.Second) // it stays so, and the others stay ready and closed
	if up, _ := ready(replicas[0]); up {
		t.Error("replica 1 ready again while its path still failed")
	}
	// Redis gone: each replica has only its own view, and is ready; back,
	// the zone is found sick again.
	redis.Kill()
	away, _ := watch(10*time.Second, func(up bool, _ string) bool { return up })
	if away >= 10*time.Second {
		t.Error("replica 1 stayed unready with Redis gone, want its own view (ready) within 10 s")
	}
	redis.Restart(t)
	back, _ := watch(15*time.Second, func(up bool, body string) bool { return !up && strings.Contains(body, "zone a") })
	if back >= 15*time.Second {
		t.Error("replica 1 was not found unready again within 15 s of Redis answering")
	}
	t.Logf("Redis killed: replica 1 ready %s after; restarted empty: unready again %s after", away.Round(time.Millisecond), back.Round(time.Millisecond))

	phase.Store(2)
	tp.call(t, http.MethodDelete, "/proxies/path-1/toxics/reset", nil)
	healed, _ := watch(30*time.Second, func(up bool, _ string) bool { return up })
	if healed >= 30*time.Second {
		t.Fatal("replica 1 was not ready again within 30 s of its path healing")
	}
	t.Logf("replica 1 ready %s after its path healed", healed.Round(time.Millisecond))

	phase.Store(3)
	vendor.failing.Store(true)
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for i, r := range replicas {
			if up, body := ready(r); !up {
				t.Errorf("the vendor failing for every zone: replica %d unready: %s", i+1, body)
			}
		}
	}
	for i := range replicas {
		if i > 0 && (circuitOpen[1][i].Load() > 0 || circuitOpen[2][i].Load() > 0) {
			t.Errorf("replica %d's breaker opened while only replica 1's path failed (%d, %d fail-fast answers)", i+1, circuitOpen[1][i].Load(), circuitOpen[2][i].Load())
		}
		if circuitOpen[3][i].Load() == 0 {
			t.Errorf("the vendor failing for every zone: replica %d's breaker never opened", i+1)
		}
	}
	t.Logf("fail-fast answers by phase (healthy, path 1 broken, healed, vendor down) and replica: %v", circuitCounts(&circuitOpen))
}

func circuitCounts(c *[4][3]atomic.Int64) [4][3]int64 {
	var out [4][3]int64
	for p := range c {
		for r := range c[p] {
			out[p][r] = c[p][r].Load()
		}
	}
	return out
}
