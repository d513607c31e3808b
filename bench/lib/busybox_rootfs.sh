# shellcheck shell=bash
# The root filesystem every container benchmark runs: busybox-static with every applet
# linked, and a root user and group. Source this file and call busybox_rootfs DIR.

busybox_rootfs() {
	local rootfs="$1" applet
	mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root}
	cp /usr/bin/busybox "$rootfs/bin/busybox"
	for applet in $(/usr/bin/busybox --list); do
		[[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\n' >"$rootfs/etc/group"
}
