package cache

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// Store keeps entries by key. Implementations are safe for concurrent use.
// Memory caches for one replica; Tiered adds a level every replica shares.
type Store interface {
	Get(key string) (*Entry, bool)
	// Set stores e, evicting others as needed; it reports false when e is
	// too large to store at all. keep is how long e can serve (its
	// freshness left and its stale windows, Entry.KeepFor): a shared level
	// drops it then; memory keeps it until it is evicted.
	Set(key string, e *Entry, keep time.Duration) bool
	Delete(key string)
	// Purge deletes every key with the prefix and reports how many.
	Purge(prefix string) int
	// Bytes is the total size of what is stored.
	Bytes() int64
}

// Memory is an in-process Store bounded by bytes, evicting the least
// recently used entries.
type Memory struct {
	maxBytes, maxEntry int64
	onEvict            func()

	mu    sync.Mutex
	items map[string]*list.Element // guarded by mu
	lru   *list.List               // guarded by mu; front is most recent
	bytes int64                    // guarded by mu
}

type item struct {
	key  string
	e    *Entry
	size int64
}

// NewMemory returns a store of at most maxBytes, refusing entries over
// maxEntry. onEvict, if set, is called for each eviction.
func NewMemory(maxBytes, maxEntry int64, onEvict func()) *Memory {
	return &Memory{maxBytes: maxBytes, maxEntry: min(maxEntry, maxBytes), onEvict: onEvict, items: map[string]*list.Element{}, lru: list.New()}
}

// Get implements Store.
func (m *Memory) Get(key string) (*Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false
	}
	m.lru.MoveToFront(el)
	return el.Value.(*item).e, true
}

// Set implements Store.
func (m *Memory) Set(key string, e *Entry, _ time.Duration) bool {
	size := e.Size()
	if size > m.maxEntry {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	for m.bytes+size > m.maxBytes && m.lru.Len() > 0 {
		m.remove(m.lru.Back())
		if m.onEvict != nil {
			m.onEvict()
		}
	}
	m.items[key] = m.lru.PushFront(&item{key: key, e: e, size: size})
	m.bytes += size
	return true
}

// remove drops an element. Caller holds mu.
func (m *Memory) remove(el *list.Element) {
	it := el.Value.(*item)
	m.lru.Remove(el)
	delete(m.items, it.key)
	m.bytes -= it.size
}

// Delete implements Store.
func (m *Memory) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
}

// Purge implements Store.
func (m *Memory) Purge(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for key, el := range m.items {
		if strings.HasPrefix(key, prefix) {
			m.remove(el)
			n++
		}
	}
	return n
}

// Bytes implements Store.
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}
