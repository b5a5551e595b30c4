package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// keyPaths lists every config key, as written in docs/config.md.
func keyPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for name, f := range yamlFields(t) {
		p := join(prefix, name)
		out = append(out, p)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case reflect.PointerTo(ft).Implements(unmarshalerType):
		case ft.Kind() == reflect.Struct:
			out = append(out, keyPaths(ft, p)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Pointer:
			out = append(out, keyPaths(ft.Elem(), p+".<name>")...)
		case ft.Kind() == reflect.Slice && (ft.Elem().Kind() == reflect.Pointer || ft.Elem().Kind() == reflect.Struct):
			out = append(out, keyPaths(ft.Elem(), p+"[]")...)
		}
	}
	return out
}

// The config reference is checked against the structs: every key is documented.
func TestConfigReferenceCoversEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range keyPaths(reflect.TypeOf(Config{}), "") {
		if routeBudget.MatchString(strings.ReplaceAll(p, "[]", "[0]")) || strings.Contains(p, "routes[].retry.budget.") {
			continue // refused by validation
		}
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("docs/config.md does not document `%s`", p)
		}
	}
}
