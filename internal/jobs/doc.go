// Package jobs is Seawall's durable queue of accepted asynchronous requests.
//
// A Store keeps Deliveries durably and hands each to a Deliverer until it
// succeeds, is dead-lettered after its attempts, or is canceled. The
// interface is narrow on purpose: one implementation, on River, runs over
// two databases, SQLite (embedded, the default) and PostgreSQL (several
// replicas), and one shared test suite (store_test.go) runs over both.
package jobs
