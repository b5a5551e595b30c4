// Package admin serves Seawall's operator API on its own listener:
// Prometheus metrics, health and the live state of each upstream.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seawall/seawall/internal/proxy"
)

// Handler returns the admin API. With a token, every endpoint but /healthz
// requires "Authorization: Bearer <token>".
func Handler(p *proxy.Proxy, m *proxy.Metrics, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", authorized(token, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})))
	mux.Handle("GET /admin/upstreams", authorized(token, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Status())
	})))
	mux.Handle("POST /admin/cache/purge", authorized(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := p.PurgeCache(r.URL.Query().Get("upstream"), r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"purged": n})
	})))
	return mux
}

func authorized(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="seawall-admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
