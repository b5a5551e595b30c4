package jobs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// ScopeOf is the scope of an idempotency key: the method and the path
// without its query.
func ScopeOf(method, path string) string {
	p, _, _ := strings.Cut(path, "?")
	return method + " " + p
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
