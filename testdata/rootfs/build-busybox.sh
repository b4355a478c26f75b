#!/usr/bin/env bash
# build-busybox.sh [DEST]: builds the test root filesystem of the runc
# isolator from Debian's busybox-static package (no image registry is
# reachable from CI): /bin/busybox with a link per applet, /etc/passwd and
# /etc/group with root and nobody, and the mount points a container needs.
# DEST defaults to $CORRAL_ROOTFS_CACHE or ~/.cache/corral/rootfs-busybox,
# outside the clone; a complete one already there is kept.
set -euo pipefail
dest="${1:-${CORRAL_ROOTFS_CACHE:-$HOME/.cache/corral/rootfs-busybox}}"
if [ -f "$dest/.complete" ] && [ -x "$dest/bin/busybox" ]; then
	echo "$dest"
	exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
deb="$(ls /var/cache/apt/archives/busybox-static_*.deb 2>/dev/null | head -n 1 || true)"
if [ -z "$deb" ]; then
	# apt-get download fetches the .deb alone (nothing is installed); the
	# package lists may need an update on a fresh machine.
	(cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1) ||
		{ apt-get update -qq >/dev/null && (cd "$tmp" && apt-get download busybox-static >/dev/null); }
	deb="$(ls "$tmp"/busybox-static_*.deb | head -n 1)"
fi
dpkg-deb -x "$deb" "$tmp/pkg"
root="$tmp/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,mnt/sandbox}
cp "$tmp/pkg/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$root/$(dirname "$applet")"
	ln -sf /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo busybox-rootfs >"$root/etc/hostname"
chmod 1777 "$root/tmp"
touch "$root/.complete"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial" && mv "$root" "$dest.partial"
rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "$dest"
