package incident

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/webhook"
)

// Notice is what a sink is told: an incident was triggered (opened, or
// its severity rose) or resolved.
type Notice struct {
	Seq      int64    `json:"seq"` // orders a sink's notices
	Action   string   `json:"action"`
	Incident Incident `json:"incident"` // its events left out
	// Event is the event that triggered it, or its latest.
	Event Event `json:"event"`
}

// The notice actions.
const (
	Trigger = "trigger"
	Resolve = "resolve"
)

// Sink sends notices somewhere.
type Sink interface {
	// Name identifies the sink in logs and in the store.
	Name() string
	// Min is the least incident severity it is sent.
	Min() Severity
	// Send delivers a notice. A *PermanentError is not retried.
	Send(ctx context.Context, n Notice) error
}

// PermanentError is a refusal that trying again would not change (a 400:
// the receiver says the notice is malformed, or the key is wrong).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// post sends body to url and judges the answer: 2xx is sent; 429, 5xx
// and network errors are worth another try; other statuses are not.
func post(ctx context.Context, c *http.Client, url string, header http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	default:
		return &PermanentError{fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(msg))}
	}
}

// PagerDuty sends notices to the Events API v2.
type PagerDuty struct {
	URL        string
	RoutingKey string // never logged
	MinSev     Severity
	Client     *http.Client
	// AdminURL is Seawall's admin API as its operators reach it, for the
	// link to the incident's timeline; empty for none.
	AdminURL string
}

// Name implements Sink.
func (p *PagerDuty) Name() string { return "pagerduty" }

// Min implements Sink.
func (p *PagerDuty) Min() Severity { return p.MinSev }

// DedupKey is the incident's key at PagerDuty: its trigger and its
// resolve carry the same, and so does every replica's for a cluster's
// incident.
func DedupKey(in Incident) string {
	switch {
	case in.Cluster != 0:
		return fmt.Sprintf("seawall/%s/cluster-%d", in.Upstream, in.Cluster)
	case in.Replica != "": // one replica's own, while the cluster did not answer
		return fmt.Sprintf("seawall/%s/%s-%d", in.Upstream, in.Replica, in.ID)
	}
	return fmt.Sprintf("seawall/%s/%d", in.Upstream, in.ID)
}

// pdSeverity is PagerDuty's name for a severity.
func pdSeverity(s Severity) string {
	if s < Info || s > Critical {
		return "error"
	}
	return s.String()
}

// PagerDutyEvent is the Events API v2 body Seawall sends.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
}

// PagerDutyLink is a link shown with the incident.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// PagerDutyPayload is a trigger's payload.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp"`
	Component     string         `json:"component"`
	Group         string         `json:"group"`
	Class         string         `json:"class"`
	CustomDetails map[string]any `json:"custom_details"`
}

// Body is the Events API v2 body of a notice.
func (p *PagerDuty) Body(n Notice) PagerDutyEvent {
	ev := PagerDutyEvent{RoutingKey: p.RoutingKey, EventAction: n.Action, DedupKey: DedupKey(n.Incident)}
	if n.Action == Trigger {
		host, _ := os.Hostname()
		summary := n.Incident.Upstream + ": " + n.Event.Summary
		if len(summary) > 1024 {
			summary = summary[:1021] + "..."
		}
		ev.Payload = &PagerDutyPayload{
			Summary: summary, Source: "seawall@" + host, Severity: pdSeverity(n.Incident.Severity),
			Timestamp: n.Event.Time.UTC().Format(time.RFC3339Nano),
			Component: n.Incident.Upstream, Group: "seawall", Class: n.Event.Type,
			CustomDetails: map[string]any{
				"incident": n.Incident.ID, "opened": n.Incident.Opened, "conditions": n.Incident.Conditions,
				"impact": n.Incident.Impact, "evidence": n.Event.Evidence, "endpoint": n.Event.Endpoint, "zone": n.Event.Zone,
				"timeline": "GET /admin/incidents/" + strconv.FormatInt(n.Incident.ID, 10) + " on Seawall's admin listener",
			},
		}
		if p.AdminURL != "" {
			ev.Links = []PagerDutyLink{{Href: strings.TrimRight(p.AdminURL, "/") + "/admin/incidents/" + strconv.FormatInt(n.Incident.ID, 10),
				Text: "Seawall's timeline of this incident (admin API, with its token)"}}
		}
	}
	return ev
}

// Send implements Sink.
func (p *PagerDuty) Send(ctx context.Context, n Notice) error {
	b, err := json.Marshal(p.Body(n))
	if err != nil {
		return &PermanentError{err}
	}
	err = post(ctx, p.Client, p.URL, nil, b)
	if err != nil && p.RoutingKey != "" && strings.Contains(err.Error(), p.RoutingKey) {
		// A receiver that echoes the key back must not put it in a log.
		msg := strings.ReplaceAll(err.Error(), p.RoutingKey, "[redacted]")
		var permanent *PermanentError
		if errors.As(err, &permanent) {
			return &PermanentError{errors.New(msg)}
		}
		return errors.New(msg)
	}
	return err
}

// Webhook sends notices as JSON signed as Standard Webhooks.
type Webhook struct {
	URL    string
	Key    []byte // from the secret; never logged
	MinSev Severity
	Client *http.Client
	Index  int // among the configured webhooks, for its name
}

// Name implements Sink.
func (w *Webhook) Name() string { return "webhook-" + strconv.Itoa(w.Index) }

// Min implements Sink.
func (w *Webhook) Min() Severity { return w.MinSev }

// WebhookBody is the JSON a webhook receives (docs/incidents.md).
type WebhookBody struct {
	Type      string    `json:"type"` // incident.triggered or incident.resolved
	Timestamp time.Time `json:"timestamp"`
	Data      Notice    `json:"data"`
}

// Send implements Sink.
func (w *Webhook) Send(ctx context.Context, n Notice) error {
	typ := "incident.triggered"
	if n.Action == Resolve {
		typ = "incident.resolved"
	}
	now := time.Now()
	b, err := json.Marshal(WebhookBody{Type: typ, Timestamp: now.UTC(), Data: n})
	if err != nil {
		return &PermanentError{err}
	}
	h := http.Header{}
	// One id per notice, the same on every try: the receiver dedupes.
	id := fmt.Sprintf("seawall-%s-%d-%s-%d", n.Incident.Upstream, n.Incident.ID, n.Action, n.Seq)
	if n.Incident.Cluster != 0 { // the same whichever replica tells it
		id = fmt.Sprintf("seawall-%s-cluster-%d-%s-%s", n.Incident.Upstream, n.Incident.Cluster, n.Action, n.Incident.Severity)
	}
	webhook.SetHeaders(h, w.Key, id, now, b)
	return post(ctx, w.Client, w.URL, h, b)
}

// Pending keeps the notices not yet delivered, so that none is lost on a
// restart. The job store is one when it is open.
type Pending interface {
	Put(ctx context.Context, sink string, n Notice) error
	Done(ctx context.Context, sink string, seq int64) error
	List(ctx context.Context, sink string) ([]Notice, error)
}

// Dispatcher delivers notices to each sink in order, retrying with
// backoff on 429, 5xx and network errors, one goroutine per sink: a slow
// receiver never holds the request path nor the other sinks.
type Dispatcher struct {
	sinks   []Sink
	pending Pending // nil: in memory only
	log     *slog.Logger
	// Backoff is the first wait after a failed try, doubled up to MaxBackoff.
	Backoff, MaxBackoff time.Duration

	mu     sync.Mutex
	seq    int64
	queues map[string]chan Notice
	wg     sync.WaitGroup
	stop   chan struct{}
	g      *routine.Group
}

// NewDispatcher returns a dispatcher to sinks; Start runs it, a goroutine
// of g for each sink.
func NewDispatcher(sinks []Sink, pending Pending, log *slog.Logger, g *routine.Group) *Dispatcher {
	return &Dispatcher{sinks: sinks, pending: pending, log: log, g: g, Backoff: time.Second, MaxBackoff: time.Minute,
		queues: map[string]chan Notice{}, stop: make(chan struct{})}
}

// Start loads the notices left undelivered by the last run and starts
// delivering.
func (d *Dispatcher) Start(ctx context.Context) {
	for _, s := range d.sinks {
		q := make(chan Notice, 1024)
		d.queues[s.Name()] = q
		if d.pending != nil {
			left, err := d.pending.List(ctx, s.Name())
			if err != nil {
				d.log.Warn("incident notices left undelivered could not be read", "sink", s.Name(), "error", err.Error())
			}
			for _, n := range left {
				d.seq = max(d.seq, n.Seq)
				select {
				case q <- n:
				default:
				}
			}
		}
		d.wg.Add(1)
		d.g.Go("incident notices to "+s.Name(), func() { d.deliver(s, q) })
	}
}

// Stop ends delivery; what is undelivered stays pending for the next run.
func (d *Dispatcher) Stop() {
	close(d.stop)
	d.wg.Wait()
}

// Notify queues n for every sink whose least severity it reaches.
func (d *Dispatcher) Notify(n Notice) {
	for _, s := range d.sinks {
		if n.Incident.Severity < s.Min() {
			continue
		}
		d.mu.Lock()
		d.seq++
		n.Seq = d.seq
		d.mu.Unlock()
		if d.pending != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.pending.Put(ctx, s.Name(), n); err != nil {
				d.log.Warn("incident notice not kept in the job store; it is sent from memory", "sink", s.Name(), "error", err.Error())
			}
			cancel()
		}
		select {
		case d.queues[s.Name()] <- n:
		default:
			d.log.Error("incident notices are backing up; this one waits for the next start", "sink", s.Name(), "incident", n.Incident.ID)
		}
	}
}

// deliver sends one sink's notices in order, each until it is delivered
// or refused for good.
func (d *Dispatcher) deliver(s Sink, q <-chan Notice) {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			return
		case n := <-q:
			if !d.sendUntilDone(s, n) {
				return
			}
		}
	}
}

// sendUntilDone tries n until it is delivered or refused for good; false
// when stopped first.
func (d *Dispatcher) sendUntilDone(s Sink, n Notice) bool {
	wait := d.Backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Send(ctx, n)
		cancel()
		var permanent *PermanentError
		switch {
		case err == nil:
			d.log.Info("incident notice sent", "sink", s.Name(), "incident", n.Incident.ID, "action", n.Action, "attempt", attempt)
		case errors.As(err, &permanent):
			d.log.Error("incident notice refused for good", "sink", s.Name(), "incident", n.Incident.ID, "action", n.Action, "error", err.Error())
		default:
			d.log.Warn("incident notice not delivered; trying again", "sink", s.Name(), "incident", n.Incident.ID, "action", n.Action,
				"attempt", attempt, "retry_in_seconds", wait.Seconds(), "error", err.Error())
			select {
			case <-d.stop:
				return false
			case <-time.After(wait):
			}
			wait = min(2*wait, d.MaxBackoff)
			continue
		}
		if d.pending != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.pending.Done(ctx, s.Name(), n.Seq)
			cancel()
		}
		return true
	}
}
