package server

import (
	"context"
	"log/slog"

	"github.com/osrg/gobgp/v4/internal/pkg/table"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
)

// EndDeferral ends the restarting speaker's deferral now (RFC 4724 4.1,
// the Selection_Deferral_Timer's case): every peer added with
// LocalRestarting leaves that mode, and each one established is sent its
// routes and End-of-RIB. A peer not established yet is sent them when its
// session comes up, as any peer is. (switchd, PATCHES.md.)
//
// GoBGP ends the deferral by itself only when every configured
// graceful-restart peer is established and has sent End-of-RIB, or at a
// peer's DeferralTime after its session came up. A peer that cannot come up
// (its link is down) so holds back every other peer's routes for the whole
// DeferralTime, whatever the caller knows.
//
// It runs as a management operation, under the server's exclusive lock,
// so no FSM handler is half-way through a state change meanwhile. Whether
// a peer is established is read from its configuration's session state,
// which the handler sets first: a peer whose handler has taken the
// Established branch and not yet published the state is sent its routes
// here, and one whose handler has not run yet finds LocalRestarting clear
// and sends them itself.
func (s *BgpServer) EndDeferral(ctx context.Context) error {
	return s.mgmtOperation(func() error {
		ended := 0
		for _, p := range s.neighborMap {
			p.fsm.lock.Lock()
			conf := p.fsm.pConf.ReadCopy()
			restarting := conf.GracefulRestart.State.LocalRestarting
			conf.GracefulRestart.State.LocalRestarting = false
			p.fsm.pConf.Update(&conf)
			p.fsm.lock.Unlock()
			if !restarting {
				continue
			}
			ended++
			if conf.State.SessionState != oc.SESSION_STATE_ESTABLISHED {
				continue
			}
			s.getBestFromLocalCallback(p, p.negotiatedRFList(), true, true, func(paths []*table.Path, _ []*table.Path) {
				if len(paths) > 0 {
					p.updateRoutes(paths...)
					sendfsmOutgoingMsg(p, paths)
				}
			})
		}
		if ended > 0 {
			s.logger.Info("deferral ended on request", slog.String("Topic", "Server"), slog.Int("Peers", ended))
		}
		return nil
	}, false)
}
