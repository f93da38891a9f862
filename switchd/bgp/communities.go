package bgp

import (
	"encoding/binary"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Tags of the community attributes in pathDecoder's encoding of them.
const (
	commStandard byte = iota + 1
	commLarge
	commExtended
)

// appendCommKey appends a community attribute's value to a path's key:
// tag, length, value.
func appendCommKey(k []byte, tag byte, v []byte) []byte {
	k = binary.AppendUvarint(append(k, tag), uint64(len(v)))
	return append(k, v...)
}

// appendStandard, appendLarge and appendExtended append an attribute's
// communities in their wire encoding (4, 12 and 8 bytes each).
func appendStandard(k []byte, cs []uint32) []byte {
	k = binary.AppendUvarint(append(k, commStandard), uint64(4*len(cs)))
	for _, c := range cs {
		k = binary.BigEndian.AppendUint32(k, c)
	}
	return k
}

func appendLarge(k []byte, cs []*bgp.LargeCommunity) []byte {
	k = binary.AppendUvarint(append(k, commLarge), uint64(12*len(cs)))
	for _, c := range cs {
		k = binary.BigEndian.AppendUint32(k, c.ASN)
		k = binary.BigEndian.AppendUint32(k, c.LocalData1)
		k = binary.BigEndian.AppendUint32(k, c.LocalData2)
	}
	return k
}

func appendExtended(k []byte, cs []bgp.ExtendedCommunityInterface) []byte {
	var v []byte
	for _, c := range cs {
		// A community that does not encode is left out: the path is
		// still usable, and GoBGP has already parsed it off the wire.
		if w, err := c.Serialize(); err == nil && len(w) == 8 {
			v = append(v, w...)
		}
	}
	return appendCommKey(k, commExtended, v)
}

// decodeCommunities decodes pathDecoder's encoding of a path's community
// attributes: a tag, the length and the wire value of each. It runs once
// per distinct list (commSets).
func decodeCommunities(raw string) *Communities {
	c := &Communities{}
	b := []byte(raw)
	for len(b) > 1 {
		tag := b[0]
		n, l := binary.Uvarint(b[1:])
		if l <= 0 || uint64(len(b)-1-l) < n {
			break
		}
		v := b[1+l : 1+l+int(n)]
		b = b[1+l+int(n):]
		switch tag {
		case commStandard:
			for ; len(v) >= 4; v = v[4:] {
				c.Standard = append(c.Standard, binary.BigEndian.Uint32(v))
			}
		case commLarge:
			for ; len(v) >= 12; v = v[12:] {
				c.Large = append(c.Large, LargeCommunity{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:]), binary.BigEndian.Uint32(v[8:])})
			}
		case commExtended:
			for ; len(v) >= 8; v = v[8:] {
				c.Extended = append(c.Extended, binary.BigEndian.Uint64(v))
			}
		}
	}
	if len(c.Standard) == 0 && len(c.Large) == 0 && len(c.Extended) == 0 {
		return nil
	}
	return c
}
