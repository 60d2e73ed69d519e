#!/usr/bin/env bash
# kubeadm-node.sh: turn a fresh Debian or Ubuntu VM into a kubeadm node, without a CNI (Cilium comes later).
#
# Shared by the gcp backend (GCE startup script, see terraform/gcp/startup.sh.tftpl) and the vagrant backend
# (shell provisioner). Both drive it the same way:
#
#   up            on every node at boot: containerd (SystemdCgroup), kubelet/kubeadm/kubectl from pkgs.k8s.io,
#                 swap off, br_netfilter, sysctls, bpffs. With --init (first control plane only) also
#                 `kubeadm init`. Status afterwards: "done" (--init) or "prepared" (waiting for a join).
#   join-command  on the first control plane: print a fresh one-line join command (token valid 30 minutes,
#                 created now, never stored in a file or in the repository).
#   join          on the other nodes: read that line on stdin (never argv, which `ps` shows) and join.
#   status        print pending | running | prepared | done | failed: <reason>
#
# The backend runs join-command on the control plane and pipes its output into `join` on each other node over
# SSH, so the token only ever travels inside SSH sessions and never lands in metadata, Terraform state or logs.
#
# Idempotent: `up` with the same arguments on a node that is already prepared or done does nothing (GCE runs
# startup scripts on every boot); with different arguments it refuses (exit 3) instead of half-reconfiguring.
# A run that failed part-way resumes: every step checks whether it is already done.
#
# Exit codes: 0 ok, 1 a step failed (see the log), 2 bad arguments, 3 node bootstrapped with other arguments.
# Log: /var/log/cilium-labs-bootstrap.log. CILIUM_LABS_ROOT prefixes every file path (tests only).
set -Eeuo pipefail

readonly ROOT="${CILIUM_LABS_ROOT:-}"
readonly LOG="${ROOT}${CILIUM_LABS_LOG:-/var/log/cilium-labs-bootstrap.log}"
readonly STATE="${ROOT}/var/lib/cilium-labs"
readonly CRI_SOCKET="unix:///run/containerd/containerd.sock"
readonly ADMIN_CONF="${ROOT}/etc/kubernetes/admin.conf"
readonly KUBELET_CONF="${ROOT}/etc/kubernetes/kubelet.conf"
export DEBIAN_FRONTEND=noninteractive

usage() {
  cat >&2 <<'EOF'
usage: kubeadm-node.sh up --role control-plane|worker --node-ip IP[,IP6] --control-plane-address ADDR
                          --k8s-version X.Y.Z [--init] [--node-name NAME] [--pod-cidrs CIDR[,CIDR]]
                          [--service-cidrs CIDR[,CIDR]] [--kube-proxy-replacement] [--extra-san SAN]...
       kubeadm-node.sh join [--control-plane]      (reads the `kubeadm join ...` line on stdin)
       kubeadm-node.sh join-command [--control-plane]
       kubeadm-node.sh status
EOF
}

die_usage() {
  echo "kubeadm-node.sh: $*" >&2
  usage
  exit 2
}

log() {
  printf '%s kubeadm-node: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

set_status() {
  mkdir -p "$STATE"
  printf '%s\n' "$1" >"$STATE/status.tmp"
  mv -f "$STATE/status.tmp" "$STATE/status"
}

redact() {
  # Bootstrap tokens (abcdef.0123456789abcdef) and certificate keys never reach a log or the status file.
  sed -E 's/[a-z0-9]{6}\.[a-z0-9]{16}/***/g; s/[a-f0-9]{64}/***/g'
}

on_error() {
  local line="$1" cmd="$2"
  local reason
  reason="$(printf 'line %s: %s' "$line" "$cmd" | redact | tr '\n' ' ')"
  set_status "failed: ${reason}"
  log "FAILED at ${reason}"
  # The caller (GCE serial console, vagrant provision output) sees why without opening the log.
  { echo "kubeadm-node.sh: FAILED at ${reason}; last lines of ${LOG}:"; tail -n 20 "$LOG" | redact; } >&8 2>/dev/null || true
}

log_to_file() {
  # Everything from here on goes to the log; fd 8 keeps the original stderr for the final word.
  exec 8>&2
  exec >>"$LOG" 2>&1
  echo "kubeadm-node.sh: logging to ${LOG}" >&8
}

# -- argument checks (everything that reaches a command or a file is validated here) ---------------------------

is_ipv4() {
  local ip="$1" IFS=.
  [[ "$ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  # shellcheck disable=SC2086 # split on dots on purpose
  set -- $ip
  (($1 <= 255 && $2 <= 255 && $3 <= 255 && $4 <= 255))
}

is_ipv6() {
  [[ "$1" =~ ^[0-9a-fA-F:]+$ && "$1" == *:*:* ]]
}

is_ip() { is_ipv4 "$1" || is_ipv6 "$1"; }

is_cidr() {
  local addr="${1%/*}" len="${1##*/}"
  [[ "$1" == */* && "$len" =~ ^[0-9]{1,3}$ ]] || return 1
  if is_ipv4 "$addr"; then ((len <= 32)); elif is_ipv6 "$addr"; then ((len <= 128)); else return 1; fi
}

is_dns_name() {
  [[ "$1" =~ ^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$ ]]
}

check_list() {
  # check_list FLAG VALIDATOR "a,b": every comma-separated item passes VALIDATOR, at most two (one per family).
  local flag="$1" validator="$2" value="$3" item n=0
  [[ -n "$value" ]] || die_usage "$flag needs a value"
  IFS=, read -r -a items <<<"$value"
  for item in "${items[@]}"; do
    "$validator" "$item" || die_usage "$flag: '$item' is not valid"
    n=$((n + 1))
  done
  ((n <= 2)) || die_usage "$flag takes at most two comma-separated values (IPv4 and IPv6)"
}

# -- up: parse -----------------------------------------------------------------------------------------------

ROLE=""
NODE_IP=""
NODE_NAME=""
CP_ADDRESS=""
K8S_VERSION=""
POD_CIDRS="10.244.0.0/16"
SERVICE_CIDRS="10.96.0.0/16"
INIT=0
KPR=0
EXTRA_SANS=()

parse_up() {
  while (($#)); do
    case "$1" in
      --role) ROLE="${2-}"; shift 2 || die_usage "--role needs a value" ;;
      --node-ip) NODE_IP="${2-}"; shift 2 || die_usage "--node-ip needs a value" ;;
      --node-name) NODE_NAME="${2-}"; shift 2 || die_usage "--node-name needs a value" ;;
      --control-plane-address) CP_ADDRESS="${2-}"; shift 2 || die_usage "--control-plane-address needs a value" ;;
      --k8s-version) K8S_VERSION="${2-}"; shift 2 || die_usage "--k8s-version needs a value" ;;
      --pod-cidrs) POD_CIDRS="${2-}"; shift 2 || die_usage "--pod-cidrs needs a value" ;;
      --service-cidrs) SERVICE_CIDRS="${2-}"; shift 2 || die_usage "--service-cidrs needs a value" ;;
      --extra-san) EXTRA_SANS+=("${2-}"); shift 2 || die_usage "--extra-san needs a value" ;;
      --init) INIT=1; shift ;;
      --kube-proxy-replacement) KPR=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die_usage "unknown argument '$1'" ;;
    esac
  done
  case "$ROLE" in
    control-plane | worker) ;;
    "") die_usage "--role is required" ;;
    *) die_usage "--role must be control-plane or worker, not '$ROLE'" ;;
  esac
  [[ -n "$NODE_IP" ]] || die_usage "--node-ip is required"
  check_list --node-ip is_ip "$NODE_IP"
  [[ -n "$CP_ADDRESS" ]] || die_usage "--control-plane-address is required"
  is_ip "$CP_ADDRESS" || is_dns_name "$CP_ADDRESS" || die_usage "--control-plane-address: '$CP_ADDRESS' is not an address"
  [[ "$K8S_VERSION" =~ ^v?([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die_usage "--k8s-version must look like 1.33.1, not '$K8S_VERSION'"
  K8S_VERSION="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  check_list --pod-cidrs is_cidr "$POD_CIDRS"
  check_list --service-cidrs is_cidr "$SERVICE_CIDRS"
  local san
  for san in "${EXTRA_SANS[@]}"; do
    is_ip "$san" || is_dns_name "$san" || die_usage "--extra-san: '$san' is not an address or DNS name"
  done
  if [[ -z "$NODE_NAME" ]]; then
    NODE_NAME="$(hostname -s)"
  fi
  is_dns_name "$NODE_NAME" || die_usage "--node-name: '$NODE_NAME' is not a DNS name"
  if ((INIT)) && [[ "$ROLE" != control-plane ]]; then
    die_usage "--init is only for the first control plane (--role control-plane)"
  fi
  if ((INIT)) && is_ip "$CP_ADDRESS" && [[ ",$NODE_IP," != *",$CP_ADDRESS,"* ]]; then
    die_usage "--init node's --node-ip ($NODE_IP) must include --control-plane-address ($CP_ADDRESS)"
  fi
}

# The arguments that define the node, normalised, so a re-run can tell "same node" from "reconfigure".
fingerprint() {
  printf 'role=%s\nnode_ip=%s\nnode_name=%s\ncontrol_plane_address=%s\nk8s_version=%s\npod_cidrs=%s\n' \
    "$ROLE" "$NODE_IP" "$NODE_NAME" "$CP_ADDRESS" "$K8S_VERSION" "$POD_CIDRS"
  printf 'service_cidrs=%s\ninit=%s\nkube_proxy_replacement=%s\nextra_sans=%s\n' \
    "$SERVICE_CIDRS" "$INIT" "$KPR" "$(IFS=,; echo "${EXTRA_SANS[*]}")"
}

# -- up: steps (each checks first, so a re-run after a failure resumes) ------------------------------------

check_os() {
  local id="" codename="" kernel major minor
  if [[ -r "$ROOT/etc/os-release" ]]; then
    # shellcheck disable=SC1091 # the node's own os-release
    id="$(. "$ROOT/etc/os-release" && echo "${ID:-}")"
    # shellcheck disable=SC1091
    codename="$(. "$ROOT/etc/os-release" && echo "${VERSION_CODENAME:-}")"
  fi
  case "$id" in
    debian | ubuntu) ;;
    *) log "unsupported OS '${id:-unknown}': use a Debian or Ubuntu image"; return 1 ;;
  esac
  [[ -n "$codename" ]] || { log "/etc/os-release has no VERSION_CODENAME"; return 1; }
  kernel="$(uname -r)"
  major="${kernel%%.*}"
  minor="${kernel#*.}"
  minor="${minor%%[!0-9]*}"
  if ((major < 5 || (major == 5 && minor < 10))); then
    log "kernel $kernel is older than 5.10, which Cilium requires: use a newer image"
    return 1
  fi
  OS_ID="$id"
  OS_CODENAME="$codename"
}

write_if_changed() {
  # write_if_changed PATH CONTENT: returns 0 if the file changed, 1 if it already had that content.
  local path="$1" content="$2"
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.tmp"
  mv -f "$path.tmp" "$path"
  return 0
}

step_swap() {
  if [[ -n "$(swapon --show --noheadings 2>/dev/null || true)" ]]; then
    log "turning swap off"
    swapoff -a
  fi
  if [[ -f "$ROOT/etc/fstab" ]] && grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' "$ROOT/etc/fstab"; then
    sed -i -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# disabled by cilium-labs: \1/' "$ROOT/etc/fstab"
  fi
}

apply_file() {
  # apply_file PATH CONTENT COMMAND...: write PATH and run COMMAND when PATH lacks CONTENT; if COMMAND fails the
  # file is removed again, so a re-run retries instead of believing the step was done.
  local path="$1" content="$2"
  shift 2
  write_if_changed "$path" "$content" || return 0
  "$@" || { rm -f "$path"; return 1; }
}

load_modules() {
  log "loading kernel modules overlay, br_netfilter"
  modprobe overlay && modprobe br_netfilter
}

apply_sysctls() {
  log "applying sysctls"
  sysctl --system >/dev/null
}

step_kernel() {
  apply_file "$ROOT/etc/modules-load.d/cilium-labs.conf" $'overlay\nbr_netfilter' load_modules
  local sysctls
  sysctls=$'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1'
  # IPv6 forwarding turns off router advertisements on the host's links: only when pods get IPv6.
  if [[ "$POD_CIDRS" == *:* ]]; then
    sysctls+=$'\nnet.ipv6.conf.all.forwarding = 1'
  fi
  apply_file "$ROOT/etc/sysctl.d/90-cilium-labs.conf" "$sysctls" apply_sysctls
}

step_bpffs() {
  # Cilium keeps its maps pinned in bpffs; mounted by a unit so it survives reboots.
  local unit
  unit=$'[Unit]\nDescription=BPF filesystem for Cilium\nDefaultDependencies=no\nBefore=local-fs.target umount.target\n\n[Mount]\nWhat=bpffs\nWhere=/sys/fs/bpf\nType=bpf\nOptions=rw,nosuid,nodev,noexec,relatime,mode=700\n\n[Install]\nWantedBy=multi-user.target'
  if mountpoint -q /sys/fs/bpf; then
    return 0
  fi
  log "mounting bpffs at /sys/fs/bpf"
  write_if_changed "$ROOT/etc/systemd/system/sys-fs-bpf.mount" "$unit" || true
  systemctl daemon-reload
  systemctl enable --now sys-fs-bpf.mount
}

pkg_version() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not ours
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '$3 == "installed" {print $4}'
}

apt_install() {
  apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold install "$@"
}

step_prerequisites() {
  local pkg missing=()
  for pkg in apt-transport-https ca-certificates curl gpg conntrack socat iptables tcpdump; do
    [[ -n "$(pkg_version "$pkg")" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get -q -o DPkg::Lock::Timeout=600 update
    apt_install "${missing[@]}"
  fi
}

add_repo() {
  # add_repo NAME KEY_URL "deb line with {keyring}"
  local name="$1" key_url="$2" line="$3"
  local keyring="/etc/apt/keyrings/${name}.gpg"
  local list="$ROOT/etc/apt/sources.list.d/${name}.list"
  line="${line//\{keyring\}/$keyring}"
  if [[ ! -s "$ROOT$keyring" ]]; then
    log "adding the apt key for $name"
    mkdir -p "$ROOT/etc/apt/keyrings"
    curl -fsSL --retry 5 "$key_url" | gpg --dearmor --yes -o "$ROOT$keyring"
    chmod 0644 "$ROOT$keyring"
  fi
  if write_if_changed "$list" "$line"; then
    log "apt source $name: $line"
  fi
}

step_packages() {
  local minor="${K8S_VERSION%.*}"
  add_repo docker "https://download.docker.com/linux/${OS_ID}/gpg" \
    "deb [signed-by={keyring}] https://download.docker.com/linux/${OS_ID} ${OS_CODENAME} stable"
  add_repo kubernetes "https://pkgs.k8s.io/core:/stable:/v${minor}/deb/Release.key" \
    "deb [signed-by={keyring}] https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ /"
  local want=()
  [[ -n "$(pkg_version containerd.io)" ]] || want+=(containerd.io)
  local pkg
  for pkg in kubelet kubeadm kubectl; do
    [[ "$(pkg_version "$pkg")" == "${K8S_VERSION}-"* ]] || want+=("${pkg}=${K8S_VERSION}-*")
  done
  if ((${#want[@]})); then
    apt-get -q -o DPkg::Lock::Timeout=600 update
    log "installing ${want[*]}"
    apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
    apt_install --allow-change-held-packages "${want[@]}"
  fi
  apt-mark hold kubelet kubeadm kubectl >/dev/null
}

step_containerd() {
  local conf="$ROOT/etc/containerd/config.toml" pause
  if [[ -f "$conf" ]] && grep -q '^# managed by cilium-labs' "$conf"; then
    return 0
  fi
  log "configuring containerd (SystemdCgroup, CRI enabled)"
  mkdir -p "$ROOT/etc/containerd"
  # The containerd.io package ships a config that disables CRI; start from containerd's own defaults.
  containerd config default >"$conf.tmp"
  if ! grep -q 'SystemdCgroup = false' "$conf.tmp"; then
    log "containerd's default config has no 'SystemdCgroup = false' line to flip; cannot set the cgroup driver"
    rm -f "$conf.tmp"
    return 1
  fi
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' "$conf.tmp"
  pause="$(kubeadm config images list --kubernetes-version "v${K8S_VERSION}" 2>/dev/null | grep '/pause:' | head -n1 || true)"
  if [[ -n "$pause" ]]; then
    # containerd 1.x: sandbox_image = "..."; containerd 2.x: sandbox = '...'
    sed -i -E "s#^([[:space:]]*sandbox_image = )\".*\"#\\1\"${pause}\"#; s#^([[:space:]]*sandbox = )'.*'#\\1'${pause}'#" "$conf.tmp"
  fi
  { echo "# managed by cilium-labs (bootstrap/kubeadm-node.sh)"; cat "$conf.tmp"; } >"$conf"
  rm -f "$conf.tmp"
  systemctl restart containerd
  systemctl enable containerd >/dev/null
}

step_kubelet() {
  local first_ip="${NODE_IP%%,*}"
  # kubelet would otherwise pick the default-route address, which is the NAT interface on Vagrant.
  if write_if_changed "$ROOT/etc/default/kubelet" "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}"; then
    log "kubelet node IP ${NODE_IP} (first ${first_ip})"
  fi
  systemctl enable kubelet >/dev/null
}

step_init() {
  if [[ -f "$ADMIN_CONF" ]]; then
    log "kubeadm init already done"
    return 0
  fi
  local sans="$CP_ADDRESS" san args
  for san in "${EXTRA_SANS[@]}"; do sans+=",${san}"; done
  args=(init
    --kubernetes-version "v${K8S_VERSION}"
    --node-name "$NODE_NAME"
    --apiserver-advertise-address "${NODE_IP%%,*}"
    --control-plane-endpoint "${CP_ADDRESS}:6443"
    --apiserver-cert-extra-sans "$sans"
    --pod-network-cidr "$POD_CIDRS"
    --service-cidr "$SERVICE_CIDRS"
    --cri-socket "$CRI_SOCKET"
    --skip-token-print)
  if ((KPR)); then
    args+=(--skip-phases=addon/kube-proxy)
  fi
  log "kubeadm ${args[*]}"
  kubeadm "${args[@]}"
}

cmd_up() {
  parse_up "$@"
  mkdir -p "$STATE"
  local fp
  fp="$(fingerprint)"
  local status=""
  [[ -f "$STATE/status" ]] && status="$(cat "$STATE/status")"
  if [[ -f "$STATE/up.args" ]] && [[ "$status" == "done" || "$status" == prepared ]]; then
    if [[ "$(cat "$STATE/up.args")" == "$fp" ]]; then
      log "node already ${status}; nothing to do"
      return 0
    fi
    echo "kubeadm-node.sh: this node was bootstrapped with other arguments (see $STATE/up.args);" \
      "run 'kubeadm reset -f' and remove $STATE to bootstrap it again" >&2
    exit 3
  fi
  log_to_file
  trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
  set_status running
  log "up: $(echo "$fp" | tr '\n' ' ')"
  check_os
  step_swap
  step_kernel
  step_bpffs
  step_prerequisites
  step_packages
  step_containerd
  step_kubelet
  printf '%s\n' "$fp" >"$STATE/up.args"
  if ((INIT)); then
    step_init
    set_status "done"
    log "control plane initialised"
  elif [[ -f "$KUBELET_CONF" ]]; then
    set_status "done"
    log "node already joined"
  else
    set_status prepared
    log "node prepared; waiting for a join command (kubeadm-node.sh join)"
  fi
  echo "kubeadm-node.sh: $(cat "$STATE/status")" >&8
}

# -- join ----------------------------------------------------------------------------------------------------

read_up_arg() {
  sed -n "s/^$1=//p" "$STATE/up.args"
}

cmd_join() {
  local want_cp=0
  while (($#)); do
    case "$1" in
      --control-plane) want_cp=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die_usage "unknown argument '$1'" ;;
    esac
  done
  [[ -f "$STATE/up.args" ]] || die_usage "run 'kubeadm-node.sh up' on this node first"
  local line=""
  IFS= read -r line || true
  line="${line%$'\r'}"
  local re='^kubeadm join ([A-Za-z0-9.:-]+|\[[0-9a-fA-F:]+\]:[0-9]+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[a-f0-9]{64})( --control-plane --certificate-key ([a-f0-9]{64}))?[[:space:]]*$'
  [[ "$line" =~ $re ]] || die_usage "stdin is not a 'kubeadm join HOST:PORT --token ... --discovery-token-ca-cert-hash sha256:...' line"
  local endpoint="${BASH_REMATCH[1]}" token="${BASH_REMATCH[2]}" hash="${BASH_REMATCH[3]}" key="${BASH_REMATCH[5]}"
  if ((want_cp)) && [[ -z "$key" ]]; then
    die_usage "--control-plane needs a join command with --control-plane --certificate-key (join-command --control-plane)"
  fi
  if ((!want_cp)) && [[ -n "$key" ]]; then
    die_usage "this join command is for a control plane; pass --control-plane"
  fi
  local role cp_address node_name node_ip
  role="$(read_up_arg role)"
  cp_address="$(read_up_arg control_plane_address)"
  node_name="$(read_up_arg node_name)"
  node_ip="$(read_up_arg node_ip)"
  if ((want_cp)) && [[ "$role" != control-plane ]]; then
    die_usage "this node was prepared as a $role, not a control plane"
  fi
  if [[ "${endpoint%:*}" != "$cp_address" && "${endpoint%:*}" != "[$cp_address]" ]]; then
    die_usage "join command points at ${endpoint%:*}, but this node belongs to control plane $cp_address"
  fi
  if [[ -f "$KUBELET_CONF" ]]; then
    echo "kubeadm-node.sh: node already joined; nothing to do" >&2
    set_status "done"
    return 0
  fi
  log_to_file
  trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
  set_status running
  local args=(join "$endpoint" --token "$token" --discovery-token-ca-cert-hash "$hash"
    --node-name "$node_name" --cri-socket "$CRI_SOCKET")
  if ((want_cp)); then
    args+=(--control-plane --certificate-key "$key" --apiserver-advertise-address "${node_ip%%,*}")
  fi
  log "kubeadm join $endpoint (token and hashes not logged) as ${node_name}$( ((want_cp)) && echo ' (control plane)')"
  kubeadm "${args[@]}"
  set_status "done"
  log "joined"
  echo "kubeadm-node.sh: joined" >&8
}

# -- join-command, status --------------------------------------------------------------------------------------

cmd_join_command() {
  local want_cp=0
  while (($#)); do
    case "$1" in
      --control-plane) want_cp=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die_usage "unknown argument '$1'" ;;
    esac
  done
  [[ -f "$ADMIN_CONF" ]] || { echo "kubeadm-node.sh: not an initialised control plane (no $ADMIN_CONF)" >&2; exit 1; }
  local out key
  if ((want_cp)); then
    # Control-plane certificates are uploaded encrypted for two hours; the key is printed, never stored.
    key="$(kubeadm init phase upload-certs --upload-certs --kubeconfig "$ADMIN_CONF" 2>/dev/null | tail -n1)"
    [[ "$key" =~ ^[a-f0-9]{64}$ ]] || { echo "kubeadm-node.sh: could not upload control-plane certificates" >&2; exit 1; }
    out="$(kubeadm token create --kubeconfig "$ADMIN_CONF" --ttl 30m --print-join-command --certificate-key "$key")"
  else
    out="$(kubeadm token create --kubeconfig "$ADMIN_CONF" --ttl 30m --print-join-command)"
  fi
  printf '%s\n' "$out" | grep '^kubeadm join ' | tail -n1
}

cmd_status() {
  if [[ -f "$STATE/status" ]]; then
    cat "$STATE/status"
  else
    echo pending
  fi
}

main() {
  local cmd="${1-}"
  (($#)) && shift
  if [[ "$cmd" != status && "$cmd" != "" && "$cmd" != -h && "$cmd" != --help && -z "$ROOT" && "$EUID" -ne 0 ]]; then
    echo "kubeadm-node.sh: must run as root (sudo)" >&2
    exit 2
  fi
  case "$cmd" in
    up)
      mkdir -p "$STATE" "$(dirname "$LOG")"
      # One bootstrap at a time (the GCE startup script and a manual re-run may overlap).
      exec 9>"$STATE/lock"
      flock 9
      cmd_up "$@"
      ;;
    join)
      mkdir -p "$STATE" "$(dirname "$LOG")"
      exec 9>"$STATE/lock"
      flock 9
      cmd_join "$@"
      ;;
    join-command) cmd_join_command "$@" ;;
    status) cmd_status ;;
    -h | --help) usage ;;
    "") die_usage "a command is required" ;;
    *) die_usage "unknown command '$cmd'" ;;
  esac
}

main "$@"
