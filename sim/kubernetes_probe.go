package sim

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// Reachability matrices in the style of the upstream NetworkPolicy e2e
// suite: every workload probes every workload (itself included) on each
// protocol and port, TCP by a connection, UDP by an echoed datagram.

// PortProbe is a protocol ("tcp", "udp") and port a matrix probes.
type PortProbe struct {
	Proto string
	Port  int
}

func (p PortProbe) String() string { return fmt.Sprintf("%s/%d", p.Proto, p.Port) }

// ListenWorkloadUDP answers every datagram to port inside workload w
// with itself, until closed. No process is started.
func (f *Fabric) ListenWorkloadUDP(w Workload, port int) (io.Closer, error) {
	c, err := openIn(w, fmt.Sprintf("listen on udp/%d", port), func() (net.PacketConn, error) {
		return net.ListenPacket("udp", fmt.Sprintf(":%d", port))
	})
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
	return c, nil
}

// openIn runs open on a thread in workload w's namespace and returns what
// it opened: sockets stay in the namespace. Errors name what and w.
func openIn[T any](w Workload, what string, open func() (T, error)) (T, error) {
	var v T
	wns, err := ns.Open(w.Netns)
	if err == nil {
		err = wns.Do(func() error {
			var err error
			v, err = open()
			return err
		})
		wns.Close()
	}
	if err != nil {
		return v, fmt.Errorf("%s in workload %s/%s: %w", what, w.Host, w.Name, err)
	}
	return v, nil
}

// ProbeUDP sends a datagram from inside workload from to to's address of
// the family on port and waits at most timeout for its echo.
func (f *Fabric) ProbeUDP(from, to Workload, family, port int, timeout time.Duration) error {
	return probeFrom(from, to, family, port, "udp", func(addr string) error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		msg := []byte("probe " + from.Name)
		if _, err := c.Write(msg); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != string(msg) {
			return fmt.Errorf("echo %q, sent %q", buf[:n], msg)
		}
		return nil
	})
}

// probeFrom runs try on a thread in workload from's namespace with to's
// address of the family and port; errors name proto and both ends.
func probeFrom(from, to Workload, family, port int, proto string, try func(addr string) error) error {
	dst, wns, err := probe(from, to, family)
	if err != nil {
		return err
	}
	defer wns.Close()
	addr := netip.AddrPortFrom(dst, uint16(port)).String()
	if err := wns.Do(func() error { return try(addr) }); err != nil {
		return fmt.Errorf("%s %s/%s to %s/%s (%s): %w", proto, from.Host, from.Name, to.Host, to.Name, addr, err)
	}
	return nil
}

// ServeProbes listens in every workload of ws on every probe's protocol
// and port; the function returned closes all the listeners.
func (f *Fabric) ServeProbes(ws []Workload, probes []PortProbe) (func(), error) {
	var cs []io.Closer
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	for _, w := range ws {
		for _, p := range probes {
			var c io.Closer
			var err error
			switch p.Proto {
			case "tcp":
				c, err = f.ListenWorkload(w, p.Port)
			case "udp":
				c, err = f.ListenWorkloadUDP(w, p.Port)
			default:
				err = fmt.Errorf("probe %v: no such protocol", p)
			}
			if err != nil {
				closeAll()
				return nil, err
			}
			cs = append(cs, c)
		}
	}
	return closeAll, nil
}

// ProbeMatrix probes from every workload of ws to every one, itself
// included, on each probe over IPv4, all at once; a cell is allowed if
// any of attempts tries (each waiting at most timeout) got through, so a
// probe lost on a loaded machine does not read as a deny, and a deny
// must hold every time. The listeners are ServeProbes'. It returns per
// probe the rows in ws's order joined by "|", '.' allowed, 'X' denied
// (k8stest.TableCase's form).
func (f *Fabric) ProbeMatrix(ws []Workload, probes []PortProbe, timeout time.Duration, attempts int) map[PortProbe]string {
	type cell struct {
		p    PortProbe
		i, j int
	}
	ok := map[cell]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range probes {
		for i, a := range ws {
			for j, b := range ws {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					for range max(attempts, 1) {
						if p.Proto == "udp" {
							err = f.ProbeUDP(a, b, 4, p.Port, timeout)
						} else {
							err = f.ConnectWorkload(a, b, 4, p.Port, timeout)
						}
						if err == nil {
							break
						}
					}
					mu.Lock()
					ok[cell{p, i, j}] = err == nil
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	out := map[PortProbe]string{}
	for _, p := range probes {
		var rows []string
		for i := range ws {
			var row []byte
			for j := range ws {
				c := byte('X')
				if ok[cell{p, i, j}] {
					c = '.'
				}
				row = append(row, c)
			}
			rows = append(rows, string(row))
		}
		out[p] = strings.Join(rows, "|")
	}
	return out
}
