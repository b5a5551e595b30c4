package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Shared is a cache level every replica reads (Redis: docs/distributed.md,
// "The cache"). Its calls are bounded by its own timeout; an error is a
// level that does not answer, and Tiered serves from memory alone.
type Shared interface {
	// Get returns the encoded entry kept under key; nil when there is none.
	Get(key string) ([]byte, error)
	// Set keeps an encoded entry for ttl, evicting others past the
	// level's size limit.
	Set(key string, b []byte, ttl time.Duration) error
	// Purge deletes every key with the prefix, reports how many, and has
	// every replica purge its memory of it.
	Purge(prefix string) (int, error)
	// Fill takes the cluster's turn to fill key for at most d: false when
	// another replica has it. release hands the turn back.
	Fill(key string, d time.Duration) (release func(), mine bool, err error)
}

// Tiered is memory in front of a shared level: a hit in memory is served
// from memory; a miss reads the shared level and keeps what it finds in
// memory; an entry stored goes to both; a purge reaches both, and, through
// the shared level, every replica's memory.
type Tiered struct {
	mem    *Memory
	shared Shared
	log    *slog.Logger

	// sharedHits, sharedMisses, sharedErrors count the reads of the shared
	// level (for its metrics).
	sharedHits, sharedMisses, sharedErrors atomic.Int64
}

// NewTiered returns mem in front of shared.
func NewTiered(mem *Memory, shared Shared, log *slog.Logger) *Tiered {
	return &Tiered{mem: mem, shared: shared, log: log}
}

// Get implements Store.
func (t *Tiered) Get(key string) (*Entry, bool) {
	if e, ok := t.mem.Get(key); ok {
		return e, true
	}
	b, err := t.shared.Get(key)
	switch {
	case err != nil:
		t.sharedErrors.Add(1)
		return nil, false
	case b == nil:
		t.sharedMisses.Add(1)
		return nil, false
	}
	e, err := DecodeEntry(b)
	if err != nil {
		t.sharedErrors.Add(1)
		t.log.Warn("a cached response kept in Redis could not be read; fetched again", "error", err.Error())
		return nil, false
	}
	t.sharedHits.Add(1)
	t.mem.Set(key, e, 0)
	return e, true
}

// Set implements Store: the shared level keeps e for keep, and not at
// all when keep is 0 (an entry only memory may revalidate).
func (t *Tiered) Set(key string, e *Entry, keep time.Duration) bool {
	if !t.mem.Set(key, e, keep) {
		return false
	}
	if keep > 0 {
		if err := t.shared.Set(key, EncodeEntry(e), keep); err != nil {
			t.sharedErrors.Add(1)
		}
	}
	return true
}

// Delete implements Store. Only memory: Purge is what reaches every
// replica.
func (t *Tiered) Delete(key string) { t.mem.Delete(key) }

// Purge implements Store: memory, the shared level, and every replica's
// memory. Should the shared level not answer, this replica's memory is
// purged all the same and the error logged.
func (t *Tiered) Purge(prefix string) int {
	n := t.mem.Purge(prefix)
	shared, err := t.shared.Purge(prefix)
	if err != nil {
		t.sharedErrors.Add(1)
		t.log.Warn("cached responses could not be purged in Redis; purged in this replica's memory only", "error", err.Error())
		return n
	}
	return max(n, shared)
}

// Bytes implements Store: memory's.
func (t *Tiered) Bytes() int64 { return t.mem.Bytes() }

// Forget purges memory alone, as another replica's purge asks.
func (t *Tiered) Forget(prefix string) { t.mem.Purge(prefix) }

// Fill takes the cluster's turn to fill key, as Shared.Fill; when the
// shared level does not answer, the turn is this replica's.
func (t *Tiered) Fill(key string, d time.Duration) (release func(), mine bool) {
	release, mine, err := t.shared.Fill(key, d)
	if err != nil {
		return func() {}, true
	}
	return release, mine
}

// SharedReads reports the shared level's hits, misses and errors.
func (t *Tiered) SharedReads() (hits, misses, errs int64) {
	return t.sharedHits.Load(), t.sharedMisses.Load(), t.sharedErrors.Load()
}

// encoded is an entry as the shared level keeps it.
type encoded struct {
	V        int         `json:"v"`
	Status   int         `json:"status"`
	Header   http.Header `json:"header"`
	Body     []byte      `json:"body"`
	Request  time.Time   `json:"request_time"`
	Response time.Time   `json:"response_time"`
	Targets  []string    `json:"targets"` // nil (the default fields) and empty (none) differ
}

// encodingVersion is written with every entry; an entry of another
// version is not read.
const encodingVersion = 1

// EncodeEntry is e as the shared level keeps it.
func EncodeEntry(e *Entry) []byte {
	b, _ := json.Marshal(encoded{V: encodingVersion, Status: e.Status, Header: e.Header, Body: e.Body,
		Request: e.RequestTime, Response: e.ResponseTime, Targets: e.targets})
	return b // a header, bytes and times always encode
}

// errEncoding is an entry the shared level holds that is not one Seawall
// wrote.
var errEncoding = errors.New("not a cached response")

// DecodeEntry reads what EncodeEntry wrote. Anything else (another
// program's value under the key, another version) is an error.
func DecodeEntry(b []byte) (*Entry, error) {
	var v encoded
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", errEncoding, err)
	}
	if v.V != encodingVersion || v.Status < 0 || v.Status > 999 || v.Header == nil || v.Response.Before(v.Request) {
		return nil, errEncoding
	}
	for k := range v.Header {
		if k == "" || strings.ContainsAny(k, " \r\n:") {
			return nil, errEncoding
		}
	}
	if v.Status == 0 { // a Vary marker
		return &Entry{Header: v.Header}, nil
	}
	return NewEntry(v.Status, v.Header, v.Body, v.Request, v.Response, v.Targets), nil
}
