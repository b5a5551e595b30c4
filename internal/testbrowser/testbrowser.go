// Package testbrowser gives tests a real browser: Debian's chromium,
// headless, driven through the DevTools protocol by chromedp. It watches
// what a page does that a user would call broken: console errors,
// uncaught exceptions, failed loads, and requests to any host but the
// one under test.
package testbrowser

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is one headless chromium with one tab, closed when the test
// ends.
type Browser struct {
	Ctx  context.Context
	host string // the only host the page may ask

	mu       sync.Mutex
	problems []string           // console errors, exceptions, failed loads
	offHost  []string           // requests to another host
	urls     map[string]string  // request id → URL
	bytes    map[string]float64 // URL → bytes received
}

// executable finds chromium: $SEAWALL_CHROMIUM, or chromium on the PATH.
func executable() string {
	if p := os.Getenv("SEAWALL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start opens a browser for pages on host (host:port). Without chromium
// the test fails under CI=true (CI installs it) and is skipped otherwise.
func Start(t testing.TB, host string) *Browser {
	t.Helper()
	path := executable()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is needed for the browser tests: apt-get install chromium")
		}
		t.Skip("chromium not installed (apt-get install chromium); CI runs this test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{Ctx: ctx, host: host, urls: map[string]string{}, bytes: map[string]float64{}}
	// Listen starts the browser and its tab; chromedp enables the
	// network, log and runtime domains whose events watch reads.
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	return b
}

func (b *Browser) watch(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, "console.error: "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			b.problems = append(b.problems, "log: "+e.Entry.Text+" "+e.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		u, err := url.Parse(e.Request.URL)
		if err != nil || (u.Scheme != "data" && u.Host != b.host) {
			b.offHost = append(b.offHost, e.Request.URL)
		}
		b.urls[string(e.RequestID)] = e.Request.URL
	case *network.EventLoadingFinished:
		b.bytes[b.urls[string(e.RequestID)]] += e.EncodedDataLength
	case *network.EventLoadingFailed:
		if !e.Canceled {
			b.problems = append(b.problems, "load failed: "+b.urls[string(e.RequestID)]+": "+e.ErrorText)
		}
	}
}

// Problems are the console errors, exceptions and failed loads so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// OffHost are the requests made to another host than the one under test.
func (b *Browser) OffHost() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.offHost...)
}

// Bytes is what the finished loads brought, by URL, except those whose
// path starts with skip (a stream that never finishes).
func (b *Browser) Bytes(skip string) map[string]float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]float64{}
	for u, n := range b.bytes {
		if p, err := url.Parse(u); err == nil && skip != "" && strings.HasPrefix(p.Path, skip) {
			continue
		}
		out[u] = n
	}
	return out
}

// Do runs steps within d.
func (b *Browser) Do(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.Ctx, d)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Eval evaluates a JavaScript expression and decodes its value into T.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// WaitFor polls the JavaScript expression until it is true, for at most
// d; the error says what it was waiting for.
func (b *Browser) WaitFor(d time.Duration, expr string) error {
	ctx, cancel := context.WithTimeout(b.Ctx, d+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		return fmt.Errorf("waiting %v for %s: %w", d, expr, err)
	}
	return nil
}

// Text is the text of the first element the CSS selector matches, or ""
// when none does.
func (b *Browser) Text(sel string) string {
	s, _ := Eval[string](b, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel))
	return s
}

// Screenshot saves the whole page as name.png in the artifact directory
// ($SEAWALL_ARTIFACTS, default the system's temporary directory's
// seawall-artifacts) and returns its path.
func (b *Browser) Screenshot(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	dir := ArtifactDir(t)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Errorf("saving screenshot: %v", err)
	}
	t.Logf("screenshot %s", p)
	return p
}

// ArtifactDir is where tests leave what a reviewer should see.
func ArtifactDir(t testing.TB) string {
	dir := os.Getenv("SEAWALL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "seawall-artifacts")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Count is how many elements the CSS selector matches now.
func (b *Browser) Count(sel string) int {
	n, _ := Eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
	return n
}

// Click clicks the first element the CSS selector matches, as a mouse
// does. A page that redraws the element between the lookup and the click
// is asked again, up to five times.
func (b *Browser) Click(sel string) error {
	var err error
	for range 5 {
		if err = b.Do(5*time.Second, chromedp.Click(chromedp.CSS(sel))); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("clicking %s: %w", sel, err)
}
