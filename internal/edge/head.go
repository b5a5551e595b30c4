// Package edge checks what an app sends Seawall where an HTTP engine does
// not: the requirements of RFC 9112 that net/http's server meets and
// fasthttp's does not (ADR 0006, "The edge's hostile input, against each
// server"). It reads the field lines an engine has already split a head
// into; it does not frame messages.
package edge

import (
	"bytes"
	"errors"
)

// The refusals Fields makes, each a 400 (RFC 9112).
var (
	// ErrSpaceBeforeColon: whitespace between a field's name and its
	// colon (§5.1), which lets one reader see a field another does not:
	// "Transfer-Encoding : chunked" framed by one and not the other.
	ErrSpaceBeforeColon = errors.New("whitespace between a field name and its colon")
	// ErrNoHost: an HTTP/1.1 request without a Host field (§3.2).
	ErrNoHost = errors.New("an HTTP/1.1 request without a Host field")
	// ErrTwoHosts: a request with more than one Host field (§3.2).
	ErrTwoHosts = errors.New("more than one Host field")
)

var host = []byte("host")

// Fields checks the field lines of a request head as received: raw
// holds them after the request line, each ending in LF (or CRLF), up to
// the empty line that ends the head, or the end of raw. http11 says the
// request is HTTP/1.1, which must name its Host. A line that starts with
// whitespace (an obsolete fold) or has no colon is left to the engine,
// which refuses or joins it.
func Fields(raw []byte, http11 bool) error {
	hosts := 0
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // the end of the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if n := len(name); n > 0 && (name[n-1] == ' ' || name[n-1] == '\t') {
			return ErrSpaceBeforeColon
		}
		if bytes.EqualFold(name, host) {
			hosts++
		}
	}
	switch {
	case hosts > 1:
		return ErrTwoHosts
	case hosts == 0 && http11:
		return ErrNoHost
	}
	return nil
}
