package platform

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Port offload: whether a switch ASIC forwards for an interface, and the
// kernel's hw-tc-offload feature of it. On a switchdev box every
// front-panel port has a phys_switch_id (shared by the ports of one ASIC)
// and the driver offloads the routes through it; hw-tc-offload says
// whether tc filters go to the hardware too (mlxsw and prestera turn it
// on, a veth has it off and fixed).

// HWTCOffload is the ethtool feature (NETIF_F_HW_TC) of tc offload.
const HWTCOffload = "hw-tc-offload"

// PortOffload is one interface's hardware offload.
type PortOffload struct {
	// Switchdev: the interface is a port of a switch ASIC
	// (phys_switch_id present), SwitchID that id, PortName the driver's
	// phys_port_name.
	Switchdev          bool
	SwitchID, PortName string
	// HWTC is the hw-tc-offload feature, if it was read.
	HWTC *Feature
}

// SwitchdevPort reads the switchdev identity of the interface name from
// /sys/class/net under root (a fake tree in tests; on a real box "/",
// whose sysfs shows the interfaces of the namespace that mounted it).
func SwitchdevPort(root, name string) PortOffload {
	d := filepath.Join(root, "sys/class/net", name)
	id := readTrim(filepath.Join(d, "phys_switch_id"))
	if id == "" {
		return PortOffload{}
	}
	return PortOffload{Switchdev: true, SwitchID: id, PortName: readTrim(filepath.Join(d, "phys_port_name"))}
}

// Feature is the state of one ethtool feature, as `ethtool -k` prints it.
type Feature struct {
	Active bool // on
	Fixed  bool // cannot be changed ("[fixed]")
}

func (f Feature) String() string {
	s := "off"
	if f.Active {
		s = "on"
	}
	if f.Fixed {
		s += " [fixed]"
	}
	return s
}

// FeatureReader reads interfaces' ethtool features over ethtool's
// generic netlink family (ETHTOOL_MSG_FEATURES_GET, Linux ≥ 5.6) in one
// namespace. Its methods should only be called from one goroutine.
type FeatureReader struct {
	c      *pnl.Conn
	family uint16
	// names are the features the kernel knows (its netdev-features
	// string set), read once.
	names []string
}

// NewFeatureReader opens a generic netlink socket in ns (nil: the
// calling thread's) and resolves the ethtool family.
func NewFeatureReader(ns *pnl.NS) (*FeatureReader, error) {
	c, err := pnl.Dial(ns, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("ethtool features: %w", err)
	}
	id, err := genlFamily(c, unix.ETHTOOL_GENL_NAME)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ethtool features: %w", err)
	}
	r := &FeatureReader{c: c, family: id}
	if r.names, err = r.featureNames(); err != nil {
		c.Close()
		return nil, fmt.Errorf("ethtool features: %w", err)
	}
	return r, nil
}

// ethSSFeatures is ETH_SS_FEATURES, the string set of the netdev
// features' names (x/sys/unix lacks it).
const ethSSFeatures = 4

// featureNames reads the kernel's netdev-features string set: the names
// of every feature, whether an interface has it or not.
func (r *FeatureReader) featureNames() ([]string, error) {
	var b pnl.Batch
	b.Begin(r.family, 0)
	b.Raw(unix.ETHTOOL_MSG_STRSET_GET, unix.ETHTOOL_GENL_VERSION, 0, 0)
	b.EndNest(b.Nest(unix.ETHTOOL_A_STRSET_HEADER | unix.NLA_F_NESTED)) // no device: the global sets
	sets := b.Nest(unix.ETHTOOL_A_STRSET_STRINGSETS | unix.NLA_F_NESTED)
	set := b.Nest(unix.ETHTOOL_A_STRINGSETS_STRINGSET | unix.NLA_F_NESTED)
	b.AttrU32(unix.ETHTOOL_A_STRINGSET_ID, ethSSFeatures)
	b.EndNest(set)
	b.EndNest(sets)
	b.End()
	var names []string
	err := genlRequest(r.c, &b, func(attrs []byte) (err error) {
		names, err = parseStringSet(attrs)
		return err
	})
	if err == nil && len(names) == 0 {
		err = errors.New("empty netdev-features string set")
	}
	if err != nil {
		return nil, fmt.Errorf("feature names: %w", err)
	}
	return names, nil
}

// parseStringSet decodes an ETHTOOL_MSG_STRSET_GET reply's strings (of
// its one set).
func parseStringSet(b []byte) ([]string, error) {
	var names []string
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	// stringsets / stringset / strings / string / value: each level a
	// nest holding the next.
	var descend func(ad *netlink.AttributeDecoder, path []uint16) error
	descend = func(ad *netlink.AttributeDecoder, path []uint16) error {
		for ad.Next() {
			if ad.Type() != path[0] {
				continue
			}
			if len(path) == 1 {
				names = append(names, ad.String())
				continue
			}
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return descend(nad, path[1:]) })
		}
		return ad.Err()
	}
	err = descend(ad, []uint16{unix.ETHTOOL_A_STRSET_STRINGSETS, unix.ETHTOOL_A_STRINGSETS_STRINGSET,
		unix.ETHTOOL_A_STRINGSET_STRINGS, unix.ETHTOOL_A_STRINGS_STRING, unix.ETHTOOL_A_STRING_VALUE})
	return names, err
}

// Close closes the socket.
func (r *FeatureReader) Close() error { return r.c.Close() }

// genlRequest sends the one request in b and hands f the attributes of
// its answer (after the genetlink header); the kernel's error, or f's,
// is returned.
func genlRequest(c *pnl.Conn, b *pnl.Batch, f func(attrs []byte) error) error {
	var rerr error
	err := c.Exec(b, func(_ int, m netlink.Message, err error) {
		switch {
		case err != nil:
			rerr = err
		case len(m.Data) < 4:
			rerr = errors.New("short answer")
		default:
			rerr = f(m.Data[4:])
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// genlFamily resolves a generic netlink family's id by name.
func genlFamily(c *pnl.Conn, name string) (uint16, error) {
	var b pnl.Batch
	b.Begin(unix.GENL_ID_CTRL, 0)
	b.Raw(unix.CTRL_CMD_GETFAMILY, 1, 0, 0)
	b.AttrString(unix.CTRL_ATTR_FAMILY_NAME, name)
	b.End()
	var id uint16
	err := genlRequest(c, &b, func(attrs []byte) error {
		ad, err := netlink.NewAttributeDecoder(attrs)
		if err != nil {
			return err
		}
		for ad.Next() {
			if ad.Type() == unix.CTRL_ATTR_FAMILY_ID {
				id = ad.Uint16()
			}
		}
		return ad.Err()
	})
	if err == nil && id == 0 {
		err = errors.New("no family id in the answer")
	}
	if err != nil {
		return 0, fmt.Errorf("generic netlink family %s: %w", name, err)
	}
	return id, nil
}

// Features reads the ethtool features of the interface ifname, by name.
func (r *FeatureReader) Features(ifname string) (map[string]Feature, error) {
	var b pnl.Batch
	b.Begin(r.family, 0)
	b.Raw(unix.ETHTOOL_MSG_FEATURES_GET, unix.ETHTOOL_GENL_VERSION, 0, 0)
	// ethtool's policies are strict: a nest must say it is one.
	h := b.Nest(unix.ETHTOOL_A_FEATURES_HEADER | unix.NLA_F_NESTED)
	b.AttrString(unix.ETHTOOL_A_HEADER_DEV_NAME, ifname)
	b.EndNest(h)
	b.End()
	var out map[string]Feature
	err := genlRequest(r.c, &b, func(attrs []byte) (err error) {
		out, err = parseFeatures(attrs, r.names)
		return err
	})
	if err == nil && out == nil {
		err = errors.New("no answer")
	}
	if err != nil {
		return nil, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	return out, nil
}

// Feature reads one feature of ifname by its name (HWTCOffload); a name
// the kernel does not know is an error.
func (r *FeatureReader) Feature(ifname, name string) (Feature, error) {
	fs, err := r.Features(ifname)
	if err != nil {
		return Feature{}, err
	}
	f, ok := fs[name]
	if !ok {
		return Feature{}, fmt.Errorf("ethtool features of %s: the kernel knows no feature %q", ifname, name)
	}
	return f, nil
}

// parseFeatures decodes the attributes of an ETHTOOL_MSG_FEATURES_GET
// reply (after the genetlink header), bitsets in the verbose form (bit
// names given), into the state of each feature of names (the kernel's
// string set; a reply lists only the bits set): on if in ACTIVE, fixed
// if not in HW (the features the user may change) or in NOCHANGE, as
// ethtool(8) prints them.
func parseFeatures(b []byte, names []string) (map[string]Feature, error) {
	var hw, active, nochange map[string]bool
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	for ad.Next() {
		var dst *map[string]bool
		switch ad.Type() {
		case unix.ETHTOOL_A_FEATURES_HW:
			dst = &hw
		case unix.ETHTOOL_A_FEATURES_ACTIVE:
			dst = &active
		case unix.ETHTOOL_A_FEATURES_NOCHANGE:
			dst = &nochange
		default:
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			*dst, err = parseBitset(nad)
			return err
		})
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	if active == nil {
		return nil, errors.New("no active features in the answer (compact bitsets?)")
	}
	out := make(map[string]Feature, len(names))
	for _, name := range names {
		out[name] = Feature{Active: active[name], Fixed: !hw[name] || nochange[name]}
	}
	return out, nil
}

// parseBitset decodes a verbose bitset: the names of its bits, each true
// if set. Without a mask (ETHTOOL_A_BITSET_NOMASK) the bits listed are
// the set ones; with one, a listed bit is set if it carries a value.
// Every listed name is a key, so the names of the features the kernel
// knows are all there.
func parseBitset(ad *netlink.AttributeDecoder) (map[string]bool, error) {
	noMask := false
	out := map[string]bool{}
	for ad.Next() {
		switch ad.Type() {
		case unix.ETHTOOL_A_BITSET_NOMASK:
			noMask = true
		case unix.ETHTOOL_A_BITSET_BITS:
			ad.Nested(func(bits *netlink.AttributeDecoder) error {
				for bits.Next() {
					if bits.Type() != unix.ETHTOOL_A_BITSET_BITS_BIT {
						continue
					}
					bits.Nested(func(bit *netlink.AttributeDecoder) error {
						name, val := "", false
						for bit.Next() {
							switch bit.Type() {
							case unix.ETHTOOL_A_BITSET_BIT_NAME:
								name = bit.String()
							case unix.ETHTOOL_A_BITSET_BIT_VALUE:
								val = true
							}
						}
						if name != "" {
							out[name] = val
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if noMask {
		for k := range out {
			out[k] = true
		}
	}
	return out, ad.Err()
}
