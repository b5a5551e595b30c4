package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"

	"github.com/valyala/fasthttp"
)

// adapt serves a net/http handler on fasthttp: the request copied into an
// *http.Request, its body read whole by fasthttp first, the answer set
// through fastWriter (kept, and sent when the handler returns). Seawall's
// own adapter, which streams both ways, relays 1xx and trailers and
// notices the app hanging up, is internal/server's (engine: fasthttp).
func adapt(h http.Handler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		r := &http.Request{
			Method: string(ctx.Method()), URL: &url.URL{Path: string(ctx.Path()), RawQuery: string(ctx.URI().QueryString())},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, ctx.Request.Header.Len()),
			Host: string(ctx.Host()), RequestURI: string(ctx.RequestURI()), RemoteAddr: ctx.RemoteAddr().String(), Body: http.NoBody,
		}
		for k, v := range ctx.Request.Header.All() {
			if name := string(k); name != "Host" {
				r.Header[name] = append(r.Header[name], string(v))
			}
		}
		if body := ctx.PostBody(); len(body) > 0 {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		h.ServeHTTP(&fastWriter{ctx: ctx, h: make(http.Header)}, r)
	}
}

// Flush does nothing: fasthttp sends the answer once the handler returns.
func (w *fastWriter) Flush() {}
