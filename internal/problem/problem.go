// Package problem is the one table of the problems Seawall answers with
// (RFC 9457 application/problem+json), and their one writer, for the
// application listener and the admin listener alike. Each kind is defined
// once, where its package refuses with it; Kinds lists them all, and a
// test holds docs/errors.md to that list.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// TypePrefix makes each code a stable URI for the problem's type.
const TypePrefix = "urn:seawall:problem:"

// Kind is one kind of problem: its status, its stable code (the type URI's
// tail, and Seawall-Error), a title, and a hint saying what to do. One
// code may have several kinds, with another status or hint.
type Kind struct {
	Status int
	Code   string
	Title  string
	Hint   string

	// typeURI and codeField are the type and the Seawall-Error field
	// value, made once by Define (a kind made otherwise makes them at
	// each Write).
	typeURI   string
	codeField *[1]string
}

var (
	mu    sync.Mutex
	kinds []*Kind
)

// Define returns a new kind and adds it to the table. Call it from a
// package-level var, once per kind.
func Define(status int, code, title, hint string) *Kind {
	k := &Kind{Status: status, Code: code, Title: title, Hint: hint, typeURI: TypePrefix + code, codeField: &[1]string{code}}
	mu.Lock()
	kinds = append(kinds, k)
	mu.Unlock()
	return k
}

// Kinds are every kind defined so far, in the order defined.
func Kinds() []Kind {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = Kind{Status: k.Status, Code: k.Code, Title: k.Title, Hint: k.Hint}
	}
	return out
}

// Body is a problem's JSON body.
type Body struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Upstream  string `json:"upstream,omitempty"`
	Hint      string `json:"hint,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Attempts  int    `json:"attempts"` // upstream calls made for this request
}

var (
	contentType = []string{"application/problem+json"}
	fromSeawall = []string{"seawall"}
)

// FromSeawall marks h as an answer Seawall made itself (Seawall-Source:
// seawall), as every problem is; the JSON answers of both listeners carry
// it too.
func FromSeawall(h http.Header) { h["Seawall-Source"] = fromSeawall }

// Write answers k: its headers (Content-Type, Seawall-Source: seawall,
// Seawall-Error: the code, beside any the caller set), its status, and b
// with the type, title, status and hint of k.
func Write(w http.ResponseWriter, k *Kind, b Body) {
	// The names are canonical: assigned directly, without the header
	// map's canonicalizing.
	h := w.Header()
	h["Content-Type"] = contentType
	FromSeawall(h)
	typeURI, code := k.typeURI, k.codeField
	if code == nil {
		typeURI, code = TypePrefix+k.Code, &[1]string{k.Code}
	}
	h["Seawall-Error"] = code[:] // shared: a field's values are replaced, never changed in place
	b.Type, b.Title, b.Status, b.Hint = typeURI, k.Title, k.Status, k.Hint
	w.WriteHeader(k.Status)
	// Most problems fit; a longer one grows it. Write copies it (an
	// io.Writer keeps nothing of what it is given), so it is lent.
	buf := bodies.Get().(*[]byte)
	*buf = b.AppendJSON((*buf)[:0])
	_, _ = w.Write(*buf)
	if cap(*buf) <= 4<<10 {
		bodies.Put(buf)
	}
}

// bodies lend Write its JSON buffers.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// AppendJSON appends b's JSON to dst as encoding/json's Encoder writes it,
// byte for byte (TestBodyJSONIsEncodingJSONs): encoding/json walked the
// struct by reflection, a tenth of a refusal's CPU.
func (b *Body) AppendJSON(dst []byte) []byte {
	dst = appendString(append(dst, `{"type":`...), b.Type)
	dst = appendString(append(dst, `,"title":`...), b.Title)
	dst = strconv.AppendInt(append(dst, `,"status":`...), int64(b.Status), 10)
	dst = appendString(append(dst, `,"detail":`...), b.Detail)
	if b.Upstream != "" {
		dst = appendString(append(dst, `,"upstream":`...), b.Upstream)
	}
	if b.Hint != "" {
		dst = appendString(append(dst, `,"hint":`...), b.Hint)
	}
	if b.RequestID != "" {
		dst = appendString(append(dst, `,"request_id":`...), b.RequestID)
	}
	dst = strconv.AppendInt(append(dst, `,"attempts":`...), int64(b.Attempts), 10)
	return append(dst, "}\n"...)
}

// appendString appends s as a JSON string as encoding/json writes it:
// printable ASCII that JSON and HTML leave alone as it is, anything else
// by encoding/json itself.
func appendString(dst []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
