#!/usr/bin/env bash
# Stand-in for the system tools kubeadm-node.sh drives. Linked under each tool's name on a test PATH; records
# every call as one line "<tool> <args...>" in $FAKE_CALLS and mimics just enough behaviour for the script to
# take its real code paths. Failures are injected with $FAKE_STATE/fail-<tool> files holding a substring of
# the argument list to fail on (removed after the first hit, so a re-run resumes).
set -euo pipefail
tool="$(basename "$0")"
line="$tool"
for arg in "$@"; do line+=" $arg"; done
printf '%s\n' "$line" >>"$FAKE_CALLS"  # one write per call: pipelines run tools concurrently
fail_file="$FAKE_STATE/fail-$tool"
if [[ -f "$fail_file" ]] && [[ " $* " == *"$(cat "$fail_file")"* ]]; then
  rm -f "$fail_file"
  echo "$tool: injected failure" >&2
  exit 42
fi
db="$FAKE_STATE/dpkg"
mkdir -p "$db"
case "$tool" in
  apt-get)
    if [[ " $* " == *" install "* ]]; then
      for arg in "$@"; do
        case "$arg" in
          -* | install) ;;
          *=*) pkg="${arg%%=*}"; ver="${arg#*=}"; echo "${ver%\*}1.1" >"$db/$pkg" ;;
          *) echo "1.0-1" >"$db/$arg" ;;
        esac
      done
    fi
    ;;
  dpkg-query)
    pkg="${!#}"
    if [[ -f "$db/$pkg" ]]; then echo "install ok installed $(cat "$db/$pkg")"; fi
    ;;
  curl) echo "-----BEGIN PGP PUBLIC KEY BLOCK-----" ;;
  gpg)
    cat >/dev/null
    while (($#)); do
      if [[ "$1" == -o ]]; then echo fake-keyring >"$2"; fi
      shift
    done
    ;;
  uname) echo "${FAKE_KERNEL:-6.1.0-28-cloud-amd64}" ;;
  hostname) echo "fake-host" ;;
  swapon) if [[ -f "$FAKE_STATE/swap-on" ]]; then echo "/swapfile file 1G 0B -2"; fi ;;
  swapoff) rm -f "$FAKE_STATE/swap-on" ;;
  mountpoint) [[ -f "$FAKE_STATE/bpffs-mounted" ]] ;;
  systemctl) if [[ "$*" == *"sys-fs-bpf.mount"* ]]; then : >"$FAKE_STATE/bpffs-mounted"; fi ;;
  containerd)
    # The relevant lines of `containerd config default` as containerd 1.6/1.7 and 2.x print them.
    if [[ "$*" == "config default" && "${FAKE_CONTAINERD:-1}" == 1 ]]; then
      cat <<'TOML'
version = 2
[plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
TOML
    elif [[ "$*" == "config default" && "${FAKE_CONTAINERD}" == 2 ]]; then
      cat <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.k8s.io/pause:3.10'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false
TOML
    elif [[ "$*" == "config default" ]]; then
      printf 'version = 3\n[plugins]\n'
    fi
    ;;
  kubeadm)
    case "$*" in
      "config images list"*) printf 'registry.k8s.io/kube-apiserver:v1.33.1\nregistry.k8s.io/pause:3.10\n' ;;
      init\ phase\ upload-certs*) printf '[upload-certs] Using certificate key:\n%s\n' "$(printf 'c%.0s' {1..64})" ;;
      init*) mkdir -p "$CILIUM_LABS_ROOT/etc/kubernetes" && echo admin >"$CILIUM_LABS_ROOT/etc/kubernetes/admin.conf" ;;
      join*) mkdir -p "$CILIUM_LABS_ROOT/etc/kubernetes" && echo kubelet >"$CILIUM_LABS_ROOT/etc/kubernetes/kubelet.conf" ;;
      token\ create*)
        line="kubeadm join 172.16.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:$(printf 'a%.0s' {1..64})"
        if [[ "$*" == *--certificate-key* ]]; then line+=" --control-plane --certificate-key ${!#}"; fi
        echo "$line "
        ;;
    esac
    ;;
esac
exit 0
