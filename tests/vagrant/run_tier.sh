#!/usr/bin/env bash
# The Vagrant VM tier: real `vagrant up` of two libvirt VMs (software emulation) through the vagrant backend.
#
#   tests/vagrant/run_tier.sh [pytest args...]        (tox -e vagrant runs this; needs root)
#
# 1. installs what it needs from Debian when missing (vagrant, vagrant-libvirt, libvirt, QEMU, debootstrap...),
# 2. builds the test box (tests/vagrant/build_box.sh, cached in $CILIUM_LABS_VAGRANT_CACHE),
# 3. makes a network namespace of its own and, inside it, a private libvirt state (tmpfs /run/libvirt, bind
#    mounts over /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt from a temporary folder),
#    so VM traffic never reaches the host network and a crash leaves no domain, volume or network behind,
# 4. runs pytest on tests/vagrant there (the tests start and stop libvirtd themselves), and `vagrant validate`
#    of the Vagrantfile (tests/integration/backends/test_vagrant_vagrantfile.py), which the plain `tox` run skips
#    on a machine where vagrant is not installed yet,
# 5. kills whatever is left in the namespace (its own processes, by PID), deletes it and the temporary folder.
#
# Environment: PYTHON (default python3; tox passes its venv's), CILIUM_LABS_VAGRANT_CACHE (default
# /var/tmp/cilium-labs-vagrant), CILIUM_LABS_SKIP_APT=1 to skip the package check, CILIUM_LABS_SAVE_PCAPS=1 to
# copy the VXLAN/Geneve captures into tests/data/pcap/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${CILIUM_LABS_VAGRANT_CACHE:-/var/tmp/cilium-labs-vagrant}

if [ "${1:-}" = "--inside" ]; then
  # Runs under `ip netns exec`, which already gave us a mount namespace of our own (mounts here stay here).
  shift
  state=$1
  shift
  ip link set lo up
  mount --make-rprivate /
  mkdir -p /run/libvirt
  mount -t tmpfs -o mode=0755 tmpfs /run/libvirt
  for dir in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    mkdir -p "$dir" "$state$dir"
    # Same directory tree, owners and modes, none of the host's files (images, leases, logs).
    (cd "$dir" && find . -type d -print0 | tar --null --no-recursion -T - -cf -) | tar -C "$state$dir" -xpf -
    mount --bind "$state$dir" "$dir"
  done
  mkdir -p "$state/etc"
  cp -a /etc/libvirt "$state/etc/libvirt"
  # No autostarted networks (Debian's "default" 192.168.122.0/24), no domains or networks the host defined.
  rm -rf "$state/etc/libvirt/qemu/networks" "$state/etc/libvirt/qemu/autostart" "$state"/etc/libvirt/qemu/*.xml
  mkdir -p "$state/etc/libvirt/qemu/networks/autostart"
  mount --bind "$state/etc/libvirt" /etc/libvirt
  export CILIUM_LABS_VAGRANT_TIER=1
  export CILIUM_LABS_TEST_BOX_DIR="$CACHE/box"
  export CILIUM_LABS_VAGRANT_STATE="$state"
  export VAGRANT_HOME="$state/vagrant-home"
  cd "$REPO"
  exec "$@"
fi

[ "$(id -u)" = 0 ] || { echo "run_tier.sh: needs root (network namespace, libvirtd, debootstrap)" >&2; exit 2; }
t0=$SECONDS

if [ "${CILIUM_LABS_SKIP_APT:-}" != 1 ]; then
  need=()
  for pkg in vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 qemu-utils debootstrap e2fsprogs \
    linux-image-amd64 iproute2 tcpdump openssh-client; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "run_tier.sh: apt-get install ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >"$CACHE.apt.log" 2>&1 ||
      { tail -n 40 "$CACHE.apt.log" >&2; exit 1; }
    echo "run_tier.sh: packages installed in $((SECONDS - t0)) s"
  fi
fi

t1=$SECONDS
bash "$REPO/tests/vagrant/build_box.sh" "$CACHE/box"
echo "run_tier.sh: box ready in $((SECONDS - t1)) s"

ns=cl-vagrant-$$
state=$(mktemp -d /var/tmp/cilium-labs-vagrant-state.XXXXXX)
cleanup() {
  local pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    echo "run_tier.sh: stopping processes left in $ns: $pids" >&2
    kill $pids 2>/dev/null || true
    sleep 2
    kill -9 $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT
export CILIUM_LABS_HOST_NETNS_INODE
CILIUM_LABS_HOST_NETNS_INODE=$(stat -L -c %i /proc/self/ns/net)
ip netns add "$ns"
rc=0
ip netns exec "$ns" bash "$REPO/tests/vagrant/run_tier.sh" --inside "$state" \
  "$PYTHON" -m pytest "$REPO/tests/vagrant" "$REPO/tests/integration/backends/test_vagrant_vagrantfile.py" \
  -m "vagrant or integration" -p no:cacheprovider -v --tb=short --basetemp "$state/pytest" "$@" || rc=$?
echo "run_tier.sh: tier finished with exit $rc after $((SECONDS - t0)) s in total"
exit $rc
