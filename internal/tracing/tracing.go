// Package tracing is Seawall's OpenTelemetry layer, at the two edges of a
// call: the server span of an app's request (or of a job's delivery) and
// the client span of each attempt at the vendor. It is off unless the
// standard OTEL_* variables name an OTLP endpoint; off, every function
// here returns at once and a request pays one load of a flag.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// on says whether tracing is set up; read on every request.
var on atomic.Bool

// tracer and propagator are set by Setup; their zero forms do nothing.
var (
	tracer     trace.Tracer = noop.NewTracerProvider().Tracer("")
	propagator propagation.TextMapPropagator
)

// On reports whether traces are being made.
func On() bool { return on.Load() }

// Configured says whether the environment asks for traces: an OTLP
// endpoint is named (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER is otlp,
// and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says
// otherwise.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch exp := strings.ToLower(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup starts exporting traces when the environment asks for them, and
// returns the function that flushes and stops it (it also turns tracing
// off again). The exporter is OTLP over HTTP with protobuf, configured by
// the standard variables (endpoint, headers, timeout, TLS); sampling is
// parent-based: a call the app's trace samples is sampled, and a call
// without a parent is sampled at OTEL_TRACES_SAMPLER_ARG's ratio (default
// 1), unless OTEL_TRACES_SAMPLER names another sampler.
func Setup(ctx context.Context, version string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	if !Configured(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := os.Getenv(v); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("%s=%s: Seawall exports traces as http/protobuf only; point it at the collector's OTLP/HTTP port (4318)", v, p)
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("the OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", serviceName()), attribute.String("service.version", version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("the trace resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio()))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	tracer = tp.Tracer("github.com/seawall/seawall")
	propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: " + err.Error()) }))
	on.Store(true)
	log.Info("tracing on: spans go to the OTLP endpoint of the OTEL_* variables", "service", serviceName(), "sample_ratio", ratio())
	return func(ctx context.Context) error {
		on.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// serviceName is OTEL_SERVICE_NAME, or seawall.
func serviceName() string {
	if n := os.Getenv("OTEL_SERVICE_NAME"); n != "" {
		return n
	}
	return "seawall"
}

// ratio is OTEL_TRACES_SAMPLER_ARG as a ratio in [0, 1], or 1.
func ratio() float64 {
	var r float64
	if _, err := fmt.Sscan(os.Getenv("OTEL_TRACES_SAMPLER_ARG"), &r); err != nil || r < 0 || r > 1 {
		return 1
	}
	return r
}

// StartServer starts the server span of an app's request, a child of the
// app's trace when its traceparent names one. Off, it returns r as is and
// a span that does nothing.
func StartServer(r *http.Request) (*http.Request, trace.Span) {
	if !on.Load() {
		return r, trace.SpanFromContext(context.Background())
	}
	ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := tracer.Start(ctx, r.Method, serverKind...)
	if span.IsRecording() { // an unsampled request builds no attributes
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", truncate(r.URL.Path, 256)))
	}
	return r.WithContext(ctx), span
}

// EndServer names the server span by its upstream and route, records how
// it was answered, and ends it.
func EndServer(ctx context.Context, method, upstream, route string, status int, source string, attempts int, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	switch {
	case route != "" && route != "default" && strings.Contains(route, " "):
		span.SetName(upstream + " " + route) // a route named by its pattern: "api GET /v1/items/{id}"
	case route != "" && route != "default":
		span.SetName(method + " " + upstream + " " + route)
	case upstream != "":
		span.SetName(method + " " + upstream)
	}
	span.SetAttributes(attribute.String("seawall.upstream", upstream), attribute.String("seawall.route", route),
		attribute.Int("http.response.status_code", status),
		attribute.String("seawall.source", source), attribute.Int("seawall.attempts", attempts))
	if err != nil {
		span.RecordError(err)
	}
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// TraceID is the trace id of ctx's span when it is sampled, else "".
func TraceID(ctx context.Context) string {
	if !on.Load() {
		return ""
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return sc.TraceID().String()
	}
	return ""
}

// Inject writes ctx's trace context into h (traceparent, tracestate):
// the vendor's request, or a job's kept headers.
func Inject(ctx context.Context, h http.Header) {
	if on.Load() {
		propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// StartDelivery starts the span of one delivery of a job, a child of the
// trace the job was accepted in, whose context its kept headers carry.
func StartDelivery(ctx context.Context, h http.Header, upstream string, job int64) (context.Context, trace.Span) {
	return startJob(ctx, h, "deliver "+upstream, trace.SpanKindConsumer, upstream, job)
}

// StartCallback starts the span of a job's callback to the app, in the
// trace the job was accepted in.
func StartCallback(ctx context.Context, h http.Header, upstream string, job int64) (context.Context, trace.Span) {
	return startJob(ctx, h, "callback "+upstream, trace.SpanKindClient, upstream, job)
}

func startJob(ctx context.Context, h http.Header, name string, kind trace.SpanKind, upstream string, job int64) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx = propagator.Extract(ctx, propagation.HeaderCarrier(h))
	return tracer.Start(ctx, name, trace.WithSpanKind(kind),
		trace.WithAttributes(attribute.String("seawall.upstream", upstream), attribute.Int64("seawall.job", job)))
}

// EndDelivery records how a delivery ended, the vendor's status (0 for
// none) or its error, and ends its span.
func EndDelivery(span trace.Span, status int, err error) {
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, truncate(err.Error(), 200))
	}
	span.End()
}

// StartAttempt starts the client span of attempt n at the vendor.
func StartAttempt(ctx context.Context, upstream, route, mode string, n int, background bool) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	if !trace.SpanContextFromContext(ctx).IsSampled() && trace.SpanContextFromContext(ctx).IsValid() {
		return tracer.Start(ctx, "attempt", clientKind...) // a child of an unsampled span: not recorded, no name to build
	}
	ctx, span := tracer.Start(ctx, "attempt "+upstream, clientKind...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("seawall.upstream", upstream), attribute.String("seawall.route", route),
			attribute.String("seawall.mode", mode), attribute.Int("seawall.attempt", n), attribute.Bool("seawall.background", background))
	}
	return ctx, span
}

// The span kinds' start options, made once.
var (
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// Attempt is what an attempt's span records when it ends.
type Attempt struct {
	Endpoint, Zone string
	Breaker        string
	LimiterWait    time.Duration
	Cache          string // the cache's status for the call, when it fills the cache
	Status         int    // the vendor's answer; 0 for none
	Refused        error  // a gate's refusal: nothing was sent
	Err            error
	Pause          time.Duration // a pause the answer started
	PauseReason    string
}

// EndAttempt records a and ends the attempt's span.
func EndAttempt(span trace.Span, a Attempt) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("seawall.endpoint", a.Endpoint), attribute.String("seawall.zone", a.Zone),
		attribute.String("seawall.breaker", a.Breaker), attribute.Float64("seawall.limiter_wait_ms", float64(a.LimiterWait.Microseconds())/1000))
	if a.Cache != "" {
		span.SetAttributes(attribute.String("seawall.cache", a.Cache))
	}
	if a.Status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", a.Status))
	}
	switch {
	case a.Refused != nil:
		span.AddEvent("refused", trace.WithAttributes(attribute.String("reason", a.Refused.Error())))
		span.SetStatus(codes.Error, "refused before sending")
	case a.Err != nil:
		span.RecordError(a.Err)
		span.SetStatus(codes.Error, truncate(a.Err.Error(), 200))
	case a.Status >= 500:
		span.SetStatus(codes.Error, http.StatusText(a.Status))
	}
	if a.Pause > 0 {
		span.AddEvent("pause", trace.WithAttributes(attribute.Float64("seconds", a.Pause.Seconds()), attribute.String("reason", a.PauseReason)))
	}
	span.End()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
