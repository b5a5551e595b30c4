package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/problem"
)

// Page is one page of a job listing. NextAfter, when not zero, is the
// after= of the next page.
type Page struct {
	Jobs      []jobs.View `json:"jobs"`
	NextAfter int64       `json:"next_after,omitempty"`
}

// Detail is one job as `seawall jobs show` prints it: its view and the
// request it delivers, with credentials redacted.
type Detail struct {
	jobs.View
	Header     map[string][]string `json:"header,omitempty"`
	Body       string              `json:"body,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
}

// Replayed is the outcome of a dead-letter replay.
type Replayed struct {
	Replayed int     `json:"replayed"`
	IDs      []int64 `json:"ids"`
}

// sensitiveWords mark a request header whose value shows redacted in the
// operator's job view: any header whose name holds one of them
// (Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Client-Key,
// X-Auth-Token, X-Webhook-Signature, Client-Secret...).
var sensitiveWords = []string{"key", "token", "secret", "auth", "cookie", "signature", "password", "credential"}

// sensitive reports whether header name's value is a credential.
func sensitive(name string) bool {
	lower := strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// maxReplay bounds one bulk replay; run it again for more.
const maxReplay = 100_000

// jobsAPI serves the operator's job endpoints over s; credential reports
// the header names the config in force marks as credentials.
type jobsAPI struct {
	s          jobs.Store
	credential func(name string) bool
	events     incident.Publisher
}

func (a jobsAPI) register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	handle := func(pattern string, f func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.Handle(pattern, auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a.s == nil {
				writeError(w, http.StatusNotFound, errors.New("no job store: no route is in async or deferred mode"))
				return
			}
			v, err := f(w, r)
			if err != nil {
				writeError(w, statusOf(err), err)
				return
			}
			writeJSON(w, v)
		})))
	}
	handle("GET /admin/jobs", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return a.list(r, jobs.State(r.URL.Query().Get("state")))
	})
	handle("GET /admin/dead", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return a.list(r, jobs.Dead)
	})
	handle("GET /admin/jobs/{id}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		j, err := a.get(r)
		if err != nil {
			return nil, err
		}
		return detail(j, a.credential), nil
	})
	handle("POST /admin/jobs/{id}/retry", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		j, err := a.get(r)
		if err != nil {
			return nil, err
		}
		if !j.Finished() {
			return nil, conflict(fmt.Errorf("job %d is %s: only finished jobs run again", j.ID, j.State))
		}
		j, err = a.s.Retry(r.Context(), j.ID)
		return j.View(), err
	})
	handle("POST /admin/jobs/{id}/cancel", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		j, err := a.get(r)
		if err != nil {
			return nil, err
		}
		if j.Finished() {
			return nil, conflict(fmt.Errorf("job %d is already %s", j.ID, j.State))
		}
		j, err = a.s.Cancel(r.Context(), j.ID)
		return j.View(), err
	})
	handle("POST /admin/dead/replay", func(w http.ResponseWriter, r *http.Request) (any, error) {
		out, err := a.replay(w, r)
		if out.Replayed > 0 {
			summary := fmt.Sprintf("%d dead letters replayed by an operator", out.Replayed)
			if up := r.URL.Query().Get("upstream"); up != "" {
				summary += " (" + up + ")"
			}
			a.events.Publish(incident.Event{Type: incident.JobsReplayed, Upstream: r.URL.Query().Get("upstream"), Severity: incident.Info,
				Summary: summary, Evidence: map[string]any{"replayed": out.Replayed}})
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	})
}

// list answers one page of jobs filtered by upstream and state.
func (a jobsAPI) list(r *http.Request, state jobs.State) (Page, error) {
	q := r.URL.Query()
	f := jobs.Filter{Upstream: q.Get("upstream"), State: state, Limit: 100}
	if err := validState(state); err != nil {
		return Page{}, err
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return Page{}, badRequest(fmt.Errorf("after=%q: want a job id", v))
		}
		f.AfterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > jobs.MaxListLimit {
			return Page{}, badRequest(fmt.Errorf("limit=%q: want 1 to %d", v, jobs.MaxListLimit))
		}
		f.Limit = n
	}
	list, err := a.s.List(r.Context(), f)
	if err != nil {
		return Page{}, err
	}
	p := Page{Jobs: make([]jobs.View, 0, len(list))}
	for _, j := range list {
		p.Jobs = append(p.Jobs, j.View())
	}
	if len(list) == f.Limit {
		p.NextAfter = list[len(list)-1].ID
	}
	return p, nil
}

// replay runs dead jobs again: the one named by id=, or every dead job
// (of upstream=, if given).
func (a jobsAPI) replay(_ http.ResponseWriter, r *http.Request) (Replayed, error) {
	q := r.URL.Query()
	out := Replayed{IDs: []int64{}}
	if v := q.Get("id"); v != "" {
		id, ok := jobs.ParseID(v)
		if !ok {
			return out, badRequest(fmt.Errorf("id=%q: want a job id", v))
		}
		j, err := a.s.Get(r.Context(), id)
		if err != nil {
			return out, err
		}
		if j.State != jobs.Dead {
			return out, conflict(fmt.Errorf("job %d is %s, not dead", id, j.State))
		}
		if _, err := a.s.Retry(r.Context(), id); err != nil {
			return out, err
		}
		out.Replayed, out.IDs = 1, append(out.IDs, id)
		return out, nil
	}
	f := jobs.Filter{Upstream: q.Get("upstream"), State: jobs.Dead, Limit: jobs.MaxListLimit}
	for out.Replayed < maxReplay {
		page, err := a.s.List(r.Context(), f)
		if err != nil {
			return out, err
		}
		for _, j := range page {
			if _, err := a.s.Retry(r.Context(), j.ID); err != nil {
				return out, fmt.Errorf("replayed %d, then job %d: %w", out.Replayed, j.ID, err)
			}
			out.Replayed++
			out.IDs = append(out.IDs, j.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterID = page[len(page)-1].ID
	}
	return out, nil
}

// get finds the job of the path's id: the store's id, or the public id
// the app was given.
func (a jobsAPI) get(r *http.Request) (jobs.Job, error) {
	id, ok := jobs.ParseID(r.PathValue("id"))
	if !ok {
		return jobs.Job{}, badRequest(fmt.Errorf("%q is not a job id", r.PathValue("id")))
	}
	return a.s.Get(r.Context(), id)
}

// detail is a job with its request, every credential header redacted:
// the default list (sensitive) and those the config marks (credential).
func detail(j jobs.Job, credential func(name string) bool) Detail {
	d := Detail{View: j.View(), Header: map[string][]string{}}
	for k, vs := range j.Delivery.Header {
		if sensitive(k) || credential(k) {
			vs = []string{"[redacted]"}
		}
		d.Header[k] = vs
	}
	if utf8.Valid(j.Delivery.Body) {
		d.Body = string(j.Delivery.Body)
	} else {
		d.BodyBase64 = j.Delivery.Body
	}
	return d
}

func validState(s jobs.State) error {
	switch s {
	case "", jobs.Queued, jobs.Running, jobs.Retrying, jobs.Succeeded, jobs.Dead, jobs.Canceled:
		return nil
	}
	return badRequest(fmt.Errorf("state=%q: want queued, running, retrying, succeeded, dead or canceled", s))
}

// statusError carries the HTTP status of an operator error.
type statusError struct {
	status int
	error
}

func (e statusError) Unwrap() error { return e.error }

func badRequest(err error) error { return statusError{http.StatusBadRequest, err} }
func conflict(err error) error   { return statusError{http.StatusConflict, err} }

func statusOf(err error) int {
	var se statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, jobs.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}

// The problems the admin listener answers with (docs/errors.md), by
// status.
var (
	kindAdminToken = problem.Define(http.StatusUnauthorized, "admin-token-required", "Admin token required",
		"Send Authorization: Bearer <token>: admin.token, or the token Seawall generated in data_dir/admin-token.")
	adminKinds = map[int]*problem.Kind{
		http.StatusBadRequest: problem.Define(http.StatusBadRequest, "bad-admin-request", "Bad request",
			"A parameter is malformed or out of range: the detail says which, and what it takes."),
		http.StatusNotFound: problem.Define(http.StatusNotFound, "not-found", "Not found",
			"No such job or incident (it may be older than those kept), or no job store: no route is in async or deferred mode."),
		http.StatusConflict: problem.Define(http.StatusConflict, "job-state-conflict", "Not in that job's state",
			"Only a finished job runs again, only a job not yet finished is canceled, only a dead one is replayed."),
		http.StatusServiceUnavailable: problem.Define(http.StatusServiceUnavailable, "store-unavailable", "Job store unavailable",
			"The job store failed or did not answer within its deadline; Seawall's log says why. Try again."),
	}
)

// writeError answers an operator error as problem+json.
func writeError(w http.ResponseWriter, status int, err error) {
	k, ok := adminKinds[status]
	if !ok {
		k = adminKinds[http.StatusServiceUnavailable]
	}
	problem.Write(w, k, problem.Body{Detail: err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	problem.FromSeawall(w.Header())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
