package main

import "sync"

// mapInterface is the API the workloads need; Go 1.19's sync.Map has all of it but Swap/CompareAndSwap.
type mapInterface interface {
	Load(key any) (any, bool)
	Store(key, value any)
	LoadOrStore(key, value any) (any, bool)
	LoadAndDelete(key any) (any, bool)
	Delete(key any)
	Range(f func(key, value any) bool)
}

// swapper is the Go 1.20 part of the API, implemented here by the lock-based peers only.
type swapper interface {
	Swap(key, value any) (any, bool)
	CompareAndSwap(key, old, new any) bool
}

// implementation is one peer map: a name (prefixed "go:") and a constructor.
type implementation struct {
	name string
	make func() mapInterface
}

var implementations = []implementation{
	{"go:Mutex+map", func() mapInterface { return &mutexMap{m: map[any]any{}} }},
	{"go:RWMutex+map", func() mapInterface { return &rwMutexMap{m: map[any]any{}} }},
	{"go:sync.Map", func() mapInterface { return &sync.Map{} }},
}

const baselineName = "go:Mutex+map"

// mutexMap: one sync.Mutex around a map. m is only touched with mu held.
type mutexMap struct {
	mu sync.Mutex
	m  map[any]any
}

func (c *mutexMap) Load(k any) (any, bool) {
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	return v, ok
}

func (c *mutexMap) Store(k, v any) {
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
}

func (c *mutexMap) LoadOrStore(k, v any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		return old, true
	}
	c.m[k] = v
	return v, false
}

func (c *mutexMap) LoadAndDelete(k any) (any, bool) {
	c.mu.Lock()
	v, ok := c.m[k]
	delete(c.m, k)
	c.mu.Unlock()
	return v, ok
}

func (c *mutexMap) Delete(k any) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *mutexMap) Swap(k, v any) (any, bool) {
	c.mu.Lock()
	old, ok := c.m[k]
	c.m[k] = v
	c.mu.Unlock()
	return old, ok
}

func (c *mutexMap) CompareAndSwap(k, old, new any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; !ok || v != old {
		return false
	}
	c.m[k] = new
	return true
}

// Range copies the entries under the lock, then calls f without it (f may call the map), as Go's reference
// RWMutexMap in map_reference_test.go does.
func (c *mutexMap) Range(f func(k, v any) bool) {
	c.mu.Lock()
	keys := make([]any, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		v, ok := c.Load(k)
		if !ok {
			continue
		}
		if !f(k, v) {
			break
		}
	}
}

// rwMutexMap: one sync.RWMutex around a map; reads share the lock. m is written only with mu held exclusively.
type rwMutexMap struct {
	mu sync.RWMutex
	m  map[any]any
}

func (c *rwMutexMap) Load(k any) (any, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *rwMutexMap) Store(k, v any) {
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
}

func (c *rwMutexMap) LoadOrStore(k, v any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		return old, true
	}
	c.m[k] = v
	return v, false
}

func (c *rwMutexMap) LoadAndDelete(k any) (any, bool) {
	c.mu.Lock()
	v, ok := c.m[k]
	delete(c.m, k)
	c.mu.Unlock()
	return v, ok
}

func (c *rwMutexMap) Delete(k any) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *rwMutexMap) Swap(k, v any) (any, bool) {
	c.mu.Lock()
	old, ok := c.m[k]
	c.m[k] = v
	c.mu.Unlock()
	return old, ok
}

func (c *rwMutexMap) CompareAndSwap(k, old, new any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; !ok || v != old {
		return false
	}
	c.m[k] = new
	return true
}

func (c *rwMutexMap) Range(f func(k, v any) bool) {
	c.mu.RLock()
	keys := make([]any, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	c.mu.RUnlock()
	for _, k := range keys {
		v, ok := c.Load(k)
		if !ok {
			continue
		}
		if !f(k, v) {
			break
		}
	}
}
