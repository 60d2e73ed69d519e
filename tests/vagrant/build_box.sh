#!/usr/bin/env bash
# Build a small Debian bookworm Vagrant box for the libvirt provider, locally, without Vagrant Cloud.
#
#   tests/vagrant/build_box.sh OUT_DIR
#
# Writes OUT_DIR/cilium-labs-test.box (libvirt box: metadata.json + box.img qcow2), and OUT_DIR/vmlinuz and
# OUT_DIR/initrd.img for direct kernel boot (the image has no partition table or bootloader, which saves a
# grub install and a boot menu under software emulation). The kernel is Debian's linux-image-amd64 from the
# host's /boot (installed from Debian if missing); its modules are copied into the image so the guest has
# vxlan and geneve (this host's own kernel has no Geneve). Re-running with the same script and kernel reuses
# the box (OUT_DIR/box.stamp).
#
# Traps this script avoids (see shared/reference/test-infrastructure.md section 2):
# * /etc/machine-id is left EMPTY: with one baked-in id every VM derives the same MAC for vxlan/geneve devices
#   and the kernel drops all tunnel RX (inner source MAC == own MAC).
# * bookworm is merged-/usr: modules go to usr/lib/modules, created first.
# * the `vagrant` user has Vagrant's insecure public key and password-less sudo; Vagrant swaps the key on
#   first boot when ssh.insert_key is true.
set -euo pipefail

OUT=${1:?usage: build_box.sh OUT_DIR}
SUITE=${CILIUM_LABS_BOX_SUITE:-bookworm}
MIRROR=${CILIUM_LABS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd-sysv,openssh-server,sudo,iproute2,iputils-ping,ifupdown,isc-dhcp-client,kmod,udev,tcpdump,procps
PACKAGES=$PACKAGES,libnss-myhostname

[ "$(id -u)" = 0 ] || { echo "build_box.sh: must run as root (debootstrap, chroot)" >&2; exit 2; }
for tool in debootstrap mke2fs qemu-img depmod mkinitramfs; do
  command -v "$tool" >/dev/null || { echo "build_box.sh: '$tool' is missing (apt-get install debootstrap e2fsprogs qemu-utils kmod)" >&2; exit 2; }
done

kernel=$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$kernel" ]; then
  echo "build_box.sh: no Debian kernel in /boot; installing linux-image-amd64" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-image-amd64 >/dev/null
  kernel=$(ls -1 /boot/vmlinuz-*-amd64 | sort -V | tail -n1)
fi
kver=${kernel#/boot/vmlinuz-}
initrd=/boot/initrd.img-$kver
[ -f "$initrd" ] && [ -d "/lib/modules/$kver" ] || { echo "build_box.sh: $initrd or /lib/modules/$kver missing" >&2; exit 2; }

VAGRANT_PUB=$(ls -1 /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1 || true)
[ -n "$VAGRANT_PUB" ] || { echo "build_box.sh: Vagrant's insecure public key not found (is vagrant installed?)" >&2; exit 2; }

key="$(sha256sum "$0" | cut -c1-16)-$SUITE-$kver"
mkdir -p "$OUT"
if [ -f "$OUT/box.stamp" ] && [ "$(cat "$OUT/box.stamp")" = "$key" ] && [ -f "$OUT/cilium-labs-test.box" ]; then
  echo "build_box.sh: reusing $OUT/cilium-labs-test.box ($key)"
  exit 0
fi
rm -f "$OUT/box.stamp"

work=$(mktemp -d "$OUT/build.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
t0=$SECONDS

echo "build_box.sh: debootstrap $SUITE (minbase + $PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
echo "build_box.sh: debootstrap done in $((SECONDS - t0)) s"

# --- the guest system -------------------------------------------------------------------------------------
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo vagrant
echo 'vagrant:vagrant' | chroot "$root" chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$VAGRANT_PUB" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh

echo '/dev/vda / ext4 rw,relatime 0 1' >"$root/etc/fstab"
cat >"$root/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug eth0
iface eth0 inet dhcp
EOF
echo cilium-labs-box >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcilium-labs-box\n' >"$root/etc/hosts"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Per-VM host keys, made on first boot instead of every VM sharing the build's keys. Only ECDSA: an RSA key
# takes tens of seconds to generate under software emulation.
printf 'UseDNS no\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ecdsa_key || ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key'
ExecStartPre=/usr/sbin/sshd -t
EOF
# Under software emulation every unit costs seconds of the one vCPU: nothing periodic, no extra gettys, no
# debug/hugepage/mqueue mounts, no module preloads the test never uses, a journal kept in memory only.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer \
  e2scrub_reap.service systemd-tmpfiles-clean.timer getty-static.service getty@tty1.service \
  dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  modprobe@dm_mod.service modprobe@efi_pstore.service modprobe@fuse.service modprobe@drm.service \
  systemd-remount-fs.service systemd-update-utmp.service systemd-journal-flush.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/volatile.conf"
# `hostname -f` must answer the hostname the kernel command line gives (systemd.hostname=), so Vagrant sees the
# name already set and skips its rename, which restarts every interface (a minute under emulation).
grep -q myhostname "$root/etc/nsswitch.conf" || sed -i 's/^hosts:.*/& myhostname/' "$root/etc/nsswitch.conf"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

# --- kernel modules for the guest (network and filesystems; no GPU, sound, wireless, NIC drivers) ----------
mods=$root/usr/lib/modules/$kver
mkdir -p "$mods"
(cd "/lib/modules/$kver" && tar --exclude='./kernel/drivers/gpu' --exclude='./kernel/drivers/media' \
  --exclude='./kernel/drivers/infiniband' --exclude='./kernel/drivers/net/wireless' \
  --exclude='./kernel/drivers/net/ethernet' --exclude='./kernel/drivers/staging' --exclude='./kernel/drivers/iio' \
  --exclude='./kernel/drivers/bluetooth' --exclude='./kernel/drivers/usb' --exclude='./kernel/sound' \
  --exclude='./kernel/drivers/scsi' --exclude='./kernel/drivers/hid' --exclude='./kernel/drivers/input' \
  -cf - .) | tar -C "$mods" -xf -
depmod -b "$root" "$kver"
[ -n "$(find "$mods" -name 'geneve.ko*' -print -quit)" ] || { echo "build_box.sh: geneve module missing" >&2; exit 1; }

# --- disk image and box ------------------------------------------------------------------------------------
truncate -s 3G "$work/disk.raw"
mke2fs -q -t ext4 -L root -d "$root" "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"
echo '{"provider": "libvirt", "format": "qcow2", "virtual_size": 3}' >"$work/metadata.json"
cat >"$work/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
tar -C "$work" -cf "$work/cilium-labs-test.box" metadata.json Vagrantfile box.img
mv -f "$work/cilium-labs-test.box" "$OUT/cilium-labs-test.box"
cp -f "$kernel" "$OUT/vmlinuz"
# A small initramfs with only what mounts /dev/vda (the host's has every module: 36 MB to unpack under TCG).
conf=$work/initramfs-tools
cp -a /etc/initramfs-tools "$conf"
sed -i -e 's/^MODULES=.*/MODULES=list/' "$conf/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >"$conf/modules"
mkinitramfs -d "$conf" -o "$OUT/initrd.img" "$kver"
echo "$key" >"$OUT/box.stamp"
echo "build_box.sh: $OUT/cilium-labs-test.box ($(du -h "$OUT/cilium-labs-test.box" | cut -f1)) with kernel $kver in $((SECONDS - t0)) s"
