#!/bin/sh
# Installs switchd onto a NOS root from the ONIE installer image (see
# onie-header.sh). The target root is the first argument or $target_root;
# with neither, the partition labelled SWITCHD-ROOT is mounted (partitioning
# belongs to the NOS image that carries switchd, not to this installer).
set -e
here=$(cd "$(dirname "$0")" && pwd)

if [ -z "$onie_platform" ]; then
	echo "switchd installer: onie_platform is not set: run this image from ONIE (onie-nos-install)" >&2
	exit 1
fi
if ! grep -qx "$onie_platform" "$here/platforms"; then
	echo "switchd installer: platform $onie_platform is not supported; supported:" >&2
	sed 's/^/  /' "$here/platforms" >&2
	exit 1
fi
echo "switchd installer: platform $onie_platform (machine ${onie_machine:-?}, rev ${onie_machine_rev:-?})"

target=${1:-$target_root}
if [ -z "$target" ]; then
	dev=$(blkid -L SWITCHD-ROOT 2>/dev/null || true)
	if [ -z "$dev" ]; then
		echo "switchd installer: no target root given and no partition labelled SWITCHD-ROOT" >&2
		exit 1
	fi
	target=$(mktemp -d)
	mount "$dev" "$target"
	trap 'umount "$target"; rmdir "$target"' EXIT
fi
if [ ! -d "$target" ]; then
	echo "switchd installer: target root $target is not a directory" >&2
	exit 1
fi

# Entry by entry, so the target root's own mode and times are left alone.
for e in "$here/root"/*; do
	cp -a "$e" "$target/"
done
mkdir -p "$target/etc/systemd/system/multi-user.target.wants"
ln -sf /usr/lib/systemd/system/switchd.service \
	"$target/etc/systemd/system/multi-user.target.wants/switchd.service"
# platform detection reads the NOS's copy of ONIE's machine.conf.
if [ ! -e "$target/etc/machine.conf" ]; then
	env | grep '^onie_' | sort > "$target/etc/machine.conf"
fi
echo "switchd installer: installed into $target; switchd.service enabled"
