// Package cache is Seawall's shared HTTP cache (RFC 9111): it parses
// Cache-Control, decides what may be stored and for how long, computes Age,
// and keeps entries in a Store bounded by bytes. The proxy's cached mode
// (internal/proxy/cached.go) puts it in front of the sync path.
package cache
