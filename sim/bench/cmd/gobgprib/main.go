// Command gobgprib is GoBGP alone, for the BGP-to-FIB benchmark: a GoBGP
// v4 BgpServer (the version switchd embeds) with one passive IPv4 neighbor
// that fills its RIB and programs nothing. Progress is read over its gRPC
// API. It runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

func main() {
	as := flag.Uint("as", 65002, "local AS")
	rid := flag.String("router-id", "", "router id")
	peer := flag.String("peer", "", "neighbor address")
	peerAS := flag.Uint("peer-as", 65001, "neighbor AS")
	apiAddr := flag.String("api", "127.0.0.1:50051", "gRPC API address")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	flag.Parse()
	if err := run(uint32(*as), *rid, *peer, uint32(*peerAS), *apiAddr, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "gobgprib:", err)
		os.Exit(1)
	}
}

func run(as uint32, rid, peer string, peerAS uint32, apiAddr, cpuprofile string) error {
	if rid == "" || peer == "" {
		return fmt.Errorf("--router-id and --peer are required")
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := server.NewBgpServer(server.GrpcListenAddress(apiAddr))
	go s.Serve()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: as, RouterId: rid, ListenPort: 179}}); err != nil {
		return fmt.Errorf("start bgp: %w", err)
	}
	ipv4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: peer, PeerAsn: peerAS},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 180, KeepaliveInterval: 60}},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: ipv4, Enabled: true}}},
	}})
	if err != nil {
		return fmt.Errorf("add neighbor %s: %w", peer, err)
	}
	<-ctx.Done()
	return nil
}
