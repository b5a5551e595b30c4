package proxy

import (
	"net/http"

	"github.com/seawall/seawall/internal/upstream"
)

// notRelayed reports whether an upstream's response header stays at
// Seawall: hop-by-hop headers and a request id, which Seawall has set.
var notRelayed = upstream.NotRelayed

// notRelayedOrLength is notRelayed, and Content-Length too, for answers
// that set their own length.
func notRelayedOrLength(name string) bool { return name == "Content-Length" || notRelayed(name) }

// copyHeader adds src's headers to dst but those skip names (and those
// src's Connection header lists).
var copyHeader = upstream.CopyHeader

// headerFirst is a field's first value, by a name canonical already.
var headerFirst = upstream.First

// filtered is a new header holding src's headers but those skip names.
func filtered(src http.Header, skip func(string) bool) http.Header {
	h := make(http.Header, len(src))
	copyHeader(h, src, skip)
	return h
}

// fromUp and fromCache are the shared values of Seawall-Source on an
// upstream's answer and one from the cache; problem.FromSeawall marks one
// Seawall made.
var (
	fromUp    = []string{"upstream"}
	fromCache = []string{"cache"}
)
