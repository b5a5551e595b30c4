package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/cache"
)

// writeEntry names a body's length only when net/http could not: an
// answer that fits the server's buffer is sent with the length the
// server counts, and one field fewer to copy, sort and write.
func TestWriteEntryLeavesASmallBodysLengthToTheServer(t *testing.T) {
	for _, n := range []int{10, autoLengthMax, autoLengthMax + 1} {
		e := &cache.Entry{Status: http.StatusOK, Header: http.Header{"Content-Length": {"999"}}, Body: []byte(strings.Repeat("x", n))}
		w := httptest.NewRecorder()
		writeEntry(w, httptest.NewRequest(http.MethodGet, "/", nil), e, time.Now(), "Seawall; hit", fromCache)
		got, named := w.Result().Header["Content-Length"]
		if want := n > autoLengthMax; named != want {
			t.Errorf("%d bytes: Content-Length named %v (%q), want %v", n, named, got, want)
		}
		if named && got[0] != "2049" {
			t.Errorf("%d bytes: Content-Length %q, want the body's", n, got)
		}
	}
}
