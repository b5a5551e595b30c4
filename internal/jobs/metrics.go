package jobs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's counters, and a collector that reads job counts
// from the database at each scrape.
type metrics struct {
	deliveries *prometheus.CounterVec
	dead       *prometheus.CounterVec
	callbacks  *prometheus.CounterVec
	batch      prometheus.Histogram // enqueues per committed transaction
	commit     prometheus.Histogram // a committed transaction's time
	jobs       *prometheus.Desc
	oldest     *prometheus.Desc
	depth      *prometheus.Desc
	up         *prometheus.Desc
	counts     func(context.Context) ([]Count, error)
}

func newMetrics() *metrics {
	return &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seawall_job_deliveries_total",
			Help: "Delivery attempts of jobs by upstream and outcome: succeeded, failed (an attempt spent), waited (breaker open or paused; no attempt spent), interrupted (cut off by the end of the shutdown grace; no attempt spent).",
		}, []string{"upstream", "outcome"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seawall_job_dead_letters_total",
			Help: "Jobs dead-lettered after max_attempts or max_age, by upstream.",
		}, []string{"upstream"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seawall_job_callbacks_total",
			Help: "Callback attempts by outcome: delivered, failed (retried later), dead (given up).",
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "seawall_job_enqueue_batch_size",
			Help:    "Enqueues committed together in one transaction of the job store (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256, the largest batch
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "seawall_job_enqueue_commit_seconds",
			Help:    "Time from the start of an enqueue transaction to its commit, for transactions that committed.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 13), // 250µs … 1s
		}),
		jobs:   prometheus.NewDesc("seawall_jobs", "Jobs in the store by upstream and state.", []string{"upstream", "state"}, nil),
		depth:  prometheus.NewDesc("seawall_jobs_queue_depth", "Jobs not yet finished (queued, retrying, running) by upstream.", []string{"upstream"}, nil),
		oldest: prometheus.NewDesc("seawall_jobs_oldest_unfinished_age_seconds", "Age of the oldest job not yet finished, by upstream.", []string{"upstream"}, nil),
		up:     prometheus.NewDesc("seawall_store_up", "1 when the job store answered the last scrape's count, 0 when it did not (the job gauges are then absent).", nil, nil),
	}
}

// committed records a transaction of n enqueues that committed after d.
func (m *metrics) committed(n int, d time.Duration) {
	m.batch.Observe(float64(n))
	m.commit.Observe(d.Seconds())
}

func (m *metrics) register(r prometheus.Registerer, s Store) error {
	m.counts = s.Counts
	for _, c := range []prometheus.Collector{m.deliveries, m.dead, m.callbacks, m.batch, m.commit, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.jobs
	ch <- m.depth
	ch <- m.oldest
	ch <- m.up
}

// Collect implements prometheus.Collector: one counting query per scrape.
// A store that does not answer leaves its gauges out and seawall_store_up
// at 0, rather than failing the scrape: every other metric is still
// served when they matter most.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := m.counts(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 1)
	depth := map[string]int{}
	oldest := map[string]time.Time{}
	for _, c := range counts {
		ch <- prometheus.MustNewConstMetric(m.jobs, prometheus.GaugeValue, float64(c.N), c.Upstream, string(c.State))
		if c.State == Queued || c.State == Retrying || c.State == Running {
			depth[c.Upstream] += c.N
			if o, ok := oldest[c.Upstream]; !ok || c.Oldest.Before(o) {
				oldest[c.Upstream] = c.Oldest
			}
		}
	}
	for u, n := range depth {
		ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(n), u)
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, time.Since(oldest[u]).Seconds(), u)
	}
}
