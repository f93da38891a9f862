package bgp

import (
	"encoding/binary"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
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

// decodeCommunities decodes pathDecoder's encoding of a path's community
// attributes: a tag, the length and the protobuf value of each. It runs
// once per distinct list (commSets), so it uses the ordinary unmarshalling.
// An attribute that does not decode is left out: the path is still
// usable, and GoBGP has already parsed it off the wire.
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
			var a api.CommunitiesAttribute
			if proto.Unmarshal(v, &a) == nil {
				c.Standard = append(c.Standard, a.Communities...)
			}
		case commLarge:
			var a api.LargeCommunitiesAttribute
			if proto.Unmarshal(v, &a) == nil {
				for _, x := range a.Communities {
					c.Large = append(c.Large, LargeCommunity{x.GlobalAdmin, x.LocalData1, x.LocalData2})
				}
			}
		case commExtended:
			c.Extended = append(c.Extended, extendedCommunities(v)...)
		}
	}
	if len(c.Standard) == 0 && len(c.Large) == 0 && len(c.Extended) == 0 {
		return nil
	}
	return c
}

// extendedCommunities decodes an api.ExtendedCommunitiesAttribute (each
// community its own Any of one of several types) into wire values, with
// GoBGP's own conversion.
func extendedCommunities(v []byte) []uint64 {
	attr, err := apiutil.UnmarshalAttribute(&anypb.Any{TypeUrl: urlExtComm, Value: v})
	if err != nil {
		return nil
	}
	ext, ok := attr.(*bgp.PathAttributeExtendedCommunities)
	if !ok {
		return nil
	}
	var out []uint64
	for _, x := range ext.Value {
		if w, err := x.Serialize(); err == nil && len(w) == 8 {
			out = append(out, binary.BigEndian.Uint64(w))
		}
	}
	return out
}
