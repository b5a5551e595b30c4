package problem

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// encodedByEncodingJSON is a problem as encoding/json's Encoder writes
// it: what Seawall sent before it appended the JSON itself.
func encodedByEncodingJSON(t testing.TB, p Body) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A problem's body is byte for byte what encoding/json wrote, for every
// field Seawall fills: escaped quotes, control characters, HTML's
// characters, non-ASCII and invalid UTF-8 in a detail taken from an
// upstream's error, and the fields left out when empty.
func TestBodyJSONIsEncodingJSONs(t *testing.T) {
	details := []string{
		"circuit breaker open, retry in 1h0m0s",
		`upstream unreachable: dial tcp 127.0.0.1:1: connect: connection refused`,
		`bad "quoted" \ back\slash`,
		"tab\tnew\nline\rnul\x00", "del\x7f",
		"<script>", "a > b", "fish & chips",
		"café ☕ \u2028 \u2029",
		"invalid \xff\xfe utf-8",
		"",
	}
	for _, d := range details {
		for _, p := range []Body{
			{Type: TypePrefix + "circuit-open", Title: "Circuit open", Status: 503, Detail: d,
				Upstream: "down", Hint: "The upstream has been failing; Seawall is not calling it until Retry-After.",
				RequestID: "ce05fa1a7b2784d1660dda2b", Attempts: 0},
			{Type: TypePrefix + "bad-path", Title: "Path not allowed", Status: 400, Detail: d, Attempts: 3},
			{Type: TypePrefix + "x", Title: d, Status: 499, Detail: d, Upstream: d, Hint: d, RequestID: d, Attempts: -1},
		} {
			want := encodedByEncodingJSON(t, p)
			if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("detail %q:\n got %s\nwant %s", d, got, want)
			}
		}
	}
}

// FuzzProblemJSON: whatever text an error carries, the appended body is
// encoding/json's.
func FuzzProblemJSON(f *testing.F) {
	f.Add("circuit breaker open, retry in 1h0m0s", "down", 2)
	f.Add("a \"b\" <c> & \\d \u2028 \xff", "", 0)
	f.Fuzz(func(t *testing.T, detail, upstream string, attempts int) {
		p := Body{Type: TypePrefix + "x", Title: "T", Status: 502, Detail: detail,
			Upstream: upstream, Hint: detail, RequestID: upstream, Attempts: attempts}
		want := encodedByEncodingJSON(t, p)
		if got := p.AppendJSON([]byte("kept")); !bytes.Equal(got, append([]byte("kept"), want...)) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// Write answers each problem with its own body and fields, one after
// another on buffers it lends itself (a long body, then a short one, has
// none of the long one's tail), and a kind made without Define is written
// as one made with it.
func TestWriteAnswersEachProblemWhole(t *testing.T) {
	defined := Define(503, "test-write", "Test write", "A hint.")
	literal := &Kind{Status: 503, Code: "test-write", Title: "Test write", Hint: "A hint."}
	long := Body{Detail: string(bytes.Repeat([]byte("x"), 2000)), Upstream: "u", RequestID: "r1", Attempts: 2}
	short := Body{Detail: "short", RequestID: "r2"}
	for i, tc := range []struct {
		k *Kind
		b Body
	}{{defined, long}, {defined, short}, {literal, long}, {literal, short}, {defined, short}} {
		rec := httptest.NewRecorder()
		Write(rec, tc.k, tc.b)
		want := tc.b
		want.Type, want.Title, want.Status, want.Hint = TypePrefix+"test-write", "Test write", 503, "A hint."
		wantJSON := want.AppendJSON(nil)
		if got := rec.Body.Bytes(); !bytes.Equal(got, wantJSON) {
			t.Errorf("%d: body\n got %s\nwant %s", i, got, wantJSON)
		}
		if rec.Code != 503 || rec.Header().Get("Seawall-Error") != "test-write" || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%d: %d %v", i, rec.Code, rec.Header())
		}
	}
}
