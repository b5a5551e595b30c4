package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/seawall/seawall/internal/testlog"
	"github.com/seawall/seawall/internal/tracing"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it keeps every span sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// of are the spans of trace id (hex), by kind.
func (o *otlpReceiver) of(id string) map[tracepb.Span_SpanKind][]*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[tracepb.Span_SpanKind][]*tracepb.Span{}
	for _, s := range o.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out[s.GetKind()] = append(out[s.GetKind()], s)
		}
	}
	return out
}

// Acceptance 3 of the operator-experience issue: a GET retried twice is
// one server span and three client spans in the trace whose id the app
// sent in traceparent; the vendor receives that trace id from each
// attempt's span; an async job's delivery joins the same trace; the log
// line names the trace; the latency histogram's exemplar is its id.
func TestTracesJoinTheAppsTrace(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	stop, err := tracing.Setup(context.Background(), "test", slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()
	if !tracing.On() {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}

	var flaky atomic.Int64
	var seenMu sync.Mutex
	seen := map[string][]string{} // path → traceparents the vendor received
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenMu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], r.Header.Get("Traceparent"))
		seenMu.Unlock()
		if r.URL.Path == "/v1/flaky" && flaky.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer vendor.Close()
	store := filepath.Join(t.TempDir(), "jobs.db")
	doc := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: %s}
jobs: {store: %q, callbacks: {allowed_hosts: [%q], secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}}
upstreams:
  api:
    url: %s
    retry: {max_attempts: 3, base_delay: 10ms}
    breaker: {disabled: true}
    routes:
      - {match: "POST /v1/events", mode: async}
`, dashToken, store, strings.TrimPrefix(vendor.URL, "http://"), vendor.URL)
	var logBuf testlog.Buffer
	srv, _, _ := startDocLog(t, doc, &logBuf)
	app, adminURL := "http://"+srv.Addrs()[0].String(), "http://"+srv.Addrs()[1].String()

	const syncTrace, jobTrace = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
	send := func(method, path, trace string) *http.Response {
		req, _ := http.NewRequest(method, app+path, strings.NewReader(`{"e":1}`))
		req.Header.Set("Traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
		if method == "POST" {
			req.Header.Set("Seawall-Callback", vendor.URL+"/callback")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	if resp := send("GET", "/api/v1/flaky", syncTrace); resp.StatusCode != 200 {
		t.Fatalf("the flaky GET: %d, want 200 on its third attempt", resp.StatusCode)
	}
	if resp := send("POST", "/api/v1/events", jobTrace); resp.StatusCode != 202 {
		t.Fatalf("the async POST: %d, want 202", resp.StatusCode)
	}

	// The spans arrive in batches; wait for all of them.
	deadline := time.Now().Add(10 * time.Second)
	var got, job map[tracepb.Span_SpanKind][]*tracepb.Span
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, job = recv.of(syncTrace), recv.of(jobTrace)
		if len(got[tracepb.Span_SPAN_KIND_CLIENT]) >= 3 && len(job[tracepb.Span_SPAN_KIND_CLIENT]) >= 2 && len(job[tracepb.Span_SPAN_KIND_CONSUMER]) >= 1 {
			break
		}
	}
	servers, clients := got[tracepb.Span_SPAN_KIND_SERVER], got[tracepb.Span_SPAN_KIND_CLIENT]
	if len(servers) != 1 || len(clients) != 3 {
		t.Fatalf("trace %s: %d server and %d client spans, want 1 and 3", syncTrace, len(servers), len(clients))
	}
	server := servers[0]
	if hex.EncodeToString(server.GetParentSpanId()) != "00f067aa0ba902b7" {
		t.Errorf("the server span's parent is %x, want the app's span 00f067aa0ba902b7", server.GetParentSpanId())
	}
	attempts := map[int64]bool{}
	var ids []string
	for _, c := range clients {
		if !bytes.Equal(c.GetParentSpanId(), server.GetSpanId()) {
			t.Errorf("client span %q's parent is %x, want the server span %x", c.GetName(), c.GetParentSpanId(), server.GetSpanId())
		}
		a := attrs(c)
		attempts[a["seawall.attempt"].GetIntValue()] = true
		if a["seawall.upstream"].GetStringValue() != "api" || a["seawall.endpoint"].GetStringValue() != vendor.URL || a["seawall.breaker"].GetStringValue() != "disabled" {
			t.Errorf("client span attributes %v", a)
		}
		ids = append(ids, hex.EncodeToString(c.GetSpanId()))
	}
	if !attempts[1] || !attempts[2] || !attempts[3] {
		t.Errorf("attempt numbers %v, want 1, 2 and 3", attempts)
	}
	seenMu.Lock()
	flakyParents, jobParents, callbackParents := seen["/v1/flaky"], seen["/v1/events"], seen["/callback"]
	seenMu.Unlock()
	if len(flakyParents) != 3 {
		t.Fatalf("the vendor got %d calls, want 3", len(flakyParents))
	}
	for i, tp := range flakyParents {
		if !strings.HasPrefix(tp, "00-"+syncTrace+"-") || !strings.Contains(strings.Join(ids, " "), strings.Split(tp, "-")[2]) {
			t.Errorf("call %d's traceparent %q: want trace %s and one of the client spans %v", i+1, tp, syncTrace, ids)
		}
	}

	// The job: accepted in the app's trace, delivered in it.
	if n := len(job[tracepb.Span_SPAN_KIND_SERVER]); n != 1 {
		t.Errorf("the job's trace has %d server spans, want 1 (its acceptance)", n)
	}
	deliveries, jobClients := job[tracepb.Span_SPAN_KIND_CONSUMER], job[tracepb.Span_SPAN_KIND_CLIENT]
	if len(deliveries) == 0 || len(jobClients) == 0 {
		t.Fatalf("the job's trace has %d delivery and %d client spans, want them in trace %s", len(deliveries), len(jobClients), jobTrace)
	}
	var attemptSpan, callbackSpan *tracepb.Span
	for _, c := range jobClients {
		if strings.HasPrefix(c.GetName(), "callback") {
			callbackSpan = c
		} else {
			attemptSpan = c
		}
	}
	if attemptSpan == nil || !bytes.Equal(attemptSpan.GetParentSpanId(), deliveries[0].GetSpanId()) {
		t.Errorf("the delivery's attempt is not the delivery span's child")
	}
	if callbackSpan == nil || len(callbackParents) == 0 || !strings.HasPrefix(callbackParents[0], "00-"+jobTrace+"-"+hex.EncodeToString(callbackSpan.GetSpanId())) {
		t.Errorf("the callback: span %v, traceparent %q; want a callback span in trace %s, named by the callback's traceparent", callbackSpan, callbackParents, jobTrace)
	}
	if len(jobParents) == 0 || !strings.HasPrefix(jobParents[0], "00-"+jobTrace+"-") {
		t.Errorf("the vendor got the job's delivery with traceparent %q, want trace %s", jobParents, jobTrace)
	}

	// The log line and the exemplar name the trace.
	if !strings.Contains(logBuf.String(), `"trace_id":"`+syncTrace+`"`) {
		t.Errorf("no request log line with trace_id %s", syncTrace)
	}
	req, _ := http.NewRequest("GET", adminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+dashToken)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`trace_id="`+syncTrace+`"`)) {
		t.Errorf("no exemplar with trace_id %s on the latency histograms", syncTrace)
	}
}

func attrs(s *tracepb.Span) map[string]*commonpb.AnyValue {
	out := map[string]*commonpb.AnyValue{}
	for _, kv := range s.GetAttributes() {
		out[kv.GetKey()] = kv.GetValue()
	}
	return out
}
