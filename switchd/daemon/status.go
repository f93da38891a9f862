package daemon

import (
	"sync/atomic"
)

// statusBoard is the daemon's status as the loop last saw it: built from
// what the loop consumed of the feeds (route counts kept as bgpFIB, the
// statics and the workload path take and drop routes; the FIB's sync state
// after each Apply), never by walking tables per request. The loop is the
// only writer: it copies the current value, changes the copy and swaps it
// in, so readers (the API's goroutines) take a consistent value without
// waiting for the loop.
type statusBoard struct {
	cur atomic.Pointer[Status]
}

// load returns the last published status; its slices and maps are shared
// and must not be changed.
func (b *statusBoard) load() Status {
	if st := b.cur.Load(); st != nil {
		return *st
	}
	return Status{}
}

// update publishes a changed copy of the status. Only the loop goroutine
// calls it; f must replace, not modify, slices and maps it changes.
func (b *statusBoard) update(f func(*Status)) {
	st := b.load()
	f(&st)
	b.cur.Store(&st)
}

// publishFIB records the FIB's state after an Apply.
func (d *Daemon) publishFIB(applyErr error) {
	fs := FIBStatus{
		Routes:     d.bgpRoutes.routes() + len(d.statics) + d.workloads.routes(),
		InSync:     d.table.InSync(),
		LastResync: d.table.LastResync(),
		Stale:      d.table.Stale(),
	}
	if applyErr != nil {
		fs.LastError = applyErr.Error()
	}
	d.status.update(func(st *Status) { st.FIB = fs })
}
