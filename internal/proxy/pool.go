package proxy

import "sync"

// pool is a typed sync.Pool.
type pool[T any] struct{ p sync.Pool }

func newPool[T any](fn func() T) *pool[T] {
	return &pool[T]{p: sync.Pool{New: func() any { return fn() }}}
}

func (p *pool[T]) Get() T  { return p.p.Get().(T) }
func (p *pool[T]) Put(v T) { p.p.Put(v) }
