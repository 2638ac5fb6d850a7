#!/usr/bin/env bash
# Installs the test oracles (qemu, ntfs-3g, hivex, sleuthkit, libvirt tools...).
# qemu-system-x86 must match the machine's qemu-utils, which comes from the
# distribution's backports suite, so we add that suite using the mirror URI
# already configured in /etc/apt/sources.list.d/debian.sources.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

src=/etc/apt/sources.list.d/debian.sources
bp=/etc/apt/sources.list.d/hyper2kvm-backports.sources
if [ -f "$src" ] && [ ! -f "$bp" ]; then
  uri=$(awk '/^URIs:/ {print $2; exit}' "$src")
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: ${codename}-backports"
    echo "Components: main"
    [ -n "$keyring" ] && echo "Signed-By: $keyring"
  } | $SUDO tee "$bp" >/dev/null
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

$SUDO apt-get update -qq
# qemu from backports (same version as qemu-utils); seabios/ovmf alongside.
$SUDO apt-get install -y -qq -t "${codename}-backports" qemu-system-x86 qemu-utils seabios ovmf >/dev/null
$SUDO apt-get install -y -qq \
  nasm syslinux-common mtools dosfstools fdisk gdisk xorriso genisoimage xz-utils file \
  ntfs-3g sleuthkit libhivex-bin libwin-hivex-perl reglookup \
  libregf-utils libfsntfs-utils libvmdk-utils libvhdi-utils libqcow-utils \
  libvirt-clients libvirt-daemon libxml2-utils swtpm swtpm-tools debootstrap python3-pip \
  groff-base e2fsprogs xfsprogs btrfs-progs cpio zstd initramfs-tools-core lvm2 >/dev/null
# bench/convert.sh: GNU time (peak RSS of each run).
$SUDO apt-get install -y -qq time >/dev/null
python3 -m pip install -q regipy >/dev/null 2>&1 || pip install -q regipy >/dev/null
echo "install-deps: done"
