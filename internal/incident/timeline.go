package incident

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteTimeline writes an incident as the incident commander reads it:
// a heading, its state and impact, then one line per event, oldest
// first. markdown formats it for a status page or a chat.
func WriteTimeline(w io.Writer, in Incident, markdown bool) error {
	var b strings.Builder
	state := in.State()
	span := "since " + in.Opened.Format(time.DateTime)
	if in.Resolved != nil {
		span = fmt.Sprintf("%s – %s (%s)", in.Opened.Format(time.DateTime), in.Resolved.Format(time.TimeOnly), in.Resolved.Sub(in.Opened).Round(time.Second))
	}
	if markdown {
		fmt.Fprintf(&b, "### Incident %d: %s (%s, %s)\n\n", in.ID, in.Upstream, state, in.Severity)
		fmt.Fprintf(&b, "*%s*. %s\n\n", span, in.Summary)
	} else {
		fmt.Fprintf(&b, "incident %d  %s  %s  %s  %s\n", in.ID, in.Upstream, state, in.Severity, span)
		fmt.Fprintf(&b, "  %s\n", in.Summary)
	}
	if in.Cluster != 0 {
		line(&b, markdown, fmt.Sprintf("cluster incident %d: the events of every replica that saw it", in.Cluster))
	}
	if len(in.Conditions) > 0 {
		line(&b, markdown, "still holding it open: "+strings.Join(in.Conditions, ", "))
	}
	if imp := impactLine(in.Impact); imp != "" {
		line(&b, markdown, "impact: "+imp)
	}
	if markdown {
		b.WriteString("\n| time | event |\n|---|---|\n")
	}
	for _, e := range in.Events {
		where := ""
		if e.Replica != "" {
			where = "[" + strings.TrimSpace(e.Replica+" "+e.ReplicaZone) + "] "
		}
		if markdown {
			fmt.Fprintf(&b, "| %s | %s%s: %s |\n", e.Time.Format(time.TimeOnly), where, e.Type, strings.ReplaceAll(e.Summary, "|", "\\|"))
		} else {
			fmt.Fprintf(&b, "  %s  %s%s: %s\n", e.Time.Format(time.TimeOnly), where, in.Upstream, e.Summary)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func line(b *strings.Builder, markdown bool, s string) {
	if markdown {
		fmt.Fprintf(b, "- %s\n", s)
		return
	}
	fmt.Fprintf(b, "  %s\n", s)
}

// impactLine is the non-zero impact counts, in a fixed order.
func impactLine(impact map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(impact)) {
		if v := impact[k]; v != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.ReplaceAll(k, "_", " "), v))
		}
	}
	return strings.Join(parts, ", ")
}
