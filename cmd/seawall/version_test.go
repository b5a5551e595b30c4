package main

import (
	"debug/elf"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// The house, item 7: the documented build is one static binary (no
// interpreter, no shared library), and with -buildvcs off it still says
// which commit it came from, from the linker flag the build sets.
func TestStaticBuildSaysItsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; go test without -short runs it")
	}
	bin := buildSeawall(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: not static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("seawall version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "commit "+testCommit[:12]) {
		t.Errorf("seawall version said %q, want the commit %s the linker set", out, testCommit[:12])
	}
}

// A build's own VCS stamp wins over the linker's commit; without either,
// the version says (devel) and no commit.
func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abcdefabcdefabcdef"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		bi     *debug.BuildInfo
		linked string
		want   string
	}{
		{nil, "", "seawall (devel) go1.x"},
		{nil, "0123456789abcdef", "seawall (devel) commit 0123456789ab go1.x"},
		{&debug.BuildInfo{}, "fedcba", "seawall (devel) commit fedcba go1.x"},
		{stamped, "0123456789abcdef", "seawall v1.2.3 commit abcdefabcdef (modified) go1.x"},
	} {
		if got := describe(tc.bi, tc.linked, "go1.x"); got != tc.want {
			t.Errorf("describe(%v, %q) = %q, want %q", tc.bi != nil, tc.linked, got, tc.want)
		}
	}
}
