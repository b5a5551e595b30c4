// Package testredis gives tests a Redis: a redis-server of their own on a
// free loopback port, which a test may stop, freeze or restart empty.
package testredis

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server a test started.
type Server struct {
	Port int
	dir  string
	cmd  *exec.Cmd
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(s.Port) }

// Start runs redis-server on a free port, with nothing saved to disk, and
// stops it when the test ends. With redis-server missing, the test fails
// under CI=true (CI installs it) and is skipped otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is needed: apt-get install redis-server")
		}
		t.Skip("redis-server not installed (apt-get install redis-server); CI runs this test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &Server{Port: port, dir: t.TempDir()}
	s.Restart(t)
	t.Cleanup(s.Kill)
	return s
}

// Restart starts the server again (after Kill), empty.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir) //nolint:gosec // fixed program, the test's own port
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %d: %v", s.Port, err)
		}
	}
}

// Kill ends the server at once, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Freeze stops the server without closing its connections (SIGSTOP): a
// hang, not a refusal. Thaw resumes it.
func (s *Server) Freeze() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// ScriptCalls is how many scripts (EVALSHA and EVAL) the Redis at port
// has run, from its INFO commandstats; 0 when it cannot be read.
func ScriptCalls(port int) int64 {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "info", "commandstats").Output() //nolint:gosec // fixed program, a loopback port
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(out), "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				v, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
				n += v
			}
		}
	}
	return n
}

// Keys lists the keys of the Redis at s that match pattern (SCAN's
// glob), read with redis-cli; nil when it cannot be read.
func (s *Server) Keys(pattern string) []string {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(s.Port), "--scan", "--pattern", pattern).Output() //nolint:gosec // fixed program, a loopback port
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}
