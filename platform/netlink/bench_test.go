package netlink_test

import (
	"encoding/binary"
	"testing"

	mdl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkExecRoutes writes blackhole /32 routes (no device needed) in
// pipelined batches of up to 1 MiB, as fib does, and reports routes/s;
// allocs/op shows the path allocates nothing per message.
func BenchmarkExecRoutes(b *testing.B) {
	n := ns.NewT(b, "bench")
	c, err := netlink.Dial(n.Net(), unix.NETLINK_ROUTE, netlink.WithSocketBuffers(4<<20, 32<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var batch netlink.Batch
	fail := func(i int, _ mdl.Message, err error) { b.Fatalf("route %d: %v", i, err) }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Begin(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		batch.Raw(unix.AF_INET, 32, 0, 0, unix.RT_TABLE_MAIN, 77, unix.RT_SCOPE_UNIVERSE, unix.RTN_BLACKHOLE)
		batch.U32(0)
		var dst [4]byte
		binary.BigEndian.PutUint32(dst[:], 0x0a000000+uint32(i))
		batch.Attr(unix.RTA_DST, dst[:])
		batch.End()
		if batch.Size() >= 1<<20-4096 || i == b.N-1 {
			if err := c.Exec(&batch, fail); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "routes/s")
}
