// Command proto is the engine prototypes of ADR 0004: a bare pass-through
// proxy, no policies, on each candidate HTTP stack, so that the harness
// measures what each engine costs by itself beside nginx. It is its own
// module, so that fasthttp is not a dependency of Seawall.
//
//	proto -engine nethttp|h1|fasthttp -listen ADDR -upstream HOST:PORT
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/h1"
	"github.com/valyala/fasthttp"
)

func main() {
	engine := flag.String("engine", "h1", "nethttp: net/http server and client; h1: net/http server, Seawall's h1 client; fasthttp: fasthttp server and client; static, fasthttp-static: a fixed 1 KiB answer from memory")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve")
	upstream := flag.String("upstream", "", "upstream host:port")
	flag.Parse()
	var err error
	switch *engine {
	case "nethttp":
		err = serveNetHTTP(*listen, *upstream, &http.Transport{MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true})
	case "h1":
		err = serveNetHTTP(*listen, *upstream, h1.New(h1.Options{}))
	case "fasthttp":
		err = serveFastHTTP(*listen, *upstream)
	case "static":
		err = serveStatic(*listen)
	case "fasthttp-static":
		err = serveFastStatic(*listen)
	default:
		err = fmt.Errorf("unknown engine %q", *engine)
	}
	fmt.Fprintln(os.Stderr, "proto:", err)
	os.Exit(1)
}

// serveNetHTTP forwards /api/* to the upstream without /api, copying the
// header once and streaming the answer: the shape of Seawall's forwarder
// without its policies.
func serveNetHTTP(listen, upstream string, rt http.RoundTripper) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+upstream+r.URL.Path[len("/api"):], r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for k, v := range r.Header {
			if k != "Connection" {
				out.Header[k] = v
			}
		}
		out.ContentLength = r.ContentLength
		resp, err := rt.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// serveFastHTTP does the same on fasthttp's server and HostClient.
func serveFastHTTP(listen, upstream string) error {
	client := &fasthttp.HostClient{Addr: upstream, MaxConns: 1024}
	h := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.SetRequestURIBytes(append([]byte("http://"+upstream), ctx.Path()[len("/api"):]...))
		req.Header.Del("Connection")
		if err := client.Do(req, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// kib is the answer of the static engines: what a cache hit of (b) sends.
var kib = []byte(strings.Repeat("a", 1024))

// serveStatic answers every request with kib from memory on net/http's
// server, with the headers a cache hit carries: the most any handler on
// this server can do for (b) and (c).
func serveStatic(listen string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Cache-Control"] = []string{"public, max-age=3600"}
		h["Age"] = []string{"1"}
		_, _ = w.Write(kib)
	})
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// serveFastStatic is serveStatic on fasthttp.
func serveFastStatic(listen string) error {
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "application/octet-stream")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
		ctx.Response.Header.Set("Age", "1")
		ctx.Response.SetBody(kib)
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}
