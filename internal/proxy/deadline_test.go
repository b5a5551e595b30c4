package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// trickle sends a request head announcing a 100-byte body, then the body
// one byte every 200ms (at most 100 bytes, 20 s), and returns the answer
// it gets meanwhile and how long that took.
func trickle(t *testing.T, addr, path string, logs fmt.Stringer) (*http.Response, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: s\r\nContent-Length: 100\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range 100 {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: no answer to a trickled body after %s: %v\n%s", path, time.Since(start), err, logs)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, time.Since(start)
}

// Hardening, row 8: an app that trickles its body is answered 408 at
// limits.body_read_timeout, on sync and async routes alike, and nothing
// is accepted; before, it held the connection as long as it liked.
func TestTrickledBodyGets408(t *testing.T) {
	t.Parallel()
	s := newAsyncStackTop(t, "limits: {body_read_timeout: 1s}", t.TempDir()+"/jobs.db", "sync", "",
		"    routes:\n      - {name: events, match: \"POST /v1/events\", mode: async}\n")
	addr := strings.TrimPrefix(s.sw.URL, "http://")
	for _, path := range []string{"/api/v1/charges", "/api/v1/events"} {
		resp, took := trickle(t, addr, path, s.logs)
		if resp.StatusCode != 408 || resp.Header.Get("Seawall-Error") != "request-timeout" {
			t.Errorf("%s, body trickled: %d %s, want 408 request-timeout\n%s", path, resp.StatusCode, resp.Header.Get("Seawall-Error"), s.logs.String())
		}
		// A bound on behaviour (ten times the deadline), not a timing.
		if took > 10*time.Second {
			t.Errorf("%s: answered after %s with a 1s body deadline", path, took)
		}
	}
	for _, c := range s.fake.Calls() {
		if len(c.Body) == 100 {
			t.Errorf("the vendor got a whole body that arrived too late: %+v", c)
		}
	}
	if n := s.metric("jobs", "state", "queued") + s.metric("jobs", "state", "succeeded"); n != 0 {
		t.Errorf("%v jobs accepted from a body that never arrived", n)
	}
}

// Hardening, row 8: an app that never reads its answer is cut off at
// limits.write_timeout, and one that reads slowly at the route's overall
// timeout; before, both held the connection for as long as they liked.
func TestSlowReadersAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out write timeouts on 48 MiB answers (about 12 s): the full run runs it")
	}
	const size = 48 << 20 // more than the kernel's socket buffers hold
	for _, tc := range []struct {
		name, config string
		readEvery    time.Duration // 0: never read until the end
		keptAlive    bool          // a HEAD answered first on the same connection
	}{
		{"never reads", "limits: {write_timeout: 1s, max_response_body: 64MiB}", 0, false},
		// net/http clears the write deadline after each answer: every
		// exchange sets its own, or a kept-alive connection's next answer
		// would have none.
		{"never reads, after an answer on its connection", "limits: {write_timeout: 1s, max_response_body: 64MiB}", 0, true},
		{"reads slowly", "limits: {write_timeout: 10s, max_response_body: 64MiB}", 100 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, tc.config, "    timeouts: {overall: 2s}\n")
			s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("x", size)})
			c, err := net.Dial("tcp", strings.TrimPrefix(s.sw.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.keptAlive {
				if _, err := fmt.Fprintf(c, "HEAD /api/big HTTP/1.1\r\nHost: s\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
				if err != nil || resp.StatusCode != http.StatusOK || br.Buffered() != 0 {
					t.Fatalf("HEAD first: %v %v, %d bytes after it", resp, err, br.Buffered())
				}
			}
			start := time.Now()
			_ = c.SetDeadline(start.Add(60 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /api/big HTTP/1.1\r\nHost: s\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			got, buf := 0, make([]byte, 1<<10)
			if tc.readEvery == 0 {
				time.Sleep(4 * time.Second) // well past the write deadline
			}
			// Slowly for 4 s (past overall), then as fast as it comes, to
			// drain what the kernel buffered before Seawall cut it off.
			for i := 0; i < 200_000; i++ { // bounded: 200 MiB at most
				n, err := c.Read(buf)
				got += n
				if err != nil {
					break
				}
				if tc.readEvery > 0 && time.Since(start) < 4*time.Second {
					time.Sleep(tc.readEvery)
				}
			}
			took := time.Since(start)
			if got >= size {
				t.Fatalf("the slow reader got all %d bytes in %s: it was never cut off", got, took)
			}
			if took > 20*time.Second {
				t.Errorf("the connection was held %s", took)
			}
			if !strings.Contains(s.logs.String(), "did not read the answer in time") {
				t.Errorf("the log does not say why the answer was cut:\n%s", s.logs.String())
			}
			t.Logf("cut off after %s with %d of %d bytes", took, got, size)
		})
	}
}
