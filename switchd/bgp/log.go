package bgp

import (
	"context"
	"log/slog"
)

// gobgpHandler is the slog.Handler GoBGP v4 logs through
// (server.LoggerOption): records go to the speaker's handler, and the
// session records the speaker acts on (peerdown.go, sessions.go) are read
// on the way, whatever the level. GoBGP adds a peer's "Key" with
// Logger.With, so the handler keeps the attributes it was given.
type gobgpHandler struct {
	next  slog.Handler
	on    func(msg string, fields map[string]any) // a session record (peerEventLogger)
	attrs []slog.Attr                             // from WithAttrs, outermost first
	group bool                                    // in a group: records keep their attrs nested, none is read
}

// Enabled lets through the levels of the records the speaker reads (Info
// and Warn) whatever the speaker's handler takes. GoBGP's debug records
// (some per message) are built only when debug logging is on, so the debug
// record of a failed connection attempt (sessions.go) is read only then.
func (h *gobgpHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (h.on != nil && l >= slog.LevelInfo) || h.next.Enabled(ctx, l)
}

func (h *gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.on != nil && !h.group && sessionMessage(r.Message) {
		fields := make(map[string]any, len(h.attrs)+r.NumAttrs())
		for _, a := range h.attrs {
			fields[a.Key] = a.Value.Resolve().Any()
		}
		r.Attrs(func(a slog.Attr) bool {
			fields[a.Key] = a.Value.Resolve().Any()
			return true
		})
		h.on(r.Message, fields)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *gobgpHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if !h.group {
		c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	}
	return &c
}

func (h *gobgpHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = c.group || name != ""
	return &c
}
