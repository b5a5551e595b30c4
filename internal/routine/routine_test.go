package routine

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testlog"
)

// A panic in a goroutine is logged with its name and stack, counted, and
// leaves the process and the group's other goroutines running; Wait sees
// every goroutine end.
func TestPanicIsLoggedAndTheProcessGoesOn(t *testing.T) {
	var logs testlog.Buffer
	g := New(slog.New(slog.NewJSONHandler(&logs, nil)))
	release := make(chan struct{})
	g.Go("steady", func() { <-release })
	g.Go("faulty", func() { panic("boom") })
	for deadline := time.Now().Add(10 * time.Second); g.Panics() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the panic was not recovered")
		}
	}
	if got := g.Running(); !slices.Equal(got, []string{"steady"}) {
		t.Errorf("running after the panic: %v, want [steady]", got)
	}
	out := logs.String()
	for _, want := range []string{`"goroutine":"faulty"`, `"panic":"boom"`, "routine_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s: %s", want, out)
		}
	}
	if left := g.Wait(50 * time.Millisecond); !slices.Equal(left, []string{"steady"}) {
		t.Errorf("Wait with one still running reported %v", left)
	}
	close(release)
	if left := g.Wait(10 * time.Second); left != nil {
		t.Errorf("Wait after all returned reported %v", left)
	}
}

// Two goroutines of one name are both counted.
func TestRunningCountsEachGoroutine(t *testing.T) {
	g := New(slog.Default())
	release := make(chan struct{})
	g.Go("deliver", func() { <-release })
	g.Go("deliver", func() { <-release })
	if got := g.Running(); !slices.Equal(got, []string{"deliver", "deliver"}) {
		t.Errorf("running: %v", got)
	}
	close(release)
	g.Wait(10 * time.Second)
	if got := g.Running(); len(got) != 0 {
		t.Errorf("running after all returned: %v", got)
	}
}

// Without a group (a part built alone in a test), a panic is still
// recovered and logged.
func TestNilGroupRecovers(t *testing.T) {
	var logs testlog.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	var g *Group
	done := make(chan struct{})
	g.Go("alone", func() { defer close(done); panic("alone") })
	<-done
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"goroutine":"alone"`); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the panic: %s", logs.String())
		}
	}
}
