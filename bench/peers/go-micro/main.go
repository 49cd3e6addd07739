// Go peer for the runner's micro-benchmarks: the same measurements as zsync's
// `benches/green.rs`, on goroutines.
//
//	go build -o go-micro . && GOMAXPROCS=2 ./go-micro spawn_join 8
//
// Prints `RESULT v0 v1 ...`: the first iteration (cold) then the warm ones, in the unit of the
// benchmark (ns per task, ns per yield, ns per round trip, ms total, KiB per parked task).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const yields = 200

func scaled(n int) int {
	s, err := strconv.ParseFloat(os.Getenv("GB_SCALE"), 64)
	if err != nil || s <= 0 {
		return n
	}
	if v := int(float64(n) * s); v > 0 {
		return v
	}
	return 1
}

// rssKiB reads the resident set size from /proc/self/statm, as the Rust benches do.
func rssKiB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		panic(err)
	}
	return pages * 4
}

func perOp(t time.Time, n int) float64 {
	return float64(time.Since(t).Nanoseconds()) / float64(n)
}

func spawnJoin() float64 {
	n := scaled(200_000)
	t := time.Now()
	results := make([]chan int, n)
	for i := 0; i < n; i++ {
		ch := make(chan int, 1)
		results[i] = ch
		go func(i int) { ch <- i }(i)
	}
	sum := 0
	for _, ch := range results {
		sum += <-ch
	}
	if sum != n*(n-1)/2 {
		panic("wrong sum")
	}
	return perOp(t, n)
}

func spawnJoinEach() float64 {
	n := scaled(200_000)
	t := time.Now()
	sum := 0
	for i := 0; i < n; i++ {
		ch := make(chan int, 1)
		go func(i int) { ch <- i }(i)
		sum += <-ch
	}
	if sum != n*(n-1)/2 {
		panic("wrong sum")
	}
	return perOp(t, n)
}

func yield() float64 {
	n := scaled(1000)
	t := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			for j := 0; j < yields; j++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return perOp(t, n*yields)
}

func pingPong() float64 {
	n := scaled(100_000)
	ping := make(chan int, 1)
	pong := make(chan int, 1)
	go func() {
		for v := range ping {
			pong <- v
		}
		close(pong)
	}()
	t := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if <-pong != i {
			panic("out of order")
		}
	}
	took := perOp(t, n)
	close(ping)
	<-pong
	return took
}

// mpmc: 4 producers and 4 consumers move 100k messages through one channel of capacity 1024;
// total ms.
func mpmc() float64 {
	const sides = 4
	n := scaled(100_000) / sides * sides
	per := n / sides
	t := time.Now()
	ch := make(chan int, 1024)
	var producers sync.WaitGroup
	producers.Add(sides)
	for p := 0; p < sides; p++ {
		go func() {
			for i := 0; i < per; i++ {
				ch <- i
			}
			producers.Done()
		}()
	}
	counts := make(chan int, sides)
	for c := 0; c < sides; c++ {
		go func() {
			got := 0
			for range ch {
				got++
			}
			counts <- got
		}()
	}
	producers.Wait()
	close(ch)
	got := 0
	for c := 0; c < sides; c++ {
		got += <-counts
	}
	if got != n {
		panic("lost messages")
	}
	return float64(time.Since(t).Microseconds()) / 1e3
}

func sleeps() float64 {
	n := scaled(100_000)
	t := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(10 * time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(t).Microseconds()) / 1e3
}

func rssParked() float64 {
	n := scaled(100_000)
	gate := make(chan struct{})
	var started int64
	var wg sync.WaitGroup
	wg.Add(n)
	before := rssKiB()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			<-gate
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&started) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	after := rssKiB()
	close(gate)
	wg.Wait()
	return (after - before) / float64(n)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go-micro BENCH WARM_ITERS")
		os.Exit(2)
	}
	benches := map[string]func() float64{
		"spawn_join":      spawnJoin,
		"spawn_join_each": spawnJoinEach,
		"yield":           yield,
		"ping_pong":       pingPong,
		"xping_pong":      pingPong, // goroutines go where Go's scheduler puts them
		"mpmc":            mpmc,
		"sleeps":          sleeps,
		"rss_parked":      rssParked,
	}
	f, ok := benches[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown bench", os.Args[1])
		os.Exit(2)
	}
	warm, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	out := make([]string, 0, warm+1)
	for i := 0; i <= warm; i++ {
		out = append(out, fmt.Sprintf("%.3f", f()))
		runtime.GC()
	}
	fmt.Println("RESULT " + strings.Join(out, " "))
}
