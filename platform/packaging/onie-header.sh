#!/bin/sh
# switchd ONIE NOS installer: this shell stub, a line "exit_marker", then a
# gzip'd tar holding installer/. ONIE runs it with onie_platform and the
# other onie_* variables exported (onie-nos-install); it checks the tar's
# sha1, unpacks it into a temporary directory and runs installer/install.sh.
set -e
payload_sha1=@PAYLOAD_SHA1@
marker=$(sed -n '/^exit_marker$/{=;q}' "$0")
sum=$(tail -n +$((marker + 1)) "$0" | sha1sum | cut -d' ' -f1)
if [ "$sum" != "$payload_sha1" ]; then
	echo "switchd installer: payload sha1 $sum, want $payload_sha1: image corrupt" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -n +$((marker + 1)) "$0" | tar -xzf - -C "$tmp"
rc=0
sh "$tmp/installer/install.sh" "$@" || rc=$?
exit $rc
exit_marker
