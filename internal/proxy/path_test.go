package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/", "/"},
		{"/v1/x", "/v1/x"},
		{"/v1/./x", "/v1/x"},
		{"/v1/../x", "/x"},
		{"/v1/%2e/x", "/v1/x"},
		{"/v1/%2E%2e/x", "/x"},
		{"/v1//x", "/v1/x"},
		{"//v1/x", "/v1/x"},
		{"/v1/x/", "/v1/x/"},
		{"/v1/x/.", "/v1/x/"},
		{"/v1/x/..", "/v1/"},
		{"/a/b/../../c", "/c"},
		{"/a%2Fb/c", "/a%2Fb/c"},
		{"/v1/.../x", "/v1/.../x"},
		{"/.hidden", "/.hidden"},
		{"/..", "BAD"},
		{"/../x", "BAD"},
		{"/%2e%2e/x", "BAD"},
		{"/.%2E/x", "BAD"},
		{"/a/../../x", "BAD"},
		{"/..%2fx", "BAD"},
		{"/..%2Fx", "BAD"},
		{"/x%2F..%2Fy", "BAD"},
		{"/..%5cx", "BAD"},
		{"/%zz", "BAD"},
		{"/v1/..;/admin", "BAD"},
		{"/..;/x", "BAD"},
		{"/v1/.;x/y", "BAD"},
		{"/v1/%2e%2e;a=b/y", "BAD"},
		{"/v1/x;jsessionid=1/y", "/v1/x;jsessionid=1/y"},
		{"/v1/..x;a/y", "/v1/..x;a/y"},
	} {
		got, err := normalizePath(tt.in)
		if tt.want == "BAD" {
			if !errors.Is(err, ErrBadPath) {
				t.Errorf("normalizePath(%q) = %q, %v; want ErrBadPath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("normalizePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzNormalizePath: whatever comes in, what goes out starts with "/",
// holds no dot segment, plain or encoded, not even behind an encoded
// slash or before path parameters, and is stable.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/v1/x", "/a/../b", "/%2e%2e/x", "/..%2fx", "//a//b/", "/a/./b/.", "/%zz", "/x%2F..%2Fy", "/v1/..;/x", "/a;b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := normalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
			t.Fatalf("normalizePath(%q) = %q: not one leading slash", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if dotSegment(seg) != "" && seg != "" || hidesDotSegment(seg) || hidesDotParams(seg) {
				t.Fatalf("normalizePath(%q) = %q keeps the dot segment %q", in, out, seg)
			}
		}
		if again, err := normalizePath(out); err != nil || again != out {
			t.Fatalf("normalizePath(%q) = %q, but again gives %q, %v", in, out, again, err)
		}
	})
}
