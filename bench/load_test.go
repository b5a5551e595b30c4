package main

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The bare open-model client keeps one connection framed correctly across
// answers of different statuses, lengths and framings (chunked, as nginx
// sends a cached answer its vendor sent chunked) from a real net/http
// server.
func TestRawClientKeepsFraming(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		if r.URL.Query().Has("chunked") {
			w.WriteHeader(status)
			for range n {
				_, _ = w.Write([]byte("x"))
				http.NewResponseController(w).Flush() // a chunk each
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(status)
		_, _ = w.Write(bytes.Repeat([]byte("x"), n))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := dialRaw(host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, tc := range []struct {
		status, n int
		chunked   bool
	}{{200, 0, false}, {200, 1, false}, {503, 40, false}, {200, 3, true}, {200, 70000, false}, {404, 3, false}, {200, 0, true}, {200, 5, false}} {
		query := "?status=" + strconv.Itoa(tc.status) + "&n=" + strconv.Itoa(tc.n)
		if tc.chunked {
			query += "&chunked"
		}
		req := []byte("GET /" + query + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
		got, err := c.get(req)
		if err != nil || got != tc.status {
			t.Fatalf("status %d, %d bytes: got %d, %v", tc.status, tc.n, got, err)
		}
	}
}

func TestReadAnswerRefusesWhatItCannotFrame(t *testing.T) {
	for _, in := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"garbage\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		if status, err := readAnswer(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%q: status %d and no error, want an error", in, status)
		}
	}
}

// FuzzReadAnswer: any bytes from a target give a status in range or an
// error, never a panic.
func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\ncontent-length:0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		status, err := readAnswer(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && (status < 100 || status > 999) {
			t.Fatalf("status %d without an error", status)
		}
	})
}

func TestParseWrk(t *testing.T) {
	var m measurement
	out := []byte("Running 5s test\n  1 threads and 32 connections\nWRK 150000 5000000 400 2100 3500 7\n")
	if err := parseWrk(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.rps != 30000 || m.p50 != 400*time.Microsecond || m.p99 != 2100*time.Microsecond || m.p999 != 3500*time.Microsecond || m.non2xx != 7 {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range []string{"no figures\n", "WRK 1 0 1 1 1 0\n", "WRK 1 x 1 1 1 0\n"} {
		if err := parseWrk([]byte(bad), &m); err == nil {
			t.Errorf("%q parsed without an error", bad)
		}
	}
}

// The harness stops when a proxy it started has exited (benchmarks.md):
// exited tells a process that ended, not yet waited for, from one running.
func TestExitedTellsAnEndedProcess(t *testing.T) {
	done := exec.Command("true")
	running := exec.Command("sleep", "10")
	for _, c := range []*exec.Cmd{done, running} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { _ = running.Process.Kill(); _ = running.Wait(); _ = done.Wait() }()
	for end := time.Now().Add(5 * time.Second); !exited(done); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a process that ended is not seen as exited")
		}
	}
	if exited(running) {
		t.Fatal("a running process is seen as exited")
	}
}

// The open model counts no request sent during its warm-up: a target that
// refuses everything in its first half second (as a proxy opening its
// connections is slow in its first moments) shows no refusal in the
// figures, though it refused some of the load sent.
func TestOpenModelCountsNothingFromItsWarmup(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	refused := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		early := time.Since(first) < openWarmup/2
		if early {
			refused++
		}
		mu.Unlock()
		if early {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	m := measure(&target{name: "test", dir: t.TempDir()}, "GET", srv.URL+"/", 4, 100, time.Second)
	mu.Lock()
	defer mu.Unlock()
	if refused == 0 {
		t.Fatal("no request was sent in the warm-up")
	}
	if m.err != nil || m.non2xx != 0 || m.rps == 0 {
		t.Errorf("measured %v with %d refusals in the warm-up: want none of them counted", m, refused)
	}
}
