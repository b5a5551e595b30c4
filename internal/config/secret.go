package config

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Secret is a config value that may hold a credential. It is written with
// ${ENV_VAR}, ${ENV_VAR:-default} or ${file:/path} references, expanded at load, and never shown:
// String, MarshalJSON and slog render it as "[redacted]".
type Secret struct {
	raw   string
	value string
}

// NewSecret returns an already-expanded secret, for tests and programmatic use.
func NewSecret(v string) Secret { return Secret{raw: v, value: v} }

// Value returns the expanded value.
func (s Secret) Value() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.raw == "" }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return "[redacted]" }

// LogValue implements slog.LogValuer without revealing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// UnmarshalYAML implements yaml.Unmarshaler; expansion happens in expand.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, fmt.Errorf("want a string"))
	}
	s.raw = n.Value
	return nil
}

var secretRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// SecretFiles lists the files a config document's ${file:/path}
// references read, in the order they stand, so that a watcher can notice a
// rotated secret as well as an edited config.
func SecretFiles(doc []byte) []string {
	var out []string
	for _, m := range secretRef.FindAllSubmatch(doc, -1) {
		if path, ok := strings.CutPrefix(string(m[1]), "file:"); ok {
			out = append(out, path)
		}
	}
	return out
}

// expand resolves ${ENV} and ${file:/path} references. lookup is os.LookupEnv
// outside tests.
func (s *Secret) expand(lookup func(string) (string, bool)) error {
	var errs []string
	s.value = secretRef.ReplaceAllStringFunc(s.raw, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if path, ok := strings.CutPrefix(name, "file:"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Sprintf("cannot read secret file %q: %v", path, err))
				return ""
			}
			return strings.TrimRight(string(b), "\r\n")
		}
		name, def, hasDef := strings.Cut(name, ":-")
		v, ok := lookup(name)
		switch {
		case ok:
			return v
		case hasDef:
			return def
		}
		errs = append(errs, fmt.Sprintf("environment variable %s is not set", name))
		return ""
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
