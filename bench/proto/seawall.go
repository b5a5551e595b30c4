package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/valyala/fasthttp"
)

// serveFastHTTPSeawall serves Seawall's own handler, every policy on, on
// fasthttp's server through the adapter of serveFastHTTPAdapted, behind
// Seawall's framing listener: what ADR 0006's step 3 would give before
// anything else moves. The answer is sent when the handler returns, so a
// body of unknown length is not flushed as it arrives (Flush does
// nothing): a measurement, not a listener.
func serveFastHTTPSeawall(listen, configFile string) error {
	cfg, err := config.LoadFile(configFile)
	if err != nil {
		return err
	}
	ups := upstream.NewSet(cfg, upstream.Parts{Metrics: proxy.NewMetrics(), Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	p := proxy.New(cfg, ups)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{Handler: adapt(p, proxy.ConnContext), ReadTimeout: 10 * time.Second, ReadBufferSize: 64 << 10, NoDefaultServerHeader: true}
	return srv.Serve(proxy.Listener(ln))
}

// adapt serves a net/http handler on fasthttp: the request copied into an
// *http.Request whose context connContext gives from the connection, the
// answer set through fastWriter, and net/http's ErrAbortHandler taken as
// net/http takes it, the connection closed with nothing sent.
func adapt(h http.Handler, connContext func(context.Context, net.Conn) context.Context) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		r := &http.Request{
			Method: string(ctx.Method()), URL: &url.URL{Path: string(ctx.Path()), RawQuery: string(ctx.URI().QueryString())},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, ctx.Request.Header.Len()),
			Host: string(ctx.Host()), RequestURI: string(ctx.RequestURI()), RemoteAddr: ctx.RemoteAddr().String(), Body: http.NoBody,
		}
		if !ctx.Request.Header.IsHTTP11() {
			r.Proto, r.ProtoMinor = "HTTP/1.0", 0
		}
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			r.URL = u
		}
		for k, v := range ctx.Request.Header.All() {
			if name := string(k); name != "Host" {
				r.Header[name] = append(r.Header[name], string(v))
			}
		}
		if body := ctx.PostBody(); len(body) > 0 {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		if connContext != nil {
			r = r.WithContext(connContext(context.Background(), ctx.Conn()))
		}
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					ctx.HijackSetNoResponse(true)
					ctx.Hijack(func(net.Conn) {})
					return
				}
				panic(v)
			}
		}()
		h.ServeHTTP(&fastWriter{ctx: ctx, h: make(http.Header)}, r)
	}
}

// Flush does nothing: fasthttp sends the answer once the handler returns.
func (w *fastWriter) Flush() {}

// SetReadDeadline and SetWriteDeadline set the connection's, as
// http.ResponseController does on net/http's.
func (w *fastWriter) SetReadDeadline(t time.Time) error  { return w.ctx.Conn().SetReadDeadline(t) }
func (w *fastWriter) SetWriteDeadline(t time.Time) error { return w.ctx.Conn().SetWriteDeadline(t) }
