package jobs

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// httpDeliverer posts each job to an upstream, with the job's idempotency
// key (or its random delivery key) in Idempotency-Key, as Seawall's
// consumers do.
type httpDeliverer struct{ base string }

func (h httpDeliverer) Deliver(ctx context.Context, id int64, _ int, d Delivery) (*Result, error) {
	req, err := http.NewRequestWithContext(ctx, d.Method, h.base+d.Path, strings.NewReader(string(d.Body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Idempotency-Key", d.deliveryKey(id))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return &Result{Status: resp.StatusCode}, nil
}

// TestCrashChild is the delivering process that TestCrashSafety kills. It
// only runs when started by that test.
func TestCrashChild(t *testing.T) {
	dsn, upstream := os.Getenv("SEAWALL_CRASH_DSN"), os.Getenv("SEAWALL_CRASH_UPSTREAM")
	if dsn == "" {
		t.Skip("helper process for TestCrashSafety; runs only when it starts this binary")
	}
	s, err := Open(context.Background(), dsn, crashConfig, httpDeliverer{base: upstream})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

var crashConfig = Config{
	Upstreams:         map[string]int{"api": 8},
	MaxAttempts:       25,
	Schedule:          Schedule{BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
	Retention:         time.Hour,
	AttemptTimeout:    500 * time.Millisecond,
	VisibilityTimeout: time.Second,
	PollInterval:      20 * time.Millisecond,
}

// TestCrashSafety accepts jobs, kills the delivering process with SIGKILL
// three times during delivery, restarts it each time, and counts: every job
// must reach the upstream at least once, duplicates must carry the same
// Idempotency-Key, and every job must end succeeded. SEAWALL_CRASH_JOBS
// sets the count (default 1000; 10000 for the full run).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("a crash test (SIGKILLs of a writer child, about 45 s): the full run, go test ./... as CI runs it, runs it")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SEAWALL_CRASH_JOBS")); err == nil && v > 0 {
		n = v
	}
	forEachDSN(t, func(t *testing.T, dsn string) {
		var mu sync.Mutex
		seen := map[string]int{} // Idempotency-Key -> deliveries
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Millisecond) // a slow upstream: kills land mid-delivery
			mu.Lock()
			seen[r.Header.Get("Idempotency-Key")]++
			mu.Unlock()
		}))
		defer up.Close()

		ctx := context.Background()
		s, err := Open(ctx, dsn, crashConfig, nil) // the accepting side: enqueues, never delivers
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Stop(ctx) }()
		want := map[string]bool{}
		for i := 0; i < n; i++ {
			d := Delivery{Upstream: "api", Method: "POST", Path: "/v1/events", Body: []byte(`{"i":` + strconv.Itoa(i) + `}`)}
			if i%2 == 0 {
				d.IdempotencyKey = "app-key-" + strconv.Itoa(i)
			}
			j, _, err := s.Enqueue(ctx, d)
			if err != nil {
				t.Fatalf("enqueue %d: %v", i, err)
			}
			if d.IdempotencyKey == "" && (j.Delivery.DeliveryKey == "" || strings.HasPrefix(j.Delivery.DeliveryKey, "seawall-job-")) {
				t.Fatalf("job %d was given delivery key %q, want a random one", j.ID, j.Delivery.DeliveryKey)
			}
			want[j.Delivery.deliveryKey(j.ID)] = true
		}

		delivered := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(seen)
		}
		for kill := 1; kill <= 3; kill++ {
			child := startChild(t, dsn, up.URL)
			target := n * kill / 4
			deadline := time.Now().Add(2 * time.Minute)
			for delivered() < target && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			_ = child.Process.Signal(syscall.SIGKILL)
			_ = child.Wait()
			t.Logf("kill %d: SIGKILL after %d of %d jobs reached the upstream", kill, delivered(), n)
		}
		child := startChild(t, dsn, up.URL)
		defer func() { _ = child.Process.Signal(syscall.SIGKILL); _ = child.Wait() }()

		// Jobs running at a kill come back when River's rescuer (every 30s) finds them.
		deadline, lastLog := time.Now().Add(4*time.Minute), time.Now()
		for {
			done, err := countState(ctx, s, Succeeded)
			if err != nil {
				t.Fatal(err)
			}
			if done == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d jobs succeeded after the last restart; %s", done, n, stateCounts(ctx, s))
			}
			if time.Since(lastLog) > 15*time.Second {
				t.Logf("waiting: %s", stateCounts(ctx, s))
				lastLog = time.Now()
			}
			time.Sleep(200 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		lost, dups, strangers := 0, 0, 0
		for key := range want {
			if seen[key] == 0 {
				lost++
			}
		}
		for key, c := range seen {
			if !want[key] {
				strangers++
			}
			dups += c - 1
		}
		t.Logf("%d jobs, 3 SIGKILLs: lost %d, duplicate deliveries %d (each with its original's Idempotency-Key), unknown keys %d", n, lost, dups, strangers)
		if lost > 0 || strangers > 0 {
			t.Errorf("lost %d jobs, %d deliveries with keys no job had", lost, strangers)
		}
	})
}

func startChild(t *testing.T, dsn, upstream string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), "SEAWALL_CRASH_DSN="+dsn, "SEAWALL_CRASH_UPSTREAM="+upstream)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func stateCounts(ctx context.Context, s Store) string {
	var parts []string
	for _, st := range []State{Queued, Running, Retrying, Succeeded, Dead, Canceled} {
		n, err := countState(ctx, s, st)
		if err != nil {
			return err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	return strings.Join(parts, ", ")
}

// countState pages through the jobs in a state.
func countState(ctx context.Context, s Store, st State) (int, error) {
	n, after := 0, int64(0)
	for {
		page, err := s.List(ctx, Filter{State: st, Limit: MaxListLimit, AfterID: after})
		if err != nil || len(page) == 0 {
			return n, err
		}
		n += len(page)
		after = page[len(page)-1].ID
	}
}
