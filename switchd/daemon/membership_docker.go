package daemon

import (
	"hash/fnv"
	"slices"
	"strings"

	"github.com/switchd/switchd/switchd/config"
)

// dockerGroupBit marks the ids of Docker networks' groups: a network's
// group has no configured id, so every host derives the same one from its
// name (FNV-1a with the top bit set). Configured groups should keep below
// it.
const dockerGroupBit = 1 << 31

// dockerGroupID is the BGP group id of Docker group label.
func dockerGroupID(label string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(label))
	return h.Sum32() | dockerGroupBit
}

// withDockerGroups adds a group per Docker network group, selecting its
// members as its policy does, so members on other hosts are members in
// BGP too: a Docker network's containers reach each other across hosts.
func (d *Daemon) withDockerGroups(gs []config.Group) []config.Group {
	if d.dockerDrv == nil {
		return gs
	}
	out := slices.Clone(gs)
	for _, p := range d.dockerDrv.Policies() {
		label, ok := strings.CutPrefix(p.Name, "docker-")
		if !ok {
			continue
		}
		out = append(out, config.Group{Name: p.Name, ID: dockerGroupID(label), Selector: p.Selector})
	}
	return out
}
