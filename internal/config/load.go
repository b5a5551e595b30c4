package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int // 0 when the problem has no place in the file
	Path string
	Msg  string
	// Warning marks what is accepted but would surprise an operator; the
	// others are errors, which refuse the config.
	Warning bool
}

func (p Problem) String() string {
	loc, msg := p.File, p.Msg
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Warning {
		msg = "warning: " + msg
	}
	if p.Path != "" {
		return loc + " " + p.Path + ": " + msg
	}
	return loc + ": " + msg
}

// Problems is every problem found in one file, in line order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LoadFile reads, decodes, defaults and validates the config at path.
// Any problems are returned together as Problems.
func LoadFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, b, os.LookupEnv)
}

// Parse decodes, defaults and validates a config document. name is used in
// problem locations; lookup resolves ${ENV} references.
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{syntaxProblem(name, err)}
	}
	if len(root.Content) == 0 {
		return nil, Problems{{File: name, Msg: "config is empty"}}
	}
	doc := root.Content[0]
	idx := &index{lines: map[string]int{}}
	idx.walk(doc, reflect.TypeOf(Config{}), "")

	var cfg Config
	if err := doc.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{{File: name, Msg: err.Error()}}
		}
		for _, msg := range te.Errors {
			idx.addLineMsg(msg)
		}
	}
	for path, line := range idx.lines {
		if routeBudget.MatchString(path) {
			idx.problems = append(idx.problems, Problem{Line: line, Path: path, Msg: "the retry budget is per upstream; set it under upstreams.<name>.retry.budget"})
		}
	}
	// Validate even when decoding found problems, so one run reports them
	// all, but say nothing more of a path that already failed to decode.
	reported := map[string]bool{}
	for _, p := range idx.problems {
		reported[p.Path] = true
	}
	cfg.applyDefaults(defaulter{present: idx.lines})
	found := cfg.validate(lookup)
	if _, set := idx.lines["jobs.fsync"]; set && cfg.Jobs.Fsync && isPostgres(cfg.Jobs.Store) && cfg.UsesAsync() {
		found = append(found, Problem{Path: "jobs.fsync", Warning: true,
			Msg: "true on PostgreSQL leaves durability to the server's synchronous_commit, which Seawall does not change (false sets it off for Seawall's sessions)"})
	}
	var warnings Problems
	for _, p := range found {
		switch {
		case p.Warning:
			warnings = append(warnings, Problem{Line: idx.lineOf(p.Path), Path: p.Path, Msg: p.Msg, Warning: true})
		case !reported[p.Path]:
			idx.problems = append(idx.problems, Problem{Line: idx.lineOf(p.Path), Path: p.Path, Msg: p.Msg})
		}
	}
	inFile := func(ps Problems) Problems {
		for i := range ps {
			ps[i].File = name
		}
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return ps
	}
	if len(idx.problems) > 0 {
		return nil, inFile(append(idx.problems, warnings...))
	}
	cfg.Warnings = inFile(warnings)
	return &cfg, nil
}

var routeBudget = regexp.MustCompile(`\.routes\[\d+\]\.retry\.budget$`)

var lineMsg = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxProblem(name string, err error) Problem {
	if m := lineMsg.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: name, Line: line, Msg: m[2]}
	}
	return Problem{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// index maps config paths to the lines they stand on and collects the
// problems found while walking and decoding the document.
type index struct {
	lines    map[string]int      // path -> line of its key
	byLine   map[int]string      // line -> deepest path on it
	scalars  map[int][][2]string // line -> the paths and values of its scalars, for a flow mapping's type errors
	problems Problems
}

// scalar notes the scalar value v of path, on its line.
func (ix *index) scalar(path string, v *yaml.Node) {
	if v.Kind != yaml.ScalarNode {
		return
	}
	if ix.scalars == nil {
		ix.scalars = map[int][][2]string{}
	}
	ix.scalars[v.Line] = append(ix.scalars[v.Line], [2]string{path, v.Value})
}

// pathOf is the path a type error on line names: the one key there whose
// value is value, when one line holds several (a flow mapping such as
// "breaker: {window: 30s, failure_rate: x}"); else the deepest path there.
func (ix *index) pathOf(line int, value string) string {
	found := ""
	for _, pv := range ix.scalars[line] {
		if pv[1] == value {
			if found != "" {
				return ix.byLine[line] // two keys share the value: not sure which
			}
			found = pv[0]
		}
	}
	if found == "" {
		return ix.byLine[line]
	}
	return found
}

func (ix *index) add(path string, line int) {
	ix.lines[path] = line
	if ix.byLine == nil {
		ix.byLine = map[int]string{}
	}
	if len(path) > len(ix.byLine[line]) {
		ix.byLine[line] = path
	}
}

// addLineMsg turns a yaml.v3 "line N: message" error into a problem.
func (ix *index) addLineMsg(msg string) {
	m := lineMsg.FindStringSubmatch(msg)
	if m == nil {
		ix.problems = append(ix.problems, Problem{Msg: msg})
		return
	}
	line, _ := strconv.Atoi(m[1])
	text, path := m[2], ix.byLine[line]
	if u := unmarshalMsg.FindStringSubmatch(text); u != nil {
		text, path = friendlyTypeError(text), ix.pathOf(line, u[2])
	}
	ix.problems = append(ix.problems, Problem{Line: line, Path: path, Msg: text})
}

var unmarshalMsg = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.*)$")

func friendlyTypeError(text string) string {
	m := unmarshalMsg.FindStringSubmatch(text)
	if m == nil {
		return text
	}
	want := m[3]
	switch {
	case strings.HasPrefix(want, "map["), strings.HasPrefix(want, "config."):
		want = "a mapping"
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case strings.HasPrefix(want, "*"):
		want = strings.TrimPrefix(want, "*")
	}
	return fmt.Sprintf("got %s %q, want %s", m[1], m[2], want)
}

// lineOf finds the line of path, or of its nearest parent present in the file.
func (ix *index) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := ix.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk records each key's line and reports keys that t has no field for.
func (ix *index) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				ix.problems = append(ix.problems, Problem{Line: k.Line, Path: p, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			ix.add(p, k.Line)
			ix.scalar(p, v)
			ix.walk(v, f.Type, p)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ix.add(p, k.Line)
			ix.scalar(p, v)
			ix.walk(v, t.Elem(), p)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			ix.add(p, v.Line)
			ix.walk(v, t.Elem(), p)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}

// suggest names the known key closest to a misspelt one.
func suggest(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	best := Nearest(key, names)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// Nearest is the choice within two edits of word (the alphabetically first
// of equally near ones), or "" when none is that near: for "did you mean".
func Nearest(word string, choices []string) string {
	best, bestD := "", 3
	for _, c := range choices {
		if d := editDistance(word, c); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
