package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadPath refuses a request path that would leave its upstream's base
// path, or that hides a dot segment behind an encoded slash.
var ErrBadPath = errors.New("path not allowed")

// normalizePath resolves the dot segments of an upstream-relative escaped
// path (RFC 3986 §5.2.4), counting percent-encoded ones ("%2e%2E") as dot
// segments too, and folds empty segments ("//") into one slash. Encoded
// slashes stay encoded. It refuses, with ErrBadPath, a path whose ".."
// would climb above the upstream's base path, and a segment that hides a
// dot segment behind an encoded slash or backslash ("..%2f"), which a
// vendor that decodes them would resolve. The result starts with "/".
func normalizePath(escaped string) (string, error) {
	if strings.HasPrefix(escaped, "/") && !strings.ContainsAny(escaped, ".%;") && !strings.Contains(escaped, "//") {
		return escaped, nil // no dot segment, encoded or not, and no empty segment to fold
	}
	segs := strings.Split(escaped, "/")
	out := make([]string, 0, len(segs))
	trailing := false // the path ends in a directory ("/", "/." or "/..")
	for i, seg := range segs {
		last := i == len(segs)-1
		switch dot := dotSegment(seg); {
		case seg == "" && i == 0:
			continue
		case seg == "":
			trailing = last
		case dot == ".":
			trailing = last
		case dot == "..":
			if len(out) == 0 {
				return "", fmt.Errorf("%w: %q climbs above the upstream's base path", ErrBadPath, truncate(escaped, 200))
			}
			out = out[:len(out)-1]
			trailing = last
		case hidesDotSegment(seg):
			return "", fmt.Errorf("%w: %q hides a dot segment behind an encoded slash", ErrBadPath, truncate(seg, 200))
		case hidesDotParams(seg):
			return "", fmt.Errorf("%w: %q is a dot segment with path parameters, which a vendor that strips them (\"..;\") resolves", ErrBadPath, truncate(seg, 200))
		default:
			out = append(out, seg)
			trailing = false
		}
	}
	p := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		p += "/"
	}
	return p, nil
}

// dotSegment returns "." or ".." when seg is one, written plainly or
// percent-encoded, else "".
func dotSegment(seg string) string {
	if len(seg) > 6 || (seg != "" && !strings.ContainsAny(seg, ".%")) {
		return ""
	}
	switch strings.ToLower(seg) {
	case ".", "%2e":
		return "."
	case "..", ".%2e", "%2e.", "%2e%2e":
		return ".."
	}
	return ""
}

// hidesDotParams reports whether seg is a dot segment followed by path
// parameters ("..;", ".;x", "%2e%2e;a=b"): Java servers strip the
// parameters, then resolve the dot segment.
func hidesDotParams(seg string) bool {
	base, _, found := strings.Cut(seg, ";")
	return found && (dotSegment(base) != "" || hidesDotSegment(base))
}

// hidesDotSegment reports whether seg, once its encoded slashes and
// backslashes are decoded, holds a "." or ".." segment.
func hidesDotSegment(seg string) bool {
	if !strings.Contains(seg, "%") {
		return false
	}
	decoded, err := url.PathUnescape(seg)
	if err != nil {
		return true // not valid percent-encoding: no vendor can read it as meant
	}
	if !strings.ContainsAny(decoded, `/\`) {
		return false
	}
	for _, part := range strings.FieldsFunc(decoded, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == "." || part == ".." {
			return true
		}
	}
	return false
}
