// Command go-syncmap-bench is the Go peer of `isokv bench maps`: the same workloads, on Go 1.19's sync.Map and
// on Mutex/RWMutex-guarded maps, with GOMAXPROCS = threads, writing the same JSON record schema
// (see Sources/MapBenchmarks/DESIGN.md). Standard library only.
//
//	go run . -threads 1,2 -duration 1 -o go.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of one measurement; only the driver stores phase, workers check it every batch iterations.
const (
	waiting int32 = iota
	warmingUp
	measuring
	stopped
	batch = 64
)

type record struct {
	Workload       string   `json:"workload"`
	Implementation string   `json:"implementation"`
	Threads        int      `json:"threads"`
	OpsPerSec      float64  `json:"ops_per_sec"`
	Operations     int64    `json:"operations"`
	Seconds        float64  `json:"seconds"`
	RatioToMutex   *float64 `json:"ratio_to_mutex"`
	Baseline       string   `json:"baseline"`
	Scaling        *float64 `json:"scaling"`
	Source         string   `json:"source"`
}

type document struct {
	Title      string            `json:"title"`
	Parameters map[string]string `json:"parameters"`
	Results    []record          `json:"results"`
}

// measure runs one workload over a fresh map on `threads` goroutines started behind a barrier.
func measure(w workload, impl implementation, threads int, warmup, length time.Duration) record {
	runtime.GOMAXPROCS(threads)
	m := impl.make()
	if w.setup != nil {
		w.setup(m)
	}
	var phase, ready atomic.Int32
	counts := make([]int64, threads)
	var wg sync.WaitGroup
	for id := 0; id < threads; id++ {
		wg.Add(1)
		run := w.newThread(m, id)
		go func(id int) {
			defer wg.Done()
			ready.Add(1)
			for phase.Load() == waiting {
				runtime.Gosched()
			}
			var n int64
			for {
				run(batch)
				p := phase.Load()
				if p == measuring {
					n += batch
				} else if p == stopped {
					break
				}
			}
			counts[id] = n
		}(id)
	}
	for ready.Load() < int32(threads) {
		runtime.Gosched()
	}
	phase.Store(warmingUp)
	time.Sleep(warmup)
	phase.Store(measuring)
	start := time.Now()
	time.Sleep(length)
	phase.Store(stopped)
	elapsed := time.Since(start).Seconds()
	wg.Wait()
	var total int64
	for _, c := range counts {
		total += c
	}
	return record{
		Workload: w.name, Implementation: impl.name, Threads: threads,
		OpsPerSec: float64(total) / elapsed, Operations: total, Seconds: elapsed,
		Baseline: baselineName, Source: runtime.Version(),
	}
}

// derive fills ratio_to_mutex (÷ go:Mutex+map, same workload and threads) and scaling (÷ own 1-thread figure).
func derive(rs []record) {
	type key struct {
		w, impl string
		t       int
	}
	idx := map[key]float64{}
	for _, r := range rs {
		idx[key{r.Workload, r.Implementation, r.Threads}] = r.OpsPerSec
	}
	for i := range rs {
		r := &rs[i]
		if b, ok := idx[key{r.Workload, baselineName, r.Threads}]; ok && b > 0 {
			v := r.OpsPerSec / b
			r.RatioToMutex = &v
		}
		if s, ok := idx[key{r.Workload, r.Implementation, 1}]; ok && s > 0 {
			v := r.OpsPerSec / s
			r.Scaling = &v
		}
	}
}

func selectNames(list string, all []string, what string) map[string]bool {
	out := map[string]bool{}
	if list == "" {
		for _, n := range all {
			out[n] = true
		}
		return out
	}
	known := map[string]bool{}
	for _, n := range all {
		known[n] = true
	}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if !known[n] {
			fail("unknown %s %q; choose from %s", what, n, strings.Join(all, ", "))
		}
		out[n] = true
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-syncmap-bench: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	threadsFlag := flag.String("threads", "1,2", "comma-separated thread counts (GOMAXPROCS), 1...256")
	duration := flag.Float64("duration", 1, "measured seconds per run")
	warmup := flag.Float64("warmup", 0.2, "warm-up seconds before each run")
	workloadFlag := flag.String("workload", "", "comma-separated workloads (default: all)")
	implFlag := flag.String("implementation", "", "comma-separated implementations (default: all)")
	out := flag.String("o", "", "write JSON here (default: stdout)")
	flag.Parse()

	var threads []int
	for _, s := range strings.Split(*threadsFlag, ",") {
		t, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || t < 1 || t > 256 {
			fail("-threads: %q is not a thread count in 1...256", s)
		}
		threads = append(threads, t)
	}
	if *duration < 0.01 || *duration > 3600 || *warmup < 0 || *warmup > 60 {
		fail("-duration must be in 0.01...3600 and -warmup in 0...60")
	}
	var wnames, inames []string
	for _, w := range workloads {
		wnames = append(wnames, w.name)
	}
	for _, im := range implementations {
		inames = append(inames, im.name)
	}
	wsel := selectNames(*workloadFlag, wnames, "workload")
	isel := selectNames(*implFlag, inames, "implementation")

	var results []record
	for _, w := range workloads {
		if !wsel[w.name] {
			continue
		}
		for _, im := range implementations {
			if !isel[im.name] {
				continue
			}
			if _, ok := im.make().(swapper); w.needsSwap && !ok {
				continue // Go 1.19's sync.Map has no Swap/CompareAndSwap
			}
			for _, t := range threads {
				r := measure(w, im, t, time.Duration(*warmup*float64(time.Second)), time.Duration(*duration*float64(time.Second)))
				fmt.Fprintf(os.Stderr, "  %s %s x%d: %.2fM ops/s\n", w.name, im.name, t, r.OpsPerSec/1e6)
				results = append(results, r)
			}
		}
	}
	derive(results)
	doc := document{
		Title: "go-syncmap-bench",
		Parameters: map[string]string{
			"source":     runtime.Version(),
			"threads":    *threadsFlag,
			"duration_s": strconv.FormatFloat(*duration, 'g', -1, 64),
			"warmup_s":   strconv.FormatFloat(*warmup, 'g', -1, 64),
			"cores":      strconv.Itoa(runtime.NumCPU()),
		},
		Results: results,
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		fail("%v", err)
	}
	data = append(data, '\n')
	if *out == "" {
		os.Stdout.Write(data)
	} else if err := os.WriteFile(*out, data, 0o644); err != nil {
		fail("%v", err)
	}
}
