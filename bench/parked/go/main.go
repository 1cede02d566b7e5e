// parked_million, Go's side: exactly the work of `async_bench parked_million`
// (bench/async_bench.c).  GOMAXPROCS=2; N goroutines (default 1,000,000),
// each parked receiving on its own unbuffered channel; once all have
// started, 50 ms for the last ones to park, then one send per channel and
// a join of all.  Prints the same lines as async_bench:
//
//	parked_million: B bytes/fiber        (VmRSS after spawn - before) / N
//	parked_million_spawn: S s            spawn until all started (+50 ms, subtracted)
//	parked_million_wake_join: S s        every send, then every goroutine joined
//
// Usage: go-parked [N]
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			kb, err := strconv.ParseInt(strings.Fields(s.Text())[1], 10, 64)
			if err != nil {
				panic(err)
			}
			return kb * 1024
		}
	}
	panic("no VmRSS")
}

func main() {
	n := 1_000_000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-parked [N]")
			os.Exit(2)
		}
		n = v
	}
	runtime.GOMAXPROCS(2)
	runtime.GC()
	before := rssBytes()
	t0 := time.Now()
	chans := make([]chan int, n)
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	var sum int64
	for i := 0; i < n; i++ {
		ch := make(chan int)
		chans[i] = ch
		go func() {
			started.Done()
			v := <-ch
			atomic.AddInt64(&sum, int64(v))
			finished.Done()
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond)
	tSpawned := time.Now()
	after := rssBytes()
	for i, ch := range chans {
		ch <- i
	}
	finished.Wait()
	tEnd := time.Now()
	if sum != int64(n)*int64(n-1)/2 {
		panic("parked sum")
	}
	fmt.Printf("parked_million: %.0f bytes/fiber\n", float64(after-before)/float64(n))
	fmt.Printf("parked_million_spawn: %.2f s\n", tSpawned.Sub(t0).Seconds()-0.05)
	fmt.Printf("parked_million_wake_join: %.2f s\n", tEnd.Sub(tSpawned).Seconds())
}
