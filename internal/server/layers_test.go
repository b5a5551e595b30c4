package server

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The wiring is built in one order (Listen), each part handed what it
// needs, so the packages it wires depend downward only: the admin API
// and the job store on the upstream set, never on the app-facing handler;
// the upstream runtime on neither. A setter or an import that climbs
// back up (proxy.SetJobs, admin over *proxy.Proxy) fails here.
func TestPackagesDependDownward(t *testing.T) {
	const mod = "github.com/seawall/seawall/internal/"
	forbidden := map[string][]string{
		"admin":    {"proxy", "server"},
		"jobs":     {"proxy", "server", "admin"},
		"upstream": {"proxy", "server", "admin", "jobs"},
		"incident": {"proxy", "server", "admin", "jobs", "upstream"},
		"proxy":    {"server", "admin"},
		"cache":    {"proxy", "upstream", "server", "admin", "jobs"},
	}
	for pkg, banned := range forbidden {
		files, err := filepath.Glob(filepath.Join("..", pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("package %s: no files (%v)", pkg, err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, b := range banned {
					if p == mod+b {
						t.Errorf("%s imports internal/%s: %s must not depend on it", path, b, pkg)
					}
				}
			}
		}
	}
}
