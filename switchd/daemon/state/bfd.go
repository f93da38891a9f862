package state

import (
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bfd"
)

// BFDAnyInterface is the /bfd/interfaces/interface id of sessions bound
// to no link (multihop, and single hop left to the kernel's routing):
// OpenConfig lists peers per interface only.
const BFDAnyInterface = "any"

// BFD publishes the engine's sessions (bfd.Engine.Sessions) at
// /bfd/interfaces/interface[id=IF]/peers/peer[local-discriminator=N],
// IF being the session's link or BFDAnyInterface, and deletes the
// session subtrees published before that are gone.
func (t *Tree) BFD(sessions []bfd.Session) error {
	var errs joinErrs
	cur := make(map[string]bool, len(sessions))
	for _, s := range sessions {
		p := bfdPeerPath(s)
		cur[pathString(p)] = true
		errs.add(t.publish(p, BFDPeer(s)))
	}
	for k, st := range t.subtrees {
		if strings.HasPrefix(k, "bfd/") && !cur[k] {
			errs.add(t.publish(st.prefix, nil))
		}
	}
	return errs.err()
}

func bfdPeerPath(s bfd.Session) []*gpb.PathElem {
	id := s.Config.Interface
	if id == "" {
		id = BFDAnyInterface
	}
	return []*gpb.PathElem{elem("bfd"), elem("interfaces"), elem("interface", "id", id),
		elem("peers"), elem("peer", "local-discriminator", strconv.FormatUint(uint64(s.LocalDiscr), 10))}
}

// BFDPeer renders one session as OpenConfig's peer state.
func BFDPeer(s bfd.Session) *oc.Bfd_Interface_Peer {
	p := &oc.Bfd_Interface_Peer{
		LocalDiscriminator:           ygot.String(strconv.FormatUint(uint64(s.LocalDiscr), 10)),
		RemoteDiscriminator:          ygot.String(strconv.FormatUint(uint64(s.RemoteDiscr), 10)),
		RemoteAddress:                ygot.String(s.Config.Peer.String()),
		SessionState:                 bfdState(s.State),
		RemoteSessionState:           bfdState(s.RemoteState),
		LocalDiagnosticCode:          bfdDiag(s.LocalDiag),
		RemoteDiagnosticCode:         bfdDiag(s.RemoteDiag),
		RemoteMinimumReceiveInterval: ygot.Uint32(uint32(s.RemoteRequiredMinRx.Microseconds())),
		UpTransitions:                ygot.Uint64(s.UpCount),
		FailureTransitions:           ygot.Uint64(s.DownCount),
		DemandModeRequested:          ygot.Bool(false),
		RemoteAuthenticationEnabled:  ygot.Bool(false),
		Async: &oc.Bfd_Interface_Peer_Async{
			ReceivedPackets:    ygot.Uint64(s.RxPackets),
			TransmittedPackets: ygot.Uint64(s.TxPackets),
		},
	}
	if s.Config.Local.IsValid() {
		p.LocalAddress = ygot.String(s.Config.Local.String())
	}
	if !s.LastDown.IsZero() {
		p.LastFailureTime = ygot.Uint64(uint64(s.LastDown.UnixNano()))
	}
	return p
}

func bfdState(s bfd.State) oc.E_Bfd_BfdSessionState {
	switch s {
	case bfd.Up:
		return oc.Bfd_BfdSessionState_UP
	case bfd.Init:
		return oc.Bfd_BfdSessionState_INIT
	case bfd.AdminDown:
		return oc.Bfd_BfdSessionState_ADMIN_DOWN
	}
	return oc.Bfd_BfdSessionState_DOWN
}

// bfdDiags maps RFC 5880's diagnostic codes (the index) to OpenConfig's.
var bfdDiags = [...]oc.E_Bfd_BfdDiagnosticCode{
	oc.Bfd_BfdDiagnosticCode_NO_DIAGNOSTIC, oc.Bfd_BfdDiagnosticCode_DETECTION_TIMEOUT,
	oc.Bfd_BfdDiagnosticCode_ECHO_FAILED, oc.Bfd_BfdDiagnosticCode_NEIGHBOR_DOWN,
	oc.Bfd_BfdDiagnosticCode_FORWARDING_RESET, oc.Bfd_BfdDiagnosticCode_PATH_DOWN,
	oc.Bfd_BfdDiagnosticCode_CONCATENATED_PATH_DOWN, oc.Bfd_BfdDiagnosticCode_ADMIN_DOWN,
	oc.Bfd_BfdDiagnosticCode_REVERSE_CONCATENATED_PATH_DOWN,
}

func bfdDiag(d bfd.Diag) oc.E_Bfd_BfdDiagnosticCode {
	if int(d) < len(bfdDiags) {
		return bfdDiags[d]
	}
	return oc.Bfd_BfdDiagnosticCode_UNSET
}
