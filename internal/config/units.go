package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "250ms", "2s" or "1m30s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a non-negative Go duration string.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit, like \"250ms\" or \"2s\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return typeError(n, err)
	}
	*d = Duration(v)
	return nil
}

// Rate is a number of events per period, written as "100/s", "6000/m" or "10/h".
type Rate struct {
	Count  float64
	Period time.Duration
}

// PerSecond returns the rate in events per second.
func (r Rate) PerSecond() float64 {
	if r.Period <= 0 {
		return 0
	}
	return r.Count / r.Period.Seconds()
}

// IsZero reports whether the rate is unset.
func (r Rate) IsZero() bool { return r.Count == 0 }

// String renders the rate in the form ParseRate reads.
func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Period]
	if unit == "" {
		unit = r.Period.String()
	}
	return strconv.FormatFloat(r.Count, 'f', -1, 64) + "/" + unit
}

var errRateForm = errors.New(`want COUNT/UNIT, like "100/s", "6000/m" or "5/10s"`)

// ParseRate parses "COUNT/UNIT" where UNIT is s, m, h, or a duration such as 10s.
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: %w", s, errRateForm)
	}
	count, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || count <= 0 || math.IsInf(count, 0) || math.IsNaN(count) {
		return Rate{}, fmt.Errorf("invalid rate %q: count must be a positive number", s)
	}
	var period time.Duration
	switch u := strings.TrimSpace(unit); u {
	case "s", "sec", "second":
		period = time.Second
	case "m", "min", "minute":
		period = time.Minute
	case "h", "hour":
		period = time.Hour
	default:
		period, err = time.ParseDuration(u)
		if err != nil || period <= 0 {
			return Rate{}, fmt.Errorf("invalid rate %q: %w", s, errRateForm)
		}
	}
	return Rate{Count: count, Period: period}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return typeError(n, err)
	}
	*r = v
	return nil
}

// Size is a byte count written as "512", "64KiB", "1MiB", "2GB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte size with an optional binary (KiB) or decimal (KB) unit.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf(`invalid size %q: want a whole number of bytes with an optional unit, like "512KiB" or "1MiB"`, s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeError(n, err)
	}
	*z = Size(v)
	return nil
}

// Money is an amount in billionths of the currency's unit, written as a
// decimal string ("0.002"): exact, where a float would not be.
type Money int64

// MoneyScale is the billionths in one unit.
const MoneyScale = 1_000_000_000

// ParseMoney parses a non-negative decimal with at most 9 places.
func ParseMoney(s string) (Money, error) {
	t := strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(t, ".")
	bad := fmt.Errorf(`invalid amount %q: want a decimal like "0.002" (at most 9 decimal places)`, s)
	if whole == "" && frac == "" || len(frac) > 9 || len(whole) > 9 {
		return 0, bad
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return 0, bad
			}
		}
	}
	w, _ := strconv.ParseInt("0"+whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	return Money(w*MoneyScale + f), nil
}

// String writes the amount with as many decimals as it needs, at least two.
func (m Money) String() string {
	s := fmt.Sprintf("%d.%09d", int64(m)/MoneyScale, int64(m)%MoneyScale)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	return s
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Money) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseMoney(n.Value)
	if err != nil {
		return typeError(n, err)
	}
	*m = v
	return nil
}

// Percent is a share written as "34%" or 34 (both mean 34 percent).
type Percent float64

// Fraction returns the share as a fraction: 34% is 0.34.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

// ParsePercent parses a non-negative percentage, with or without "%".
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf(`invalid percentage %q: want a number like "34%%" or 34`, s)
	}
	return f, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePercent(n.Value)
	if err != nil {
		return typeError(n, err)
	}
	*p = Percent(v)
	return nil
}

// typeError reports a bad scalar the way yaml.v3 reports its own type errors,
// so the loader collects it with the others instead of stopping.
func typeError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
}
