package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/seawall/seawall/internal/incident"
)

// incidentsAPI serves the incident commander's timeline.
type incidentsAPI struct{ rec *incident.Recorder }

func (a incidentsAPI) register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	handle := func(pattern string, fn http.HandlerFunc) { mux.Handle(pattern, auth(fn)) }
	handle("GET /admin/incidents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, a.rec.Incidents())
	})
	handle("GET /admin/incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("incident id %q: want a number", r.PathValue("id")))
			return
		}
		in, ok := a.rec.Incident(id)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Errorf("no incident %d (it may be older than those kept)", id))
			return
		}
		writeJSON(w, in)
	})
	handle("GET /admin/events", func(w http.ResponseWriter, r *http.Request) {
		since, err := parseSince(r.URL.Query().Get("since"), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, a.rec.Events(r.URL.Query().Get("upstream"), since))
	})
}

// parseSince reads since= as an RFC 3339 time or a duration back from now
// ("15m"); empty means all.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("since=" + strconv.Quote(v) + ": want an RFC 3339 time or a duration back from now, like 15m")
}
