package cache

import (
	"regexp"
	"strings"
	"time"
)

// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the two obsolete forms a
// recipient must still accept. Each must match the grammar's shape:
// two-digit hours, single spaces, GMT. Go's http.ParseTime takes more (a
// one-digit hour, say), and a date it misreads can keep an answer fresh
// for decades. Day and month names, and GMT, are read in any case ("sun,
// 06 nov … gmt"): RFC 9110 lets a recipient recover a usable element from
// an invalid construct, and this reading cannot shift a date.
var httpDates = []struct {
	re     *regexp.Regexp
	layout string
}{
	{regexp.MustCompile(`^(?i:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} (?i:GMT)$`),
		"Mon, 02 Jan 2006 15:04:05 GMT"},
	{regexp.MustCompile(`^(?i:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), [0-9]{2}-(?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} (?i:GMT)$`),
		"Monday, 02-Jan-06 15:04:05 GMT"},
	{regexp.MustCompile(`^(?i:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ( [0-9]|[0-9]{2}) [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$`),
		"Mon Jan _2 15:04:05 2006"},
}

// ParseHTTPDate parses an HTTP-date strictly; ok is false for anything
// else, which for Expires means already expired (RFC 9111 §5.3).
func ParseHTTPDate(s string) (t time.Time, ok bool) {
	for _, f := range httpDates {
		if !f.re.MatchString(s) {
			continue
		}
		if n := len(s); strings.HasSuffix(f.layout, "GMT") && n >= 3 {
			s = s[:n-3] + "GMT"
		}
		t, err := time.Parse(f.layout, s)
		if err != nil {
			return time.Time{}, false // matched the shape, not a real date
		}
		return t.UTC(), true
	}
	return time.Time{}, false
}
