package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/h1"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/tracing"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/webhook"
)

// Callbacks implements jobs.Notifier: it POSTs a finished job to the URL
// its request named in Seawall-Callback, signed as Standard Webhooks.
type Callbacks struct {
	key     []byte
	allowed func(host string) bool
	client  *http.Client
	now     func() time.Time
}

// NewCallbacks builds the notifier of a validated config, or nil when no
// callback host is allowed. allowed tells whether a host is in the
// allow-list in force when a callback is sent, which a reload may have
// changed since the job was accepted; nil takes c's.
func NewCallbacks(c config.Callbacks, allowed func(host string) bool) (*Callbacks, error) {
	if len(c.AllowedHosts) == 0 {
		return nil, nil
	}
	key, err := webhook.Key(c.Secret.Value())
	if err != nil {
		return nil, err
	}
	if allowed == nil {
		hosts := upstream.HostSet(c.AllowedHosts)
		allowed = func(host string) bool { return hosts[strings.ToLower(host)] }
	}
	cb := &Callbacks{key: key, allowed: allowed, now: time.Now, client: &http.Client{
		// Seawall's own HTTP/1.1 client, as an upstream's (ADR 0004): a
		// pool of its own, no proxy taken from the environment, and no
		// Accept-Encoding added to what Seawall sends.
		Transport: h1.New(h1.Options{Connect: c.Timeout.D(), MaxIdlePerHost: 16}),
		Timeout:   c.Timeout.D(),
		// A redirect could lead anywhere; the allowed host must answer itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	return cb, nil
}

// CallbackPayload is the body of a callback, in the Standard Webhooks
// shape: a type, a timestamp and the data.
type CallbackPayload struct {
	Type      string       `json:"type"` // job.succeeded, job.dead or job.canceled
	Timestamp time.Time    `json:"timestamp"`
	Data      CallbackData `json:"data"`
}

// CallbackData is the job, and for deferred jobs the upstream's response.
type CallbackData struct {
	jobs.View
	Response *CallbackResponse `json:"response,omitempty"`
}

// CallbackResponse is a kept upstream response. Body holds a UTF-8 body as
// text; any other body is in BodyBase64.
type CallbackResponse struct {
	Status     int                 `json:"status"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       string              `json:"body,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
	Truncated  bool                `json:"truncated,omitempty"`
}

// Notify implements jobs.Notifier.
func (cb *Callbacks) Notify(ctx context.Context, j jobs.Job) error {
	target := j.Delivery.Callback
	if u, err := url.Parse(target); err != nil || !cb.allowed(u.Host) {
		return fmt.Errorf("callback %q is no longer allowed by jobs.callbacks.allowed_hosts", target)
	}
	now := cb.now()
	p := CallbackPayload{Type: "job." + string(j.State), Timestamp: now.UTC(), Data: CallbackData{View: j.View()}}
	if r := j.Result; r != nil && j.Delivery.Deferred {
		resp := &CallbackResponse{Status: r.Status, Headers: r.Header, Truncated: r.Truncated}
		if utf8.Valid(r.Body) {
			resp.Body = string(r.Body)
		} else {
			resp.BodyBase64 = r.Body
		}
		p.Data.Response = resp
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Seawall")
	req.Header.Set("Seawall-Job-Id", publicID(j))
	tracing.Inject(ctx, req.Header) // the callback joins the trace the job was accepted in
	// One id per job and outcome: a receiver folds repeats of it into one.
	webhook.SetHeaders(req.Header, cb.key, fmt.Sprintf("job_%d_%s", j.ID, j.State), now, body)
	resp, err := cb.client.Do(req)
	if err != nil {
		return fmt.Errorf("callback to %s: %w", req.URL.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback to %s answered %d", req.URL.Host, resp.StatusCode)
	}
	return nil
}
