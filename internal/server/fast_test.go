package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// A fasthttp server closed before its Serve has begun does not serve:
// Serve returns at once (fasthttp's own Shutdown does nothing to a
// listener its Serve has not reached, and the Serve that came after it
// served on until the process ended).
func TestFastServerClosedBeforeServe(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		srv := AppServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, h2c, config.EngineFastHTTP)
		if err := srv.Close(); err != nil {
			t.Fatalf("h2c %t: Close: %v", h2c, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("h2c %t: Serve after Close returned %v, want http.ErrServerClosed", h2c, err)
			}
		case <-time.After(5 * time.Second):
			_ = ln.Close()
			t.Fatalf("h2c %t: Serve after Close still serving after 5 s", h2c)
		}
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("h2c %t: the listener still accepts after Close", h2c)
		}
	}
}

// A Shutdown with nothing in flight returns no error, on either engine,
// with h2c or without: seawall serve reports a shutdown's error as calls
// cut off.
func TestAppServerShutdownIsClean(t *testing.T) {
	for _, engine := range []string{config.EngineNetHTTP, config.EngineFastHTTP} {
		for _, h2c := range []bool{false, true} {
			srv := AppServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, h2c, engine)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			resp, err := http.Get("http://" + ln.Addr().String() + "/x")
			if err != nil {
				t.Fatalf("%s, h2c %t: %v", engine, h2c, err)
			}
			_ = resp.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("%s, h2c %t: Shutdown: %v", engine, h2c, err)
			}
			cancel()
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s, h2c %t: Serve returned %v, want http.ErrServerClosed", engine, h2c, err)
			}
		}
	}
}
