package main

// The workloads of `isokv bench maps` (Sources/MapBenchmarks/MapWorkload+Run.swift), with the same key ranges,
// set-up and loop bodies; the first eighteen follow Go's src/sync/map_bench_test.go. One operation is one
// iteration of the loop body. A workload's batch function runs n iterations and returns the updated state.

const (
	keySpacing  = (1 << 36) + 1 // distance between two goroutines' counters, as in the Swift harness
	mixedKeys   = 1024
	churnWindow = 1024
)

// workload is one benchmark: set-up on a fresh map, then a per-goroutine batch runner.
type workload struct {
	name      string
	needsSwap bool // Swap/CompareAndSwap: absent from Go 1.19's sync.Map
	setup     func(m mapInterface)
	// newThread returns the batch function of goroutine id: it runs n iterations.
	newThread func(m mapInterface, id int) func(n int)
}

func preload(m mapInterface, hits int) {
	for k := 0; k < hits; k++ {
		m.LoadOrStore(k, k)
	}
	for k := 0; k < hits*2; k++ {
		m.Load(k % hits)
	}
}

func preloadFn(hits int) func(mapInterface) { return func(m mapInterface) { preload(m, hits) } }

func storeZero(m mapInterface) { m.LoadOrStore(0, 0) }

func store1024(m mapInterface) {
	for k := 0; k < 1024; k++ {
		m.Store(k, k)
	}
}

func swapMostly(hits int) func(m mapInterface, id int) func(int) {
	return func(m mapInterface, id int) func(int) {
		s := m.(swapper)
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				if v := i % 1024; v < hits {
					s.Swap(v, v)
				} else {
					s.Swap(i, i)
					m.Delete(i)
				}
				i++
			}
		}
	}
}

func casMostly(hits int) func(m mapInterface, id int) func(int) {
	return func(m mapInterface, id int) func(int) {
		s := m.(swapper)
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				v := i
				if i%1024 < hits {
					v = i % 1024
				}
				s.CompareAndSwap(v, v, v)
				i++
			}
		}
	}
}

func loadMod1024(m mapInterface, id int) func(int) {
	i := id * keySpacing
	return func(n int) {
		for ; n > 0; n-- {
			m.Load(i % 1024)
			i++
		}
	}
}

var workloads = []workload{
	{name: "load-mostly-hits", setup: preloadFn(1023), newThread: loadMod1024},
	{name: "load-mostly-misses", setup: preloadFn(1), newThread: loadMod1024},
	{name: "load-or-store-balanced", setup: preloadFn(128), newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				if j := i % 256; j < 128 {
					m.LoadOrStore(j, i)
				} else {
					m.LoadOrStore(i, i)
				}
				i++
			}
		}
	}},
	{name: "load-or-store-unique", newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				m.LoadOrStore(i, i)
				i++
			}
		}
	}},
	{name: "load-or-store-collision", setup: storeZero, newThread: func(m mapInterface, id int) func(int) {
		return func(n int) {
			for ; n > 0; n-- {
				m.LoadOrStore(0, 0)
			}
		}
	}},
	{name: "load-and-delete-balanced", setup: preloadFn(128), newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				if j := i % 256; j < 128 {
					m.LoadAndDelete(j)
				} else {
					m.LoadAndDelete(i)
				}
				i++
			}
		}
	}},
	{name: "load-and-delete-unique", newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				m.LoadAndDelete(i)
				i++
			}
		}
	}},
	{name: "load-and-delete-collision", setup: storeZero, newThread: func(m mapInterface, id int) func(int) {
		return func(n int) {
			for ; n > 0; n-- {
				if _, loaded := m.LoadAndDelete(0); loaded {
					m.Store(0, 0)
				}
			}
		}
	}},
	{name: "swap-collision", needsSwap: true, setup: storeZero, newThread: func(m mapInterface, id int) func(int) {
		s := m.(swapper)
		return func(n int) {
			for ; n > 0; n-- {
				s.Swap(0, 0)
			}
		}
	}},
	{name: "swap-mostly-hits", needsSwap: true, setup: preloadFn(1023), newThread: swapMostly(1023)},
	{name: "swap-mostly-misses", needsSwap: true, setup: preloadFn(1), newThread: swapMostly(1)},
	{name: "compare-and-swap-collision", needsSwap: true, setup: storeZero, newThread: func(m mapInterface, id int) func(int) {
		s := m.(swapper)
		return func(n int) {
			for ; n > 0; n-- {
				if s.CompareAndSwap(0, 0, 42) {
					s.CompareAndSwap(0, 42, 0)
				}
			}
		}
	}},
	{name: "compare-and-swap-mostly-hits", needsSwap: true, setup: preloadFn(1023), newThread: casMostly(1023)},
	{name: "compare-and-swap-mostly-misses", needsSwap: true, setup: preloadFn(1), newThread: casMostly(1)},
	{name: "range", setup: store1024, newThread: func(m mapInterface, id int) func(int) {
		return func(n int) {
			for ; n > 0; n-- {
				m.Range(func(_, _ any) bool { return true })
			}
		}
	}},
	{name: "adversarial-alloc", newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		stores, loadsSinceStore := 0, 0
		return func(n int) {
			for ; n > 0; n-- {
				m.Load(i)
				if loadsSinceStore++; loadsSinceStore > stores {
					m.LoadOrStore(i, stores)
					loadsSinceStore = 0
					stores++
				}
				i++
			}
		}
	}},
	{name: "adversarial-delete", setup: store1024, newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		return func(n int) {
			for ; n > 0; n-- {
				m.Load(i)
				if i%1024 == 0 {
					m.Range(func(k, _ any) bool {
						m.Delete(k)
						return false
					})
					m.Store(i, i)
				}
				i++
			}
		}
	}},
	{name: "delete-collision", setup: storeZero, newThread: func(m mapInterface, id int) func(int) {
		return func(n int) {
			for ; n > 0; n-- {
				m.Delete(0)
			}
		}
	}},
	{name: "mixed-90-10", setup: preloadFn(mixedKeys), newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		rng := newXorShift64(uint64(id + 1))
		return func(n int) {
			for ; n > 0; n-- {
				r := rng.next()
				k := int(r & (mixedKeys - 1))
				if (r>>32)%10 == 0 {
					m.Store(k, i)
				} else {
					m.Load(k)
				}
				i++
			}
		}
	}},
	{name: "churn", newThread: func(m mapInterface, id int) func(int) {
		i := id * keySpacing
		start := i
		return func(n int) {
			for ; n > 0; n-- {
				m.Store(i, i)
				if i-start >= churnWindow {
					m.Delete(i - churnWindow)
				}
				i++
			}
		}
	}},
}

// xorShift64 is the generator of mixed-90-10, seeded as the Swift harness seeds it.
type xorShift64 struct{ state uint64 }

func newXorShift64(seed uint64) *xorShift64 { return &xorShift64{state: seed*0x9E3779B97F4A7C15 | 1} }

func (x *xorShift64) next() uint64 {
	x.state ^= x.state << 13
	x.state ^= x.state >> 7
	x.state ^= x.state << 17
	return x.state
}
