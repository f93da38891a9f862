// Package source is a minimal BGP speaker that announces a fixed set of IPv4
// prefixes as fast as the receiver takes them: every UPDATE is encoded
// before the session starts and written back to back right after it is
// established, followed by End-of-RIB. It is the route source of the
// BGP-to-FIB benchmark; real speakers (BIRD in particular) pace or stall
// their output, which would measure the source instead of the receiver.
//
// It speaks just enough BGP for that: OPEN with the 4-octet AS,
// multiprotocol IPv4 unicast and route-refresh capabilities, KEEPALIVEs,
// and it reads (and discards) whatever the receiver sends, stopping on a
// NOTIFICATION.
package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// maxMessage is the largest BGP message without the extended message
// capability (RFC 4271).
const maxMessage = 4096

// chunkSize bounds one socket write, so KEEPALIVEs can go out between
// chunks while a slow receiver drains a large table.
const chunkSize = 256 << 10

// Config describes the speaker and the prefixes it announces.
type Config struct {
	LocalAS  uint32
	RouterID netip.Addr
	// NextHop is the NEXT_HOP of every route, normally the source's
	// address on the link to the receiver.
	NextHop netip.Addr
	// First is the first prefix; the others follow it back to back with
	// the same length (16.0.0.0/24, 16.0.1.0/24, ...).
	First netip.Prefix
	Count int
	// HoldTime proposed in OPEN; zero means 180 s.
	HoldTime time.Duration
	// Large, if not nil, gives prefix i's large communities (RFC 8092:
	// global, local 1, local 2), e.g. group membership routes';
	// consecutive prefixes with equal lists share UPDATEs.
	Large func(i int) [][3]uint32
}

// Source holds the pre-encoded announcement of a Config.
type Source struct {
	cfg    Config
	chunks [][]byte // UPDATEs then End-of-RIB, cut at message boundaries
	msgs   int
	bytes  int
}

// New validates c and encodes every UPDATE.
func New(c Config) (*Source, error) {
	if c.HoldTime == 0 {
		c.HoldTime = 180 * time.Second
	}
	switch {
	case c.LocalAS == 0:
		return nil, errors.New("bgp source: LocalAS is 0")
	case !c.RouterID.Is4():
		return nil, fmt.Errorf("bgp source: router-id %v is not an IPv4 address", c.RouterID)
	case !c.NextHop.Is4():
		return nil, fmt.Errorf("bgp source: next hop %v is not an IPv4 address", c.NextHop)
	case !c.First.Addr().Is4() || c.First.Masked() != c.First:
		return nil, fmt.Errorf("bgp source: first prefix %v is not a masked IPv4 prefix", c.First)
	case c.Count < 0 || (c.First.Bits() > 0 && uint64(c.Count) > 1<<c.First.Bits()):
		return nil, fmt.Errorf("bgp source: %d prefixes of length %d do not exist", c.Count, c.First.Bits())
	case c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second:
		return nil, fmt.Errorf("bgp source: hold time %v out of range", c.HoldTime)
	}
	base := binary.BigEndian.Uint32(c.First.Addr().AsSlice())
	if last := uint64(base) + uint64(c.Count)<<(32-c.First.Bits()); c.Count > 0 && last > 1<<32 {
		return nil, fmt.Errorf("bgp source: %d prefixes from %v run past 255.255.255.255", c.Count, c.First)
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{c.LocalAS}),
		}),
	}
	nh, err := bgp.NewPathAttributeNextHop(c.NextHop)
	if err != nil {
		return nil, fmt.Errorf("bgp source: next hop %v: %w", c.NextHop, err)
	}
	attrs = append(attrs, nh)
	s := &Source{cfg: c}
	var chunk []byte
	add := func(m []byte) {
		if len(chunk)+len(m) > chunkSize {
			s.chunks = append(s.chunks, chunk)
			chunk = nil
		}
		chunk = append(chunk, m...)
		s.msgs++
		s.bytes += len(m)
	}
	step := uint32(1) << (32 - c.First.Bits())
	if c.First.Bits() == 0 {
		step = 0
	}
	for i := 0; i < c.Count; {
		// A run of prefixes with the same attributes.
		ra, end := attrs, c.Count
		if c.Large != nil {
			cs := c.Large(i)
			for end = i + 1; end < c.Count && slices.Equal(c.Large(end), cs); end++ {
			}
			lc := make([]*bgp.LargeCommunity, len(cs))
			for j, v := range cs {
				lc[j] = bgp.NewLargeCommunity(v[0], v[1], v[2])
			}
			ra = append(slices.Clip(attrs), bgp.NewPathAttributeLargeCommunities(lc))
		}
		// Fill each UPDATE to maxMessage: header, two length fields and
		// the attributes, then NLRIs of 1 + ceil(bits/8) bytes each.
		empty, err := bgp.NewBGPUpdateMessage(nil, ra, nil).Serialize()
		if err != nil {
			return nil, fmt.Errorf("bgp source: encode update: %w", err)
		}
		perMsg := (maxMessage - len(empty)) / (1 + (c.First.Bits()+7)/8)
		for i < end {
			n := min(perMsg, end-i)
			if err := s.encode(ra, base, step, i, n, add); err != nil {
				return nil, err
			}
			i += n
		}
	}
	eor, err := bgp.NewEndOfRib(bgp.RF_IPv4_UC).Serialize()
	if err != nil {
		return nil, fmt.Errorf("bgp source: encode end-of-rib: %w", err)
	}
	add(eor)
	s.chunks = append(s.chunks, chunk)
	return s, nil
}

// encode adds the UPDATE of the n prefixes from the i-th with attrs.
func (s *Source) encode(attrs []bgp.PathAttributeInterface, base, step uint32, i, n int, add func([]byte)) error {
	nlri := make([]bgp.PathNLRI, n)
	for j := range nlri {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i+j)*step)
		p, err := bgp.NewIPAddrPrefix(netip.PrefixFrom(netip.AddrFrom4(a), s.cfg.First.Bits()))
		if err != nil {
			return fmt.Errorf("bgp source: prefix %v: %w", a, err)
		}
		nlri[j] = bgp.PathNLRI{NLRI: p}
	}
	m, err := bgp.NewBGPUpdateMessage(nil, attrs, nlri).Serialize()
	if err != nil {
		return fmt.Errorf("bgp source: encode update of prefix %d: %w", i, err)
	}
	if len(m) > maxMessage {
		return fmt.Errorf("bgp source: update of %d bytes exceeds %d", len(m), maxMessage)
	}
	add(m)
	return nil
}

// Messages is the number of UPDATE messages (End-of-RIB included).
func (s *Source) Messages() int { return s.msgs }

// Bytes is the encoded size of all UPDATEs.
func (s *Source) Bytes() int { return s.bytes }

// Session is an established session on one connection.
type Session struct {
	src         *Source
	conn        net.Conn
	established time.Time
	peerAS      uint32

	wmu sync.Mutex // serialises writes: chunks and keepalives

	mu   sync.Mutex // guards err
	err  error
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// Open runs the OPEN/KEEPALIVE exchange on conn (within timeout) and
// returns the established session. It takes conn over: on error conn is
// closed. peerAS, if not 0, is checked against the receiver's OPEN.
func (s *Source) Open(conn net.Conn, peerAS uint32, timeout time.Duration) (*Session, error) {
	ss := &Session{src: s, conn: conn, done: make(chan struct{})}
	if err := ss.handshake(peerAS, timeout); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bgp source: open session with %v: %w", conn.RemoteAddr(), err)
	}
	ss.wg.Add(2)
	go ss.readLoop()
	go ss.keepaliveLoop()
	return ss, nil
}

func (ss *Session) handshake(peerAS uint32, timeout time.Duration) error {
	c := ss.src.cfg
	as2 := uint16(bgp.AS_TRANS)
	if c.LocalAS <= 0xffff {
		as2 = uint16(c.LocalAS)
	}
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(c.LocalAS),
	}
	om, err := bgp.NewBGPOpenMessage(as2, uint16(c.HoldTime/time.Second), c.RouterID,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return fmt.Errorf("encode open: %w", err)
	}
	open, err := om.Serialize()
	if err != nil {
		return fmt.Errorf("encode open: %w", err)
	}
	ka, _ := bgp.NewBGPKeepAliveMessage().Serialize()
	ss.conn.SetDeadline(time.Now().Add(timeout))
	defer ss.conn.SetDeadline(time.Time{})
	if _, err := ss.conn.Write(open); err != nil {
		return fmt.Errorf("send open: %w", err)
	}
	gotOpen := false
	for {
		typ, body, err := readMessage(ss.conn)
		if err != nil {
			return err
		}
		switch typ {
		case bgp.BGP_MSG_OPEN:
			if gotOpen {
				return errors.New("second OPEN")
			}
			m, err := bgp.ParseBGPMessage(append(header(len(body)+19, typ), body...))
			if err != nil {
				return fmt.Errorf("decode open: %w", err)
			}
			o := m.Body.(*bgp.BGPOpen)
			ss.peerAS = uint32(o.MyAS)
			for _, p := range o.OptParams {
				if pc, ok := p.(*bgp.OptionParameterCapability); ok {
					for _, cp := range pc.Capability {
						if as4, ok := cp.(*bgp.CapFourOctetASNumber); ok {
							ss.peerAS = as4.CapValue
						}
					}
				}
			}
			if peerAS != 0 && ss.peerAS != peerAS {
				return fmt.Errorf("peer AS %d, want %d", ss.peerAS, peerAS)
			}
			gotOpen = true
			if _, err := ss.conn.Write(ka); err != nil {
				return fmt.Errorf("send keepalive: %w", err)
			}
		case bgp.BGP_MSG_KEEPALIVE:
			if gotOpen {
				ss.established = time.Now()
				return nil
			}
		case bgp.BGP_MSG_NOTIFICATION:
			return notification(body)
		default:
			return fmt.Errorf("unexpected message type %d before established", typ)
		}
	}
}

// Established is when the OPEN/KEEPALIVE exchange completed.
func (ss *Session) Established() time.Time { return ss.established }

// PeerAS is the AS the receiver announced.
func (ss *Session) PeerAS() uint32 { return ss.peerAS }

// Announce writes every UPDATE and End-of-RIB. It returns when the last
// byte is in the socket buffer, i.e. once the receiver has read all but a
// socket buffer's worth.
func (ss *Session) Announce() error {
	for i, ch := range ss.src.chunks {
		if err := ss.Err(); err != nil {
			return err
		}
		ss.wmu.Lock()
		_, err := ss.conn.Write(ch)
		ss.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("bgp source: write updates (chunk %d of %d): %w", i+1, len(ss.src.chunks), errors.Join(err, ss.Err()))
		}
	}
	return nil
}

// Err is the receiver's NOTIFICATION or the read error that ended the
// session, nil while it is up (and after Close).
func (ss *Session) Err() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.err
}

// Close ends the session (without NOTIFICATION) and waits for its
// goroutines.
func (ss *Session) Close() {
	select {
	case <-ss.done:
	default:
		close(ss.done)
	}
	ss.conn.Close()
	ss.wg.Wait()
}

func (ss *Session) readLoop() {
	defer ss.wg.Done()
	for {
		typ, body, err := readMessage(ss.conn)
		if err == nil && typ == bgp.BGP_MSG_NOTIFICATION {
			err = notification(body)
		}
		if err != nil {
			select {
			case <-ss.done:
			default:
				ss.mu.Lock()
				ss.err = err
				ss.mu.Unlock()
			}
			return
		}
	}
}

func (ss *Session) keepaliveLoop() {
	defer ss.wg.Done()
	ka, _ := bgp.NewBGPKeepAliveMessage().Serialize()
	t := time.NewTicker(ss.src.cfg.HoldTime / 3)
	defer t.Stop()
	for {
		select {
		case <-ss.done:
			return
		case <-t.C:
			ss.wmu.Lock()
			_, err := ss.conn.Write(ka)
			ss.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func header(length int, typ uint8) []byte {
	h := make([]byte, 19)
	for i := range 16 {
		h[i] = 0xff
	}
	binary.BigEndian.PutUint16(h[16:], uint16(length))
	h[18] = typ
	return h
}

// readMessage reads one BGP message and returns its type and body.
func readMessage(r io.Reader) (uint8, []byte, error) {
	var h [19]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("read bgp header: %w", err)
	}
	n := int(binary.BigEndian.Uint16(h[16:]))
	if n < 19 || n > 65535 {
		return 0, nil, fmt.Errorf("read bgp message: bad length %d", n)
	}
	body := make([]byte, n-19)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read bgp message body: %w", err)
	}
	return h[18], body, nil
}

func notification(body []byte) error {
	if len(body) < 2 {
		return errors.New("receiver sent a malformed NOTIFICATION")
	}
	return fmt.Errorf("receiver sent NOTIFICATION code %d subcode %d data %q", body[0], body[1], body[2:])
}
