package tracing

import "testing"

// Tracing is off unless the standard variables ask for an OTLP exporter.
func TestConfigured(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{map[string]string{"OTEL_SERVICE_NAME": "seawall-eu"}, false},
	} {
		if got := Configured(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("Configured(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestSampleRatio(t *testing.T) {
	for arg, want := range map[string]float64{"": 1, "0.25": 0.25, "0": 0, "1.5": 1, "-1": 1, "x": 1} {
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", arg)
		if got := ratio(); got != want {
			t.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: ratio %v, want %v", arg, got, want)
		}
	}
}

// Off, a request pays nothing: no span, no trace id, nothing injected.
func TestOffDoesNothing(t *testing.T) {
	if On() {
		t.Fatal("on without Setup")
	}
	ctx, span := StartAttempt(t.Context(), "u", "r", "sync", 1, false)
	if span.IsRecording() || TraceID(ctx) != "" {
		t.Fatal("a recording span while off")
	}
}
