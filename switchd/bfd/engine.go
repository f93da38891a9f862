package bfd

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Engine runs BFD sessions in one network namespace. One goroutine (run)
// waits in epoll for the receive sockets and the earliest session timer,
// handles what is due and publishes state changes as a feed: Updates is
// kicked (1-buffered), Drain takes the changes. AddPeer, RemovePeer,
// Sessions and Drain may be called from any goroutine.
type Engine struct {
	ns   *pnl.NS
	log  *slog.Logger
	kick chan struct{}
	done chan struct{}

	epfd, wakefd int

	mu        sync.Mutex // guards the fields below
	closed    bool
	peers     map[Key]*peer
	byDiscr   map[uint32]*peer
	byAddr    map[addrKey][]*peer
	timers    timerHeap
	listeners map[listenKey]int
	listenOn  map[int]listenKey
	changes   []Change
	stats     Stats
	rnd       *rand.Rand
	wakes     uint64 // loop turns, for the benchmark
}

// Stats counts received packets the engine dropped before any session
// (RFC 5880 §6.8.6, RFC 5881 §5).
type Stats struct {
	RxInvalid uint64 // malformed, or refused by a check of §6.8.6
	RxUnknown uint64 // no session matches
	RxBadTTL  uint64 // TTL (hop limit) below the session's minimum
}

// peer is a session with what the engine keeps beside it.
type peer struct {
	*session
	key     Key
	ifindex int
	tx      sender
	due     time.Time // session.next when last filed in timers
	index   int       // in timers
}

type addrKey struct {
	addr     [16]byte
	multihop bool
}

// Option configures New.
type Option func(*Engine)

// WithNetNS runs the engine's sockets in ns (the caller keeps ns open
// while the engine runs); the default is the caller's namespace.
func WithNetNS(ns *pnl.NS) Option { return func(e *Engine) { e.ns = ns } }

// WithLogger logs state changes and socket errors to l.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New starts an engine with no sessions.
func New(opts ...Option) (*Engine, error) {
	e := &Engine{
		log:       slog.New(slog.DiscardHandler),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		peers:     make(map[Key]*peer),
		byDiscr:   make(map[uint32]*peer),
		byAddr:    make(map[addrKey][]*peer),
		listeners: make(map[listenKey]int),
		listenOn:  make(map[int]listenKey),
		rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for _, o := range opts {
		o(e)
	}
	var err error
	if e.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("bfd: epoll: %w", err)
	}
	if e.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(e.epfd)
		return nil, fmt.Errorf("bfd: eventfd: %w", err)
	}
	if err := e.watch(e.wakefd); err != nil {
		unix.Close(e.epfd)
		unix.Close(e.wakefd)
		return nil, err
	}
	go e.run()
	return e, nil
}

func (e *Engine) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("bfd: epoll add: %w", err)
	}
	return nil
}

// Updates is kicked when Drain has changes.
func (e *Engine) Updates() <-chan struct{} { return e.kick }

// Drain returns the state changes since the last call, in order.
func (e *Engine) Drain() []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.changes
	e.changes = nil
	return c
}

// AddPeer starts a session, or reconfigures the one with cfg's Key (new
// timers start a Poll Sequence while Up). A refused config is a
// *FieldError naming the field.
func (e *Engine) AddPeer(cfg PeerConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	key := cfg.Key()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errClosed
	}
	if p, ok := e.peers[key]; ok {
		p.configure(time.Now(), cfg)
		e.afterLocked(p)
		e.wakeLocked()
		e.mu.Unlock()
		return nil
	}
	lk := listenKey{v6: cfg.Peer.Is6(), multihop: cfg.Multihop}
	_, listening := e.listeners[lk]
	e.mu.Unlock()

	// Sockets and the link are looked up in the engine's namespace,
	// outside the lock.
	var tx sender
	var ifindex int
	lfd := -1
	err = e.ns.Do(func() error {
		var err error
		if ifindex, err = ifindexOf(cfg.Interface); err != nil {
			return &FieldError{Peer: cfg.Peer, Field: "Interface", Reason: err.Error()}
		}
		if !listening {
			if lfd, err = openListener(lk); err != nil {
				return err
			}
		}
		tx, err = openSender(cfg, ifindex)
		return err
	})
	if err != nil {
		if lfd >= 0 {
			unix.Close(lfd)
		}
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		unix.Close(tx.fd)
		if lfd >= 0 {
			unix.Close(lfd)
		}
		return errClosed
	}
	defer e.wakeLocked()
	if lfd >= 0 {
		if _, ok := e.listeners[lk]; ok { // another AddPeer was quicker
			unix.Close(lfd)
		} else if err := e.watch(lfd); err != nil {
			unix.Close(lfd)
			unix.Close(tx.fd)
			return err
		} else {
			e.listeners[lk], e.listenOn[lfd] = lfd, lk
		}
	}
	if _, ok := e.peers[key]; ok { // added meanwhile
		unix.Close(tx.fd)
		return nil
	}
	p := &peer{key: key, ifindex: ifindex, tx: tx, index: -1}
	p.session = newSession(cfg, e.discrLocked(), time.Now(), e.rnd)
	e.peers[key] = p
	e.byDiscr[p.localDiscr] = p
	ak := addrKey{cfg.Peer.As16(), cfg.Multihop}
	e.byAddr[ak] = append(e.byAddr[ak], p)
	heap.Push(&e.timers, p)
	return nil
}

// discrLocked picks an unused nonzero local discriminator.
func (e *Engine) discrLocked() uint32 {
	for {
		d := e.rnd.Uint32()
		if _, used := e.byDiscr[d]; d != 0 && !used {
			return d
		}
	}
}

// RemovePeer ends a session: it goes AdminDown (the peer is told and does
// not take what BFD protects down, RFC 5882 §3.2) and is dropped after
// DetectMult AdminDown packets. It reports whether the session existed.
func (e *Engine) RemovePeer(key Key) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.peers[key]
	if !ok || e.closed {
		return false
	}
	defer e.wakeLocked()
	delete(e.peers, key)
	if p.state != AdminDown {
		p.adminDown(time.Now())
	}
	p.removing = int(p.cfg.DetectMult)
	if p.txInterval() == 0 {
		e.dropLocked(p)
	} else {
		e.afterLocked(p)
	}
	return true
}

// dropLocked forgets a removed session and closes its socket.
func (e *Engine) dropLocked(p *peer) {
	e.collectLocked(p)
	delete(e.byDiscr, p.localDiscr)
	ak := addrKey{p.cfg.Peer.As16(), p.cfg.Multihop}
	e.byAddr[ak] = slices.DeleteFunc(e.byAddr[ak], func(q *peer) bool { return q == p })
	if len(e.byAddr[ak]) == 0 {
		delete(e.byAddr, ak)
	}
	if p.index >= 0 {
		heap.Remove(&e.timers, p.index)
	}
	unix.Close(p.tx.fd)
}

// Sessions returns a snapshot of every session (not those being removed),
// ordered by peer address.
func (e *Engine) Sessions() []Session {
	e.mu.Lock()
	out := make([]Session, 0, len(e.peers))
	for _, p := range e.peers {
		out = append(out, p.snapshot())
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(a.Config.Peer.Compare(b.Config.Peer), a.Config.Local.Compare(b.Config.Local),
			cmp.Compare(a.Config.Interface, b.Config.Interface))
	})
	return out
}

// Stats returns the engine's drop counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (s *session) snapshot() Session {
	return Session{
		Config:      s.cfg,
		State:       s.state,
		RemoteState: s.remoteState,
		LocalDiscr:  s.localDiscr, RemoteDiscr: s.remoteDiscr,
		LocalDiag: s.diag, RemoteDiag: s.remoteDiag,
		DesiredMinTx: s.advTx, RequiredMinRx: s.advRx,
		RemoteDesiredMinTx: s.remoteTx, RemoteRequiredMinRx: s.remoteRx,
		RemoteDetectMult: s.remoteMult,
		TxInterval:       s.txInterval(),
		DetectionTime:    s.detectTime(),
		Polling:          s.polling,
		RxPackets:        s.rxPackets, TxPackets: s.txPackets, TxErrors: s.txErrors,
		UpCount: s.upCount, DownCount: s.downCount,
		LastChange: s.lastChange, LastDown: s.lastDown,
	}
}

// Close stops the engine and closes its sockets. Each session first sends
// one AdminDown packet, so that its peer does not take down what BFD
// protects (RFC 5882 §3.2): a switchd that stops or restarts leaves its
// BGP sessions to graceful restart and hold timers. (A crash sends
// nothing; the peers' detection time expires.)
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	now := time.Now()
	for _, p := range e.timers {
		if p.state != AdminDown {
			p.adminDown(now)
			e.sendLocked(p, false)
		}
	}
	e.wakeLocked()
	e.closed = true // after the wake: closed, the loop's fds may go
	e.mu.Unlock()
	<-e.done
	for _, p := range e.timers {
		unix.Close(p.tx.fd)
	}
	for fd := range e.listenOn {
		unix.Close(fd)
	}
	unix.Close(e.wakefd)
	return unix.Close(e.epfd)
}

var errClosed = errors.New("bfd: engine closed")

// wakeLocked makes run look at the sessions again (a timer may be earlier
// now). Under the lock and before closed is set, the eventfd is open.
func (e *Engine) wakeLocked() {
	if e.closed {
		return
	}
	one := [8]byte{1}
	unix.Write(e.wakefd, one[:])
}

// rxHold batches receiving: after a turn that read packets, the loop
// waits this long (less if a timer is due or a call wakes it) before it
// reads the sockets again, so that packets arriving one by one from many
// peers are read one batch per turn, not one per turn. A packet waits
// at most rxHold; it is read before any timer runs, so a detection time
// never ends for a packet that arrived in time.
const rxHold = 5 * time.Millisecond

// run is the engine's goroutine.
func (e *Engine) run() {
	defer close(e.done)
	events := make([]unix.EpollEvent, 8)
	buf := make([]byte, 512)
	oob := make([]byte, 256)
	hold := false
	for {
		e.mu.Lock()
		timeout := e.timeoutLocked(time.Now())
		e.mu.Unlock()
		var n int
		var err error
		if hold {
			if h := int(rxHold / time.Millisecond); timeout < 0 || timeout > h {
				timeout = h
			}
			// Only a call wakes the loop early.
			_, err = unix.Poll([]unix.PollFd{{Fd: int32(e.wakefd), Events: unix.POLLIN}}, timeout)
		} else {
			n, err = unix.EpollWait(e.epfd, events, timeout)
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			e.log.Error("bfd: wait", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return
		}
		e.wakes++
		unix.Read(e.wakefd, buf[:8]) // nonblocking: reset it if a call set it
		now := time.Now()
		read := 0
		if hold {
			for fd := range e.listenOn {
				read += e.readLocked(fd, buf, oob, now)
			}
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) != e.wakefd {
				read += e.readLocked(int(ev.Fd), buf, oob, now)
			}
		}
		hold = read > 0
		e.timersLocked(now)
		publish := len(e.changes) > 0
		e.mu.Unlock()
		if publish {
			select {
			case e.kick <- struct{}{}:
			default:
			}
		}
	}
}

// maxSlack bounds how late the loop runs a timer so that it runs many
// sessions' timers in one turn (Linux timer slack): it wakes at the
// earliest timer plus a tenth of that session's transmit interval, at most
// maxSlack, and runs every timer due by then. A timer never runs early (a
// transmit interval must not shrink below 75 %, RFC 5880 §6.8.7) and at
// most maxSlack late.
const maxSlack = 5 * time.Millisecond

// slack is how late s's timers may run.
func (s *session) slack() time.Duration {
	iv := s.txInterval()
	if iv == 0 {
		iv = s.detectTime()
	}
	return min(iv/10, maxSlack)
}

// timeoutLocked is the epoll timeout until the earliest timer plus its
// slack, in whole milliseconds rounded up (-1: none).
func (e *Engine) timeoutLocked(now time.Time) int {
	if len(e.timers) == 0 || e.timers[0].due.IsZero() {
		return -1
	}
	first := e.timers[0]
	d := first.due.Add(first.slack()).Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// timersLocked runs every session timer that is due.
func (e *Engine) timersLocked(now time.Time) {
	for len(e.timers) > 0 {
		p := e.timers[0]
		if p.due.IsZero() || p.due.After(now) {
			return
		}
		if p.timer(now) {
			e.sendLocked(p, false)
			if p.removing > 0 {
				if p.removing--; p.removing == 0 {
					e.dropLocked(p)
					continue
				}
			}
		}
		e.afterLocked(p)
	}
}

// readLocked receives what is queued on listening socket fd and reports
// how many packets it read.
func (e *Engine) readLocked(fd int, buf, oob []byte, now time.Time) (read int) {
	lk, ok := e.listenOn[fd]
	if !ok {
		return 0
	}
	for range 256 { // then let timers run
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) {
				e.log.Warn("bfd: receive", "err", err)
			}
			return read
		}
		read++
		m, err := parseMeta(from, oob[:oobn])
		if err != nil {
			e.stats.RxInvalid++
			continue
		}
		e.receiveLocked(lk.multihop, m, buf[:n], now)
	}
	return read
}

// receiveLocked finds a packet's session (RFC 5880 §6.8.6: by Your
// Discriminator, else by addresses and link) and hands it over.
func (e *Engine) receiveLocked(multihop bool, m meta, b []byte, now time.Time) {
	var h pkt.BFDHeader
	if err := parse(b, &h); err != nil {
		e.stats.RxInvalid++
		return
	}
	var p *peer
	if h.YourDiscriminator != 0 {
		p = e.byDiscr[h.YourDiscriminator]
		if p != nil && !p.matches(multihop, m) {
			p = nil
		}
	} else {
		for _, q := range e.byAddr[addrKey{m.src.As16(), multihop}] {
			// Not one being removed: a session added again with its Key
			// is a new one.
			if q.removing == 0 && q.matches(multihop, m) {
				p = q
				break
			}
		}
	}
	if p == nil {
		e.stats.RxUnknown++
		return
	}
	if m.ttl < int(p.cfg.MinTTL) {
		e.stats.RxBadTTL++
		return
	}
	if p.receive(now, &h) {
		e.sendLocked(p, true)
	}
	e.afterLocked(p)
}

// matches reports whether a packet with m came for p: same kind, from its
// peer, to its local address and on its link if it has them.
func (p *peer) matches(multihop bool, m meta) bool {
	return p.cfg.Multihop == multihop && m.src == p.cfg.Peer &&
		(!p.cfg.Local.IsValid() || m.dst == p.cfg.Local) &&
		(p.ifindex == 0 || m.ifindex == p.ifindex)
}

func (e *Engine) sendLocked(p *peer, final bool) {
	h := p.header(final)
	b, err := h.MarshalBinary()
	if err == nil {
		err = unix.Sendto(p.tx.fd, b, 0, p.tx.dst)
	}
	if err != nil {
		p.txErrors++
		return
	}
	p.txPackets++
}

// afterLocked files p's timers again and takes its state changes.
func (e *Engine) afterLocked(p *peer) {
	p.due = p.next()
	if p.index >= 0 {
		heap.Fix(&e.timers, p.index)
	}
	e.collectLocked(p)
}

func (e *Engine) collectLocked(p *peer) {
	for _, c := range p.changes {
		e.log.Info("bfd session", "peer", c.Peer.String(), "from", c.Old.String(), "to", c.New.String(), "diag", c.Diag.String())
	}
	e.changes = append(e.changes, p.changes...)
	p.changes = p.changes[:0]
}

// timerHeap orders sessions by due time; a zero due (nothing to do) last.
type timerHeap []*peer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := h[i].due, h[j].due
	if a.IsZero() || b.IsZero() {
		return !a.IsZero()
	}
	return a.Before(b)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	p := x.(*peer)
	p.index = len(*h)
	p.due = p.next()
	*h = append(*h, p)
}
func (h *timerHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}
