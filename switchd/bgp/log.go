package bgp

import (
	"context"
	"log/slog"
	"sort"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter lets GoBGP log through a *slog.Logger. GoBGP asks GetLevel
// before building expensive debug messages, so the level reported is the
// lowest one the slog handler accepts.
type slogAdapter struct {
	l *slog.Logger
}

var _ gobgplog.Logger = slogAdapter{}

func (a slogAdapter) log(level slog.Level, msg string, fields gobgplog.Fields) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable output; GoBGP's fields are a map
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	a.l.LogAttrs(ctx, level, msg, attrs...)
}

func (a slogAdapter) Panic(msg string, fields gobgplog.Fields) {
	a.log(slog.LevelError, msg, fields)
	panic("gobgp: " + msg)
}

// Fatal only logs: an embedded speaker must not end the process. GoBGP
// calls Fatal from its config-file and gRPC paths, which switchd does not use.
func (a slogAdapter) Fatal(msg string, fields gobgplog.Fields) {
	a.log(slog.LevelError+4, msg, fields)
}

func (a slogAdapter) Error(msg string, fields gobgplog.Fields) {
	a.log(slog.LevelError, msg, fields)
}

// withdrawNotInstalled is GoBGP's warning for a withdrawal of a path its
// Loc-RIB does not hold. An import policy reject is such a withdrawal
// (server.go propagateUpdate), and the loop check is one (loop.go): in a
// fabric peers send our own routes back all the time. Not worth a warning.
const withdrawNotInstalled = "No matching path for withdraw found, may be path was not installed into table"

func (a slogAdapter) Warn(msg string, fields gobgplog.Fields) {
	if msg == withdrawNotInstalled {
		a.log(slog.LevelDebug, msg, fields)
		return
	}
	a.log(slog.LevelWarn, msg, fields)
}

func (a slogAdapter) Info(msg string, fields gobgplog.Fields) {
	a.log(slog.LevelInfo, msg, fields)
}

func (a slogAdapter) Debug(msg string, fields gobgplog.Fields) {
	a.log(slog.LevelDebug, msg, fields)
}

// SetLevel is ignored: the slog handler decides what is logged.
func (a slogAdapter) SetLevel(gobgplog.LogLevel) {}

func (a slogAdapter) GetLevel() gobgplog.LogLevel {
	ctx := context.Background()
	switch {
	case a.l.Enabled(ctx, slog.LevelDebug):
		return gobgplog.DebugLevel
	case a.l.Enabled(ctx, slog.LevelInfo):
		return gobgplog.InfoLevel
	case a.l.Enabled(ctx, slog.LevelWarn):
		return gobgplog.WarnLevel
	case a.l.Enabled(ctx, slog.LevelError):
		return gobgplog.ErrorLevel
	}
	return gobgplog.FatalLevel
}
