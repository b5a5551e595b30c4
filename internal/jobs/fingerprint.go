package jobs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// ScopeOf is the scope of an idempotency key: the method, the path
// without its query, and the caller (upstream.Caller's hash of its
// identity headers), so that another caller's identical key is another
// job. Neither an escaped path nor a method holds a space, so no two
// scopes are alike by moving bytes between the parts. Jobs stored before
// the caller was part of the scope are not found by a key sent since:
// the vendor still sees their shared key, and deduplicates them itself.
func ScopeOf(method, path, caller string) string {
	p, _, _ := strings.Cut(path, "?")
	return method + " " + p + " caller=" + caller
}

// Fingerprint identifies a request for the IETF Idempotency-Key draft's
// check that a key is not reused for another request: a SHA-256 of the
// method, the path with its query and the body, each length-prefixed so
// that no two requests share one by moving bytes between fields.
func Fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
