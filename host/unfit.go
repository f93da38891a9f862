package host

// warnUnfit logs the addresses of a record loaded at start that a request
// could not get today. The endpoint is kept: a restart must not cut a
// running workload off behind its orchestrator's back (the orchestrator or
// the operator deletes it, and a corrected config can make it legitimate
// again). What changes is what is announced: an address in no pool and no
// static prefix (an older switchd took it unchecked, or its static prefix
// was removed) is not announced, because this host has no authority for it
// and its /32 or /128 would beat the real owner's block.
func (m *Manager) warnUnfit(ep Endpoint) {
	for _, a := range ep.Addrs() {
		switch b := m.ipam.blockOf(a); {
		case m.ipam.permits(a):
		case b.IsValid():
			m.log.Warn("endpoint address is in a block of a pool no longer configured: kept, and its block announced until its last workload goes",
				"endpoint", ep.ID, "addr", a, "block", b)
		default:
			m.log.Error("endpoint address is in no pool and no static prefix: kept on its interface but not announced; delete the workload, or configure a pool or static prefix covering it and restart",
				"endpoint", ep.ID, "addr", a)
		}
	}
}
