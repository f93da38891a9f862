package bfd

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkTimers100At50ms compares ways to run the transmit timers of 100
// sessions at 50 ms (jittered to 75–100 %), with no packets: the engine's
// heap under epoll_wait with and without slack, and a time.AfterFunc per
// session. It reports the CPU share of one core over BFD_BENCH_SECONDS
// (default 10) and the timer runs per second. Run with -benchtime=1x.
func BenchmarkTimers100At50ms(b *testing.B) {
	for _, v := range []struct {
		name string
		run  func(stop <-chan struct{}, fired *atomic.Uint64)
	}{
		{"heap-epoll-slack", func(stop <-chan struct{}, fired *atomic.Uint64) { heapTimers(stop, fired, maxSlack) }},
		{"heap-epoll-noslack", func(stop <-chan struct{}, fired *atomic.Uint64) { heapTimers(stop, fired, 0) }},
		{"time.AfterFunc", afterFuncTimers},
	} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				var fired atomic.Uint64
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() { v.run(stop, &fired); close(done) }()
				time.Sleep(200 * time.Millisecond) // past the first round
				_, share, rates := window(func() time.Duration { return cpuTime(b) }, fired.Load)
				close(stop)
				<-done
				b.ReportMetric(100*share, "%core")
				b.ReportMetric(rates[0], "timers/s")
			}
		})
	}
}

func jittered(rnd *rand.Rand) time.Duration {
	return 50*time.Millisecond*3/4 + time.Duration(rnd.Int64N(int64(50*time.Millisecond/4)))
}

// heapTimers is the engine's way: one goroutine, a heap of due times,
// epoll_wait until the earliest plus slack, then every timer due.
func heapTimers(stop <-chan struct{}, fired *atomic.Uint64, slack time.Duration) {
	epfd, _ := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	defer unix.Close(epfd)
	rnd := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex // held as the engine holds its lock
	h := make(timerHeap, 0, 100)
	now := time.Now()
	for range 100 {
		p := &peer{session: &session{txAt: now.Add(jittered(rnd))}}
		heap.Push(&h, p)
	}
	events := make([]unix.EpollEvent, 1)
	for {
		select {
		case <-stop:
			return
		default:
		}
		d := h[0].due.Add(slack).Sub(time.Now())
		timeout := 0
		if d > 0 {
			timeout = int((d + time.Millisecond - 1) / time.Millisecond)
		}
		unix.EpollWait(epfd, events, timeout)
		mu.Lock()
		now := time.Now()
		for h[0].due.Before(now) {
			p := h[0]
			p.txAt = now.Add(jittered(rnd))
			p.due = p.txAt
			heap.Fix(&h, 0)
			fired.Add(1)
		}
		mu.Unlock()
	}
}

// afterFuncTimers gives each session a runtime timer whose function takes
// the engine's lock, as a timer per session would.
func afterFuncTimers(stop <-chan struct{}, fired *atomic.Uint64) {
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	timers := make([]*time.Timer, 100)
	mu.Lock() // the functions wait until their timer is stored
	for i := range timers {
		timers[i] = time.AfterFunc(jittered(rnd), func() {
			mu.Lock()
			fired.Add(1)
			timers[i].Reset(jittered(rnd))
			mu.Unlock()
		})
	}
	mu.Unlock()
	<-stop
	mu.Lock()
	for _, t := range timers {
		t.Stop()
	}
	mu.Unlock()
}
