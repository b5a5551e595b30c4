package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/problem"
)

// The dashboard's page and scripts, embedded: no request leaves the page
// for another host.
//
//go:embed dashboard
var dashboardFiles embed.FS

// sessionCookie holds a page's login; csrfHeader carries the token that
// every action the page takes must send.
const (
	sessionCookie = "seawall_session"
	csrfHeader    = "X-CSRF-Token"
	// loginLinkTTL is how long a one-time login link stays good.
	loginLinkTTL = 10 * time.Minute
	// maxLoginBody bounds the login form.
	maxLoginBody = 4 << 10
)

var (
	kindAdminCSRF = problem.Define(http.StatusForbidden, "admin-csrf", "Cross-site request refused",
		"An action from the dashboard must carry its X-CSRF-Token header and come from the dashboard's own origin.")
	errNoCredential = errors.New("admin token required")
	errCSRF         = errors.New("the request lacks the dashboard's CSRF token or comes from another origin")
)

// guard admits a request that carries the admin token as a bearer
// credential, or the dashboard's session cookie; a request with the
// cookie that changes something must also carry the CSRF token and, when
// the browser names its origin, come from the admin listener's own.
// Session and CSRF values are keyed with a secret drawn at start, so a
// restart logs every page out, and neither is the token itself.
type guard struct {
	token   []byte
	session string
	csrf    string

	mu   sync.Mutex
	once map[string]time.Time // one-time login codes and when each expires
}

func newGuard(token string) *guard {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	mac := func(label string) string {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(token))
		h.Write([]byte{0})
		h.Write([]byte(label))
		return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}
	return &guard{token: []byte(token), session: mac("session"), csrf: mac("csrf"), once: map[string]time.Time{}}
}

// wrap admits only requests check allows.
func (g *guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch err := g.check(r); {
		case errors.Is(err, errCSRF):
			problem.Write(w, kindAdminCSRF, problem.Body{Detail: err.Error()})
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="seawall-admin"`)
			problem.Write(w, kindAdminToken, problem.Body{Detail: err.Error()})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (g *guard) check(r *http.Request) error {
	if subtle.ConstantTimeCompare(bearer(r.Header.Get("Authorization")), g.token) == 1 {
		return nil
	}
	if !g.loggedIn(r) {
		return errNoCredential
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(g.csrf)) != 1 || !sameOrigin(r) {
		return errCSRF
	}
	return nil
}

func (g *guard) loggedIn(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(g.session)) == 1
}

// sameOrigin says whether the browser's Origin (when it sends one) is the
// host the request was addressed to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// loginLink returns a path that logs a browser in once, within
// loginLinkTTL, without typing the token: `seawall demo` prints it.
func (g *guard) loginLink() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	code := base64.RawURLEncoding.EncodeToString(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for c, exp := range g.once {
		if now.After(exp) {
			delete(g.once, c)
		}
	}
	g.once[code] = now.Add(loginLinkTTL)
	return "/login?once=" + code
}

// redeem spends a one-time login code.
func (g *guard) redeem(code string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.once[code]
	delete(g.once, code)
	return ok && time.Now().Before(exp)
}

func (g *guard) setSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: g.session, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// registerDashboard serves the page at /, its assets, the login and the
// stream. The page holds no data: it asks for the stream, which needs the
// session, and shows the login when refused.
func registerDashboard(mux *http.ServeMux, g *guard, b *Board) {
	assets, _ := fs.Sub(dashboardFiles, "dashboard") // the directory is embedded above
	files := http.FileServerFS(assets)
	page := func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w.Header())
		files.ServeHTTP(w, r)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/assets")
		page(w, r2)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
		if !sameOrigin(r) {
			problem.Write(w, kindAdminCSRF, problem.Body{Detail: errCSRF.Error()})
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), g.token) != 1 {
			problem.Write(w, kindAdminToken, problem.Body{Detail: "not the admin token"})
			return
		}
		g.setSession(w, r)
		writeJSON(w, map[string]string{"csrf": g.csrf})
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if !g.redeem(r.URL.Query().Get("once")) {
			problem.Write(w, kindAdminToken, problem.Body{Detail: "this login link was used already or has expired: log in with the admin token"})
			return
		}
		g.setSession(w, r)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(http.StatusNoContent)
	})
	// The page asks whether it is logged in; "no" is an answer, not an
	// error, so that a logged-out page loads without one.
	mux.HandleFunc("GET /dashboard/session", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if g.check(r) != nil {
			writeJSON(w, map[string]bool{"logged_in": false})
			return
		}
		writeJSON(w, map[string]any{"logged_in": true, "csrf": g.csrf})
	})
	mux.Handle("GET /dashboard/stream", g.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream(w, r, b)
	})))
}

// pageHeaders forbid the page anything but its own origin.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// stream sends the board to one page until the page goes, the board
// stops or the page falls behind.
func stream(w http.ResponseWriter, r *http.Request, b *Board) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if !b.watched() {
		b.readLive(r.Context()) // the first page: its jobs and replicas now, not at the next step
	}
	first, ticks, cancel := b.subscribe()
	defer cancel()
	if _, err := w.Write(first); err != nil || rc.Flush() != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-b.stopped():
			return
		case msg, ok := <-ticks:
			if !ok {
				return
			}
			if _, err := w.Write(msg); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
