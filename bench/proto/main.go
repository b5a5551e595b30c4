// Command proto is the engine prototypes of ADR 0004: a bare pass-through
// proxy, no policies, on each candidate HTTP stack, so that the harness
// measures what each engine costs by itself beside nginx. It is its own
// module, so that fasthttp is not a dependency of Seawall.
//
//	proto -engine nethttp|h1|fasthttp|nbio|fasthttp-adaptor|fasthttp-h1|fasthttp-h1-stream|nethttp-fastclient|fasthttp-adapted -listen ADDR -upstream HOST:PORT [-tls-upstream HOST:PORT -ca FILE]
//	proto -engine static|fasthttp-static|nbio-static -listen ADDR
//
// The proxies send /api/X to the upstream's /X and /tls/X to the HTTPS
// upstream's /X over kept-alive connections, trusting the certificate in
// -ca. The static engines answer /64k with 64 KiB and anything else with
// 1 KiB.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served only with -pprof
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/seawall/seawall/internal/h1"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

func main() {
	engine := flag.String("engine", "h1", "nethttp: net/http server and client; h1: net/http server, Seawall's h1 client; fasthttp: fasthttp server and client; fasthttp-adaptor: fasthttp's server running the h1 engine's net/http handler through fasthttpadaptor; fasthttp-h1: fasthttp's server, the request and answer copied to and from Seawall's h1 client by hand (the server half alone); fasthttp-h1-stream: fasthttp-h1 with the answer's body copied by fasthttp after the handler returns (SetBodyStream), as a streamed answer would be; nethttp-fastclient: net/http's server, fasthttp's client (the client half alone); fasthttp-adapted: fasthttp both ways under the h1 engine's net/http handler, an *http.Request and http.ResponseWriter made over fasthttp's server and an http.RoundTripper over its client (both halves moved, the policies' types kept); nbio: nbio's event-loop server (net/http's Handler API), Seawall's h1 client; static, fasthttp-static, nbio-static: a fixed 1 KiB answer from memory")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve")
	upstream := flag.String("upstream", "", "upstream host:port")
	tlsUpstream := flag.String("tls-upstream", "", "HTTPS upstream host:port, for /tls/")
	ca := flag.String("ca", "", "PEM file of the certificate the HTTPS upstream's is trusted by")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (for profiling an engine by hand)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() //nolint:gosec // a prototype's profile, by hand, on loopback
	}
	tlsConfig, err := trust(*ca)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proto:", err)
		os.Exit(1)
	}
	up := upstreams{plain: *upstream, tls: *tlsUpstream}
	switch *engine {
	case "nethttp":
		err = serveNetHTTP(*listen, forward(up, &http.Transport{MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true, TLSClientConfig: tlsConfig}))
	case "h1":
		err = serveNetHTTP(*listen, forward(up, h1.New(h1.Options{TLS: tlsConfig})))
	case "nbio":
		err = serveNbio(*listen, forward(up, h1.New(h1.Options{TLS: tlsConfig})))
	case "fasthttp":
		err = serveFastHTTP(*listen, up, tlsConfig)
	case "fasthttp-adaptor":
		err = serveFastHTTPNetHandler(*listen, forward(up, h1.New(h1.Options{TLS: tlsConfig})))
	case "fasthttp-h1":
		err = serveFastHTTPH1(*listen, up, h1.New(h1.Options{TLS: tlsConfig}), false)
	case "fasthttp-h1-stream":
		err = serveFastHTTPH1(*listen, up, h1.New(h1.Options{TLS: tlsConfig}), true)
	case "nethttp-fastclient":
		err = serveNetHTTP(*listen, forwardFast(up, tlsConfig))
	case "fasthttp-adapted":
		err = serveFastHTTPAdapted(*listen, forward(up, newFastTransport(up, tlsConfig)))
	case "static":
		err = serveNetHTTP(*listen, static)
	case "nbio-static":
		err = serveNbio(*listen, static)
	case "fasthttp-static":
		err = serveFastStatic(*listen)
	default:
		err = fmt.Errorf("unknown engine %q", *engine)
	}
	fmt.Fprintln(os.Stderr, "proto:", err)
	os.Exit(1)
}

// upstreams are the two servers a proxy forwards to.
type upstreams struct{ plain, tls string }

// target is where a request for path goes: scheme, host:port and path.
func (u upstreams) target(path string) (string, string, string) {
	if rest, ok := strings.CutPrefix(path, "/tls"); ok {
		return "https", u.tls, rest
	}
	return "http", u.plain, strings.TrimPrefix(path, "/api")
}

// trust is the TLS configuration that trusts the certificate in file.
func trust(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// serveNetHTTP serves h on net/http's server.
func serveNetHTTP(listen string, h http.Handler) error {
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// serveNbio serves h on nbio's HTTP server: one event loop reads every
// connection and parses with nbio's own parser, and handlers run on its
// goroutine pool, behind net/http's Handler interface.
func serveNbio(listen string, h http.Handler) error {
	engine := nbhttp.NewEngine(nbhttp.Config{Network: "tcp", Addrs: []string{listen}, Handler: h, NPoller: 1, ReleaseWebsocketPayload: true})
	if err := engine.Start(); err != nil {
		return err
	}
	select {}
}

// forward forwards to the upstreams, copying the header once and
// streaming the answer: the shape of Seawall's forwarder without its
// policies.
func forward(up upstreams, rt http.RoundTripper) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, host, path := up.target(r.URL.Path)
		out, err := http.NewRequestWithContext(r.Context(), r.Method, scheme+"://"+host+path, r.Body)
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
}

// serveFastHTTP does the same on fasthttp's server and HostClients.
func serveFastHTTP(listen string, up upstreams, tlsConfig *tls.Config) error {
	plain := &fasthttp.HostClient{Addr: up.plain, MaxConns: 1024}
	secure := &fasthttp.HostClient{Addr: up.tls, MaxConns: 1024, IsTLS: true, TLSConfig: tlsConfig}
	h := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		scheme, host, path := up.target(string(ctx.Path()))
		req.SetRequestURI(scheme + "://" + host + path)
		req.Header.Del("Connection")
		client := plain
		if scheme == "https" {
			client = secure
		}
		if err := client.Do(req, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// kib and kib64 are the answers of the static engines: what the cache
// hits of (b) send.
var (
	kib   = []byte(strings.Repeat("a", 1024))
	kib64 = []byte(strings.Repeat("a", 64<<10))
)

// answer is the static engines' answer for path.
func answer(path string) []byte {
	if path == "/64k" {
		return kib64
	}
	return kib
}

// static answers every request from memory, with the headers a cache
// hit carries: the most any handler on a server can do for (b) and (c).
var static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Cache-Control"] = []string{"public, max-age=3600"}
	h["Age"] = []string{"1"}
	body := answer(r.URL.Path)
	// As a cache hit's answer has: without it, net/http would send an
	// answer larger than its buffer chunked.
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
})

// serveFastStatic is static on fasthttp.
func serveFastStatic(listen string) error {
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "application/octet-stream")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
		ctx.Response.Header.Set("Age", "1")
		ctx.Response.SetBody(answer(string(ctx.Path())))
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// serveFastHTTPNetHandler serves a net/http handler on fasthttp's server
// through fasthttpadaptor, which builds an *http.Request from each
// request and buffers the handler's answer: what moving only the server
// would give a handler written for net/http.
func serveFastHTTPNetHandler(listen string, h http.Handler) error {
	srv := &fasthttp.Server{Handler: fasthttpadaptor.NewFastHTTPHandler(h), ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// forwardFast is forward on fasthttp's HostClients: net/http's server
// reading the app, fasthttp's client to the upstream, the header copied
// each way as strings.
func forwardFast(up upstreams, tlsConfig *tls.Config) http.Handler {
	plain := &fasthttp.HostClient{Addr: up.plain, MaxConns: 1024}
	secure := &fasthttp.HostClient{Addr: up.tls, MaxConns: 1024, IsTLS: true, TLSConfig: tlsConfig}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, host, path := up.target(r.URL.Path)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(scheme + "://" + host + path)
		req.Header.SetMethod(r.Method)
		for k, vs := range r.Header {
			if k != "Connection" {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
		}
		if r.ContentLength != 0 {
			req.SetBodyStream(r.Body, int(r.ContentLength))
		}
		client := plain
		if scheme == "https" {
			client = secure
		}
		if err := client.Do(req, resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		h := w.Header()
		for k, v := range resp.Header.All() {
			h.Add(string(k), string(v))
		}
		w.WriteHeader(resp.StatusCode())
		_, _ = w.Write(resp.Body())
	})
}

// copyBuffers are the buffers a body is copied through.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// serveFastHTTPH1 is fasthttp's server with Seawall's h1 client behind it,
// the request copied into an *http.Request and the answer out of an
// *http.Response by hand: what moving the server alone would cost a
// handler whose client and policies stay on net/http's types.
//
// With stream set, the handler returns once the answer's header is in,
// and fasthttp copies its body from h1 afterwards (SetBodyStream): the
// way an answer that must not be held whole (a large download, events)
// is sent on fasthttp, whose handler cannot flush as it writes.
func serveFastHTTPH1(listen string, up upstreams, rt *h1.Transport, stream bool) error {
	h := func(ctx *fasthttp.RequestCtx) {
		scheme, host, path := up.target(string(ctx.Path()))
		out := &http.Request{
			Method: string(ctx.Method()), URL: &url.URL{Scheme: scheme, Host: host, Path: path},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header), Host: host,
		}
		for k, v := range ctx.Request.Header.All() {
			if name := string(k); name != "Connection" && name != "Host" {
				out.Header.Add(name, string(v))
			}
		}
		if body := ctx.PostBody(); len(body) > 0 {
			out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		resp, err := rt.RoundTrip(out)
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			return
		}
		if !stream {
			defer resp.Body.Close()
		}
		for k, vs := range resp.Header {
			if k == "Connection" {
				continue
			}
			for _, v := range vs {
				ctx.Response.Header.Add(k, v)
			}
		}
		ctx.SetStatusCode(resp.StatusCode)
		if stream { // fasthttp closes the body at its end
			ctx.Response.SetBodyStream(resp.Body, int(resp.ContentLength))
			return
		}
		// fasthttp's body writer has no ReadFrom and h1's body no WriteTo:
		// io.Copy would make a 32 KiB buffer a request.
		buf := copyBuffers.Get().(*[]byte)
		_, _ = io.CopyBuffer(ctx.Response.BodyWriter(), resp.Body, *buf)
		copyBuffers.Put(buf)
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// serveFastHTTPAdapted serves a net/http handler on fasthttp's server
// through adapters written for it, not fasthttpadaptor's: the request is
// copied into an *http.Request, and the handler writes fasthttp's answer
// through an http.ResponseWriter that sets its fields as they come, on
// the connection's goroutine. With newFastTransport behind the handler, it
// is what moving both halves would give if the policies kept net/http's
// types, against "fasthttp", where nothing is copied.
func serveFastHTTPAdapted(listen string, h http.Handler) error {
	srv := &fasthttp.Server{Handler: adapt(h), ReadTimeout: 10 * time.Second}
	return srv.ListenAndServe(listen)
}

// fastWriter is an http.ResponseWriter over a fasthttp answer.
type fastWriter struct {
	ctx   *fasthttp.RequestCtx
	h     http.Header
	wrote bool
}

func (w *fastWriter) Header() http.Header { return w.h }

func (w *fastWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	for k, vs := range w.h {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
	w.ctx.SetStatusCode(code)
}

func (w *fastWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ctx.Write(p)
}

// fastTransport is an http.RoundTripper over fasthttp's HostClients, one
// for each upstream; the answer's body is read whole, as forwardFast's.
type fastTransport struct{ plain, secure *fasthttp.HostClient }

func newFastTransport(up upstreams, tlsConfig *tls.Config) *fastTransport {
	return &fastTransport{
		plain:  &fasthttp.HostClient{Addr: up.plain, MaxConns: 1024},
		secure: &fasthttp.HostClient{Addr: up.tls, MaxConns: 1024, IsTLS: true, TLSConfig: tlsConfig},
	}
}

func (t *fastTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.URL.Scheme + "://" + r.URL.Host + r.URL.RequestURI()) // as serveFastHTTP's: a HostClient refuses a scheme other than its own
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		req.SetBodyStream(r.Body, int(r.ContentLength))
	}
	client := t.plain
	if r.URL.Scheme == "https" {
		client = t.secure
	}
	if err := client.Do(req, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	out := &http.Response{
		StatusCode: resp.StatusCode(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, resp.Header.Len()), ContentLength: int64(len(resp.Body())), Request: r,
	}
	for k, v := range resp.Header.All() {
		name := string(k)
		out.Header[name] = append(out.Header[name], string(v))
	}
	out.Body = &fastBody{resp: resp, r: bytes.NewReader(resp.Body())}
	return out, nil
}

// fastBody is an answer's body held by fasthttp's response, which goes
// back to its pool when the body is closed.
type fastBody struct {
	resp *fasthttp.Response
	r    *bytes.Reader
}

func (b *fastBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *fastBody) Close() error {
	if b.resp != nil {
		fasthttp.ReleaseResponse(b.resp)
		b.resp = nil
	}
	return nil
}

// WriteTo spares io.Copy its buffer.
func (b *fastBody) WriteTo(w io.Writer) (int64, error) { return b.r.WriteTo(w) }
