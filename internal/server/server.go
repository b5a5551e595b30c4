// Package server runs Seawall: the application listener and the admin
// listener, started together and shut down together.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seawall/seawall/internal/admin"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/webhook"
)

// Server is a running Seawall.
type Server struct {
	Proxy   *proxy.Proxy
	Metrics *proxy.Metrics
	ups     *upstream.Set
	cluster *cluster.Cluster // nil without a redis block
	// Incidents keeps the events and incidents (docs/incidents.md).
	Incidents *incident.Recorder
	stopInc   chan struct{}
	incDone   chan struct{}
	usageDone chan struct{}
	notices   *incident.Dispatcher
	// routines are every goroutine of the running server, Serve waits for
	// them before it returns.
	routines *routine.Group
	queueAge time.Duration
	log      *slog.Logger
	grace    time.Duration
	servers  []appServer
	jobs     jobs.Store // nil unless a route is async
	addrs    []net.Addr

	adminToken string
	// Board is the dashboard's (nil with the admin listener off).
	Board *admin.Board

	// ConfigPath is the file Reload reads; set by whoever loaded it.
	ConfigPath string
	started    *config.Config // as at start: what a reload may not change
	reloadMu   sync.Mutex
	reloads    *prometheus.CounterVec
}

// adminToken is admin.token, or else the token kept in the data
// directory, generated at first start.
func adminToken(cfg *config.Config, log *slog.Logger) (string, error) {
	if t := cfg.Admin.Token.Value(); t != "" {
		return t, nil
	}
	path := cfg.AdminTokenFile()
	token, created, err := admin.EnsureToken(path)
	if err != nil {
		return "", fmt.Errorf("admin.token is not set and %w", err)
	}
	if created {
		log.Info("admin token generated", "file", path)
	} else {
		log.Info("admin token read", "file", path)
	}
	return token, nil
}

// AdminToken is the token the admin API requires.
func (s *Server) AdminToken() string { return s.adminToken }

// NewLogger builds the logger the config asks for, writing to stderr.
func NewLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// adminURL is the admin API's base URL from admin.listen; empty when off.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if listen == "off" || err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// incidentSinks are the notification sinks of a validated config.
func incidentSinks(c config.Incidents, admin string) ([]incident.Sink, error) {
	client := &http.Client{
		Timeout: 10 * time.Second,
		// A redirect could lead anywhere: the configured receiver answers itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var sinks []incident.Sink
	if pd := c.PagerDuty; pd != nil {
		min, _ := incident.ParseSeverity(pd.MinSeverity) // validated
		sinks = append(sinks, &incident.PagerDuty{URL: pd.URL, RoutingKey: pd.RoutingKey.Value(), MinSev: min, Client: client, AdminURL: admin})
	}
	for i, w := range c.Webhooks {
		key, err := webhook.Key(w.Secret.Value())
		if err != nil {
			return nil, fmt.Errorf("incidents.webhooks[%d].secret: %w", i, err)
		}
		min, _ := incident.ParseSeverity(w.MinSeverity)
		sinks = append(sinks, &incident.Webhook{URL: w.URL, Key: key, MinSev: min, Client: client, Index: i})
	}
	return sinks, nil
}

// Listen builds a Seawall from a validated config and binds its
// listeners; Serve then serves them. The parts are built in one order,
// each handed what it needs when it is made: what is shared first (the
// metrics, the goroutine group, the incident recorder, the upstream set
// with its limits, response cache and usage meters), then the job store
// that delivers through the upstream set, then the notices and the two
// handlers over all of them.
//
// version names this build to the other replicas (seawall version's text).
func Listen(cfg *config.Config, log *slog.Logger, version ...string) (*Server, []net.Listener, error) {
	m := proxy.NewMetrics()
	g := routine.New(log)
	rec := incident.NewRecorder(incident.Config{ResolveAfter: cfg.Incidents.ResolveAfter.D(), KeepEvents: cfg.Incidents.KeepEvents, KeepIncidents: cfg.Incidents.KeepIncidents},
		incident.GathererImpact(m.Registry))
	cl, err := openCluster(cfg, strings.Join(version, " "), m.Registry, rec, log)
	if err != nil {
		return nil, nil, err
	}
	if cl != nil {
		rec.Share(cl.Incidents(), cl.ID(), cfg.Zone) // one incident per outage, whichever replicas see it
	}
	ups := upstream.NewSet(cfg, upstream.Parts{Metrics: m, Log: log, Events: rec, Routines: g, Cluster: cl})
	var store jobs.Store
	if cfg.KeepsState() {
		var err error
		if store, err = OpenJobs(context.Background(), cfg, ups); err != nil {
			return nil, nil, err
		}
		if r, ok := store.(jobs.Records); ok {
			// The timeline and the usage counts survive restarts: kept beside the jobs.
			if err := rec.Restore(context.Background(), jobs.IncidentStore(r, cfg.Incidents.KeepEvents, cfg.Incidents.KeepIncidents)); err != nil {
				log.Warn("the incident timeline kept in the job store could not be read; starting a new one", "error", err.Error())
			}
			if err := ups.Usage.Restore(context.Background(), jobs.UsageStore(r)); err != nil {
				log.Warn("the usage counts kept in the job store could not be read; counting from zero", "error", err.Error())
			}
		}
	}
	p := proxy.New(cfg, ups, proxy.WithJobs(store))
	s := &Server{Proxy: p, Metrics: m, ups: ups, cluster: cl, Incidents: rec, routines: g, jobs: store, stopInc: make(chan struct{}), incDone: make(chan struct{}), usageDone: make(chan struct{}), log: log, grace: cfg.ShutdownGrace.D(), queueAge: cfg.Incidents.QueueAgeHigh.D(), started: cfg, reloads: reloadMetrics(m.Registry)}
	sinks, err := incidentSinks(cfg.Incidents, adminURL(cfg.Admin.Listen))
	if err != nil {
		return nil, nil, err
	}
	var notify func(incident.Notice)
	if len(sinks) > 0 {
		var pending incident.Pending
		if r, ok := store.(jobs.Records); ok {
			pending = jobs.PendingNotices(r) // undelivered notices survive a restart
		}
		s.notices = incident.NewDispatcher(sinks, pending, log, g)
		s.notices.Start(context.Background())
		notify = s.notices.Notify
	}
	g.Go("incident recorder", func() { defer close(s.incDone); rec.Run(s.stopInc, notify) })
	g.Go("usage meter", func() { defer close(s.usageDone); ups.Usage.Run(time.Second, s.stopInc) })
	type listener struct {
		addr    string
		handler http.Handler
		h2c     bool
		engine  string
	}
	order := []listener{{cfg.Listen, p, cfg.H2C, cfg.Engine}}
	if cfg.Admin.Listen != "off" {
		token, err := adminToken(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		s.adminToken = token
		parts := admin.Parts{Upstreams: ups, Jobs: store, Incidents: rec, Token: token, Reload: func() any { return s.Reload() }, Cluster: cl}
		s.Board = admin.NewBoard(parts)
		parts.Board = s.Board
		order = append(order, listener{addr: cfg.Admin.Listen, handler: admin.Handler(parts), engine: config.EngineNetHTTP})
	}
	var lns []net.Listener
	for _, l := range order {
		addr := l.addr
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		lns = append(lns, ln)
		s.addrs = append(s.addrs, ln.Addr())
		s.servers = append(s.servers, AppServer(l.handler, log, g, l.h2c, l.engine))
	}
	return s, lns, nil
}

// HTTPServer is net/http's server of seawall serve's listeners
// (AppServer's with engine: net/http, and the admin listener's), to be
// served on a proxy.Listener: the limits on a request's head and on an
// idle connection, the framing listener's mark in each request's
// context, and, with h2c, HTTP/2 by prior knowledge beside HTTP/1.1.
func HTTPServer(h http.Handler, log *slog.Logger, h2c bool) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ConnContext:       proxy.ConnContext,
		ReadHeaderTimeout: headReadTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeadBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if h2c {
		// A connection that opens with HTTP/2's preface is served as
		// HTTP/2 (net/http's own server), any other as HTTP/1.1.
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// Addrs are the bound addresses: the application listener, then admin.
func (s *Server) Addrs() []net.Addr { return s.addrs }

// Serve serves until ctx ends, then stops accepting, lets in-flight calls
// finish within the grace period, and returns.
func (s *Server) Serve(ctx context.Context, lns []net.Listener) error {
	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	for i, ln := range lns {
		wg.Add(1)
		srv := s.servers[i]
		s.routines.Go("listener "+ln.Addr().String(), func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	leaveCluster := func() {}
	if s.cluster != nil {
		// The replica stays in the cluster until everything else has
		// stopped: calls finishing within the grace period still pace
		// through Redis.
		clusterCtx, leave := context.WithCancel(context.WithoutCancel(ctx))
		clusterDone := make(chan struct{})
		s.routines.Go("cluster heartbeat", func() { defer close(clusterDone); s.cluster.Run(clusterCtx, s.routines) })
		leaveCluster = func() { leave(); <-clusterDone }
	}
	if s.jobs != nil {
		if err := s.jobs.Start(ctx); err != nil {
			return fmt.Errorf("starting delivery: %w", err)
		}
		s.routines.Go("queue age watch", func() { jobs.WatchQueueAge(watchCtx, s.jobs, 10*time.Second, s.queueAge, s.Incidents) })
	}
	// The dashboard's streams end with the board, before the listeners
	// are shut down: a page never holds the shutdown for its grace period.
	boardCtx, stopBoard := context.WithCancel(ctx)
	if s.Board != nil {
		s.routines.Go("dashboard board", func() { s.Board.Run(boardCtx) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopBoard()
	s.log.Info("shutting down", "grace", s.grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	for _, srv := range s.servers {
		if e := srv.Shutdown(sctx); e != nil {
			err = errors.Join(err, fmt.Errorf("in-flight calls cut off after %s: %w", s.grace, e))
		}
	}
	wg.Wait()
	s.Proxy.Close()  // background revalidations, bounded by their routes' timeouts
	s.ups.Close()    // the endpoints' health tickers
	close(s.stopInc) // the last events and counts saved, before the store closes
	<-s.incDone
	<-s.usageDone
	if s.notices != nil {
		s.notices.Stop() // what is undelivered is sent at the next start
	}
	if s.jobs != nil {
		// Unfinished jobs stay queued for the next start.
		if e := s.jobs.Stop(sctx); e != nil {
			err = errors.Join(err, fmt.Errorf("stopping delivery: %w", e))
		}
	}
	stopWatch()
	leaveCluster()
	if left := s.routines.Wait(5 * time.Second); len(left) > 0 {
		s.log.Warn("goroutines still running at shutdown", "goroutines", left)
	}
	return err
}

// Go runs fn in a goroutine of the server's, which Serve waits for before
// it returns (for at most 5 s) and whose panic is logged, not fatal.
func (s *Server) Go(name string, fn func()) { s.routines.Go(name, fn) }

// OpenJobs opens the job store the config names, creating the data
// directory of an embedded store. Jobs are delivered through p's
// upstreams, the upstream runtime the handler calls too, and callbacks
// sent as the config says.
func OpenJobs(ctx context.Context, cfg *config.Config, ups *upstream.Set) (jobs.Store, error) {
	jc := jobs.Config{
		Upstreams:         map[string]int{},
		NoFsync:           !cfg.Jobs.Fsync,
		MaxAttempts:       cfg.Jobs.MaxAttempts,
		MaxAge:            cfg.Jobs.MaxAge.D(),
		Schedule:          jobs.Schedule{BaseDelay: cfg.Jobs.BaseDelay.D(), MaxDelay: cfg.Jobs.MaxDelay.D()},
		Retention:         cfg.Jobs.Retention.D(),
		DeadRetention:     cfg.Jobs.DeadRetention.D(),
		VisibilityTimeout: cfg.Jobs.VisibilityTimeout.D(),
		EnqueueTimeout:    cfg.Jobs.EnqueueTimeout.D(),
		PollInterval:      100 * time.Millisecond,
		CallbackAttempts:  cfg.Jobs.Callbacks.MaxAttempts,
		Metrics:           ups.Metrics().Registry,
		Logger:            ups.Logger(),
		Routines:          ups.Routines(),
	}
	for _, d := range cfg.Jobs.Schedule {
		jc.Schedule.Delays = append(jc.Schedule.Delays, d.D())
	}
	for name, u := range cfg.Upstreams {
		jc.Upstreams[name] = u.JobConcurrency
		jc.AttemptTimeout = max(jc.AttemptTimeout, u.Timeouts.Overall.D())
		for _, r := range u.Routes {
			jc.AttemptTimeout = max(jc.AttemptTimeout, r.Timeouts.Overall.D())
		}
	}
	cb, err := proxy.NewCallbacks(cfg.Jobs.Callbacks, ups.CallbackAllowed)
	if err != nil {
		return nil, err
	}
	if cb != nil {
		jc.Notifier = cb
	}
	dsn := cfg.Jobs.Store
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		if err := os.MkdirAll(filepath.Dir(strings.TrimPrefix(dsn, "sqlite:")), 0o750); err != nil {
			return nil, fmt.Errorf("creating the job store's directory: %w", err)
		}
	}
	jc.Events = ups.Events()
	return jobs.Open(ctx, dsn, jc, &jobs.UpstreamDeliverer{Upstreams: ups, Log: ups.Logger()})
}
