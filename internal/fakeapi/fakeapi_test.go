package fakeapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestBehaviors(t *testing.T) {
	f := New(Behavior{})
	srv := httptest.NewServer(f)
	defer srv.Close()

	if code, _ := get(t, srv.URL+"/a"); code != 200 {
		t.Fatalf("default status = %d, want 200", code)
	}
	f.Set(Behavior{QuotaPerSecond: 2, RetryAfter: 3})
	// Five calls span at most two clock seconds, so one second holds at
	// least three of them: one past the quota of two.
	var codes []int
	limited := 0
	for i := 0; i < 5; i++ {
		code, ra := get(t, srv.URL+"/q")
		codes = append(codes, code)
		if code == 429 && ra == "3" {
			limited++
		}
	}
	if codes[0] != 200 || limited == 0 {
		t.Errorf("quota codes = %v, want the first 200 and at least one 429 with Retry-After 3", codes)
	}
	f.Set(Behavior{Down: true, ErrorStatus: 502, RetryAfter: 7})
	if code, ra := get(t, srv.URL+"/d"); code != 502 || ra != "7" {
		t.Errorf("down = %d Retry-After %q, want 502 and 7", code, ra)
	}
	f.Set(Behavior{Drop: true})
	if code, _ := get(t, srv.URL+"/x"); code != 0 {
		t.Errorf("drop answered %d, want a closed connection", code)
	}
	f.Set(Behavior{Outages: []Outage{{Start: 0, For: Duration(time.Hour)}}})
	f.Reset()
	if code, _ := get(t, srv.URL+"/o"); code != 503 {
		t.Errorf("in outage = %d, want 503", code)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Path != "/o" || f.Count() != 1 {
		t.Errorf("after reset, calls = %+v, count %d; want just /o", calls, f.Count())
	}
}

func TestControlAPI(t *testing.T) {
	f := New(Behavior{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_fake/behavior", strings.NewReader(`{"status":201,"latency_max":"1ms"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("PUT behavior: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _ := get(t, srv.URL+"/c?x=1"); code != 201 {
		t.Errorf("status = %d, want 201", code)
	}
	req, _ = http.NewRequest(http.MethodPut, srv.URL+"/_fake/behavior", strings.NewReader(`{"nope":1}`))
	resp, _ = http.DefaultClient.Do(req)
	if resp.StatusCode != 400 {
		t.Errorf("unknown field accepted: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = http.Get(srv.URL + "/_fake/calls")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"count":1`) || !strings.Contains(string(b), `"/c?x=1"`) {
		t.Errorf("calls = %s, want the one call to /c?x=1", b)
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	var calls []Call
	for _, ms := range []int{0, 100, 900, 999, 1000, 1500, 2600} {
		calls = append(calls, Call{At: t0.Add(time.Duration(ms) * time.Millisecond)})
	}
	if got := MaxInWindow(calls, time.Second); got != 4 {
		t.Errorf("MaxInWindow = %d, want 4 (100..1000ms)", got)
	}
}

// The strict shapes: a leaky bucket without burst refuses a call that
// comes early and is not moved by it; a fixed window states its quota on
// every answer, in each vendor's form, and refuses past it.
func TestStrictVendorShapes(t *testing.T) {
	f := New(Behavior{LeakyRate: 10}) // one call per 100ms
	srv := httptest.NewServer(f)
	defer srv.Close()
	var codes []int
	for i := 0; i < 3; i++ {
		code, _ := get(t, srv.URL+"/l")
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 429 || codes[2] != 429 {
		t.Errorf("back-to-back calls on a 10/s leaky bucket: %v, want 200 then 429s", codes)
	}
	time.Sleep(110 * time.Millisecond)
	if code, _ := get(t, srv.URL+"/l"); code != 200 {
		t.Errorf("a call one interval after the last accepted: %d, want 200 (refused calls do not move the bucket)", code)
	}

	for _, tc := range []struct{ form, remaining, reset string }{
		{"x-ratelimit", "X-RateLimit-Remaining", "X-RateLimit-Reset"},
		{"ratelimit", "RateLimit", "RateLimit-Policy"},
		{"llm", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	} {
		f.Set(Behavior{Window: &Window{Limit: 2, Every: Duration(time.Hour), Headers: tc.form}})
		var last http.Header
		var statuses []int
		for i := 0; i < 3; i++ {
			resp, err := http.Get(srv.URL + "/w")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
			last = resp.Header
			if resp.Header.Get(tc.remaining) == "" || resp.Header.Get(tc.reset) == "" {
				t.Errorf("%s: answer %d lacks %s or %s: %v", tc.form, i+1, tc.remaining, tc.reset, resp.Header)
			}
		}
		if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
			t.Errorf("%s: window of 2: %v, want 200 200 429", tc.form, statuses)
		}
		if v := last.Get(tc.remaining); !strings.Contains(v, "0") {
			t.Errorf("%s: past the window's quota %s = %q, want 0 left", tc.form, tc.remaining, v)
		}
	}
}
