package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/switchd/config"
)

// MetricsPath is where the metrics listener serves Prometheus metrics.
const MetricsPath = "/metrics"

// metricsLoop is the daemon's Prometheus side: a registry of its own (two
// daemons in one test process do not share one), the FIB figures the
// status board lacks, and the listener of /switchd/metrics. The loop
// goroutine calls its methods; scrapes read only the status board and
// fibStats.
type metricsLoop struct {
	reg *prometheus.Registry
	// applySeconds times the FIB Applies that wrote to the kernel or
	// dumped it (the idle Apply that ends every loop turn is not timed).
	applySeconds prometheus.Histogram
	fibStats     atomic.Pointer[fibMetrics]
	// aft reads fib's nexthop groups from the scraping goroutine (a
	// *fib.Table's view; nil on fakes).
	aft  atomic.Pointer[func() ([]fib.AFTGroup, []fib.AFTNextHop)]
	last fib.Stats // the loop's copy, to tell an Apply that did something

	cfg config.Metrics
	srv *http.Server // nil: not listening
}

type fibMetrics struct {
	stats  fib.Stats
	failed int
}

// fibStatsReader is what a *fib.Table reports beyond the fibTable
// interface; the tests' fakes need not have it.
type fibStatsReader interface {
	Stats() fib.Stats
	Errors() []fib.RouteError
}

func newMetricsLoop(d *Daemon) *metricsLoop {
	m := &metricsLoop{
		reg: prometheus.NewRegistry(),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchd_fib_apply_duration_seconds",
			Help: "Time of the FIB Applies that wrote to the kernel or dumped it",
			// From one small batch to a million routes.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.applySeconds,
		statusCollector{snapshot: func() metricsSnapshot {
			s := metricsSnapshot{Status: d.status.load()}
			if f := m.fibStats.Load(); f != nil {
				s.FIB, s.FailedRoutes = f.stats, f.failed
			}
			if aft := m.aft.Load(); aft != nil {
				gs, nhs := (*aft)()
				s.HaveGroups, s.NextHopGroups, s.NextHops = true, len(gs), len(nhs)
			}
			return s
		}},
	)
	return m
}

// fibApplied records an Apply of t that took took.
func (m *metricsLoop) fibApplied(t fibTable, took time.Duration) {
	if v, ok := t.(interface{ View() fib.RouteView }); ok && m.aft.Load() == nil {
		aft := v.View().AFT
		m.aft.Store(&aft)
	}
	r, ok := t.(fibStatsReader)
	if !ok {
		return
	}
	st := r.Stats()
	if st == m.last {
		return
	}
	m.last = st
	m.applySeconds.Observe(took.Seconds())
	m.fibStats.Store(&fibMetrics{stats: st, failed: len(r.Errors())})
}

// setMetrics brings the listener to the config: started, moved or
// stopped. An address that cannot be bound (in use, not local) is logged
// and put in the status; the config stays accepted, and a reload with the
// same config tries again.
func (d *Daemon) setMetrics(cfg config.Metrics) {
	m := d.met
	if cfg == m.cfg && (m.srv != nil || !cfg.Enabled) {
		return
	}
	m.close()
	m.cfg = cfg
	if !cfg.Enabled {
		d.status.update(func(st *Status) { st.Metrics = nil })
		return
	}
	ms := &MetricsStatus{Address: cfg.Address.String()}
	ln, err := net.Listen("tcp", cfg.Address.String())
	if err != nil {
		d.log.Error("metrics listener not started; /switchd/metrics/config/address", "address", cfg.Address, "err", err)
		ms.LastError = err.Error()
		d.status.update(func(st *Status) { st.Metrics = ms })
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// Bounded: a stuck scraper cannot pile up goroutines.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func(srv *http.Server) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics listener stopped", "address", ln.Addr(), "err", err)
		}
	}(m.srv)
	d.log.Info("serving metrics", "address", ln.Addr().String()+MetricsPath)
	ms.Listening = true
	d.status.update(func(st *Status) { st.Metrics = ms })
}

// close stops the listener, if any.
func (m *metricsLoop) close() {
	if m.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
	m.srv = nil
}
