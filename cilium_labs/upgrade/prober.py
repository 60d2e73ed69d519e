"""The prober that runs inside each client pod for the whole upgrade, and what its output means.

One exec per client pod starts it; it probes every target on its own clock and prints one line per probe, so the
API server carries one long stream per pod instead of ten execs a second. It is written for what the test
workload's image really has: ``registry.k8s.io/e2e-test-images/agnhost`` is Alpine with ``bash`` (Kubernetes
v1.36.3 test/images/agnhost/Dockerfile: ``apk add ... curl netcat-openbsd iproute2 iperf bash``), and on the
simulator's netns datapath and the ``local`` backend a pod's command runs with the host's bash. It needs bash 5
(``$EPOCHREALTIME``) and nothing else: connections are bash's own ``/dev/tcp``, sleeps are ``read -t`` on a pipe
that never speaks, so a probe costs a ``fork`` and no ``exec`` (curl costs five times as much CPU, which matters
at 10 probes a second per pair on a 2-core node).

Targets, one argument each, ``kind,node,ip,port,expect``:

* ``pod``: a fresh TCP connection to the echo pod, ``GET /hostname``, the answer must be the pod's name;
* ``svc``: the same through a ClusterIP Service whose only backend is that echo pod;
* ``ll``: one long-lived HTTP/1.1 keep-alive connection to the echo pod, ``GET /echo?msg=SEQ`` every interval on
  it (``agnhost netexec`` sets no idle timeout: test/images/agnhost/netexec/netexec.go builds a bare
  ``http.Server``), re-opened when it breaks. Cilium's own upgrade test keeps connections like these open and
  counts client restarts (cilium v1.20 .github/actions/conn-disrupt-test-setup/action.yaml,
  cilium-cli/connectivity/tests/upgrade.go NoInterruptedConnections); here each exchange is timed.

Periodic probes are started every interval whether or not the last one answered, each in its own subshell, so a
black hole shows as a run of failed probes as long as the hole, not as one probe stuck in a SYN retry. Lines
(times are microseconds of the pod's wall clock)::

    H 1 START INTERVAL_MS TIMEOUT_MS           header
    P KIND NODE SEQ T0 T1 STATUS                a probe ended: ok, connect, write, timeout, closed, http, wrong
    X KIND NODE SEQ T0 pending                  a probe still waiting when the prober stopped
    C NODE CONN T0 T1 ok|failed                 the long-lived connection CONN was (not) opened
    L NODE CONN SEQ T0 T1 STATUS                one exchange on it: ok, wrong, closed, stall, write
    B NODE CONN T STATUS                        the connection broke (closed, stall, write, wrong)
    E T                                         the prober stopped (stop file or deadline)

It ends when its stop file appears (it then removes it: on the simulator pods share the host's ``/tmp``), when
its deadline passes, or when its output is gone (the exec was closed: an empty line each second finds out).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import attrs

SCRIPT = r"""
set -u
export LC_ALL=C
trap '' PIPE
if [[ -z ${EPOCHREALTIME:-} ]]; then
  echo "F bash ${BASH_VERSION:-unknown} has no EPOCHREALTIME (bash 5 needed)"; exit 3
fi
if [[ $( { exec 3<>/dev/tcp/127.0.0.1/1; } 2>&1 ) == *"No such file"* ]]; then
  echo "F bash ${BASH_VERSION} was built without /dev/tcp (--enable-net-redirections)"; exit 3
fi
iv=$(( $1 * 1000 )) tmo=$(( $2 * 1000 )) dl=$(( $3 * 1000 )) stop=$4 brk=$(( $5 * 1000 ))
shift 5
printf -v tmo_s '%d.%06d' $(( tmo / 1000000 )) $(( tmo % 1000000 ))
exec {sfd}<> <(:)
GET=$'GET /hostname HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n'
now() { local t=$EPOCHREALTIME; REPLY=${t//[.,]/}; }
nap() {
  local us=$1 s; (( us > 0 )) || return 0
  printf -v s '%d.%06d' $(( us / 1000000 )) $(( us % 1000000 )); read -r -t "$s" -u "$sfd" _ || :
}
stopped() { now; (( REPLY >= dl )) || [[ -e $stop ]] || ! kill -0 $$ 2>/dev/null; }
pace() { next=$(( next + iv )); now; (( next >= REPLY )) || next=$REPLY; nap $(( next - REPLY )); }
probe() {
  local k=$1 n=$2 ip=$3 port=$4 want=$5 seq=$6 t0 fd resp='' rc st=ok
  exec 2>/dev/null
  now; t0=$REPLY
  if exec {fd}<>"/dev/tcp/$ip/$port"; then
    if printf '%s' "$GET" >&"$fd"; then
      IFS= read -r -d '' -t "$tmo_s" -u "$fd" resp; rc=$?
      if (( rc > 128 )); then st=timeout
      elif [[ -z $resp ]]; then st=closed
      elif [[ $resp != HTTP/1.?' 200 '* ]]; then st=http
      elif [[ ${resp#*$'\r\n\r\n'} != "$want" ]]; then st=wrong
      fi
    else st='write'
    fi
  else st=connect
  fi
  now; echo "P $k $n $seq $t0 $REPLY $st"
}
lane() {
  local seq=0 pid next; local -A out=()
  now; next=$REPLY
  while ! stopped; do
    seq=$(( seq + 1 ))
    probe "$@" "$seq" &
    out[$!]="$seq $REPLY"
    pace
  done
  for pid in $(jobs -p); do [[ -n ${out[$pid]:-} ]] && echo "X $1 $2 ${out[$pid]} pending"; done
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null; wait
}
rl() {
  local buf='' part='' rc
  while :; do
    IFS= read -r -t 0.2 -u "$fd" part; rc=$?
    if (( rc == 0 )); then LINE=$buf$part; LINE=${LINE%$'\r'}; return 0; fi
    buf+=$part
    (( rc > 128 )) || return 1
    now; (( REPLY - t0 < brk )) || return 2
    stopped && return 3
  done
}
body() {
  local left=$1 part='' rc; BODY=''
  while (( left > 0 )); do
    IFS= read -r -N "$left" -t 0.2 -u "$fd" part; rc=$?
    BODY+=$part; left=$(( left - ${#part} ))
    (( left > 0 )) || return 0
    (( rc > 128 )) || return 1
    now; (( REPLY - t0 < brk )) || return 2
    stopped && return 3
  done
}
exchange() {
  local len=0; LINE=
  rl || return
  [[ $LINE == HTTP/1.?' 200 '* ]] || ST=wrong
  while :; do
    rl || return
    [[ -n $LINE ]] || break
    if [[ ${LINE,,} == content-length:* ]]; then len=${LINE#*:}; len=${len//[!0-9]/}; fi
  done
  body "${len:-0}" || return
  [[ $BODY == "$seq" ]] || ST=wrong
}
ll() {
  local n=$1 ip=$2 port=$3 conn=0 seq=0 fd='' t0 next rc req ST LINE BODY
  exec 2>/dev/null
  now; next=$REPLY
  while ! stopped; do
    if [[ -z $fd ]]; then
      conn=$(( conn + 1 )); now; t0=$REPLY
      if exec {fd}<>"/dev/tcp/$ip/$port"; then now; echo "C $n $conn $t0 $REPLY ok"
      else fd=; now; echo "C $n $conn $t0 $REPLY failed"; pace; continue
      fi
    fi
    seq=$(( seq + 1 )); now; t0=$REPLY; ST=ok
    printf -v req 'GET /echo?msg=%s HTTP/1.1\r\nHost: probe\r\n\r\n' "$seq"
    if printf '%s' "$req" >&"$fd"; then
      exchange; rc=$?
      case $rc in 1) ST=closed ;; 2) ST=stall ;; 3) echo "X ll $n $seq $t0 pending"; break ;; esac
    else ST='write'
    fi
    now; echo "L $n $conn $seq $t0 $REPLY $ST"
    if [[ $ST != ok ]]; then echo "B $n $conn $REPLY $ST"; exec {fd}>&-; fd=; fi
    pace
  done
  [[ -z $fd ]] || exec {fd}>&-
}
now; echo "H 1 $REPLY $(( iv / 1000 )) $(( tmo / 1000 ))"
for t in "$@"; do
  IFS=, read -r k n ip port want <<<"$t"
  case $k in
    pod|svc) lane "$k" "$n" "$ip" "$port" "$want" & ;;
    ll) ll "$n" "$ip" "$port" & ;;
  esac
done
beat=0
while ! stopped; do nap 100000; (( ++beat % 10 )) || echo || break; done
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [[ -n $(jobs -pr) ]] || break; nap 100000; done
# shellcheck disable=SC2046
kill $(jobs -pr) 2>/dev/null
wait
rm -f "$stop" 2>/dev/null
now; echo "E $REPLY"
"""
"""The prober (``bash -c SCRIPT prober INTERVAL_MS TIMEOUT_MS DEADLINE_MS STOPFILE BREAK_MS TARGET...``,
the deadline in milliseconds since the epoch)."""

POD, SERVICE, LONG_LIVED = "pod", "svc", "ll"
KIND_NAMES = {POD: "pod-to-pod", SERVICE: "pod-to-service", LONG_LIVED: "long-lived"}
"""The prober's short kind -> the report's kind."""


@attrs.frozen
class Target:
    """One thing a client pod probes: the kind, the node the answer comes from, address, port, expected name."""

    kind: str
    node: str
    ip: str
    port: int
    expect: str = ""

    def arg(self) -> str:
        return ",".join((self.kind, self.node, self.ip, str(self.port), self.expect))


def argv(
    targets: Sequence[Target],
    *,
    interval_ms: int,
    timeout_ms: int,
    deadline_ms: int,
    stop_file: str,
    break_ms: int,
) -> list[str]:
    """The exec argv that runs the prober until ``stop_file`` exists or ``deadline_ms`` (epoch milliseconds)
    passes."""
    for t in targets:
        if t.kind not in KIND_NAMES:
            raise ValueError(f"unknown probe kind {t.kind!r}")
        ipaddress.ip_address(t.ip)  # a wrong address is a bug here, not a probe failure in the pod
        if "," in t.node or "," in t.expect:
            raise ValueError(f"a comma in {t!r} would split the prober's argument")
    return ["bash", "-c", SCRIPT, "prober", str(interval_ms), str(timeout_ms), str(deadline_ms), stop_file,
            str(break_ms), *(t.arg() for t in targets)]  # fmt: skip


# -- what it printed -------------------------------------------------------------------------------------------


@attrs.frozen
class Probe:
    """One periodic probe (or one exchange on a long-lived connection), times in seconds of the pod's clock."""

    kind: str
    node: str
    seq: int
    sent: float
    ended: float | None
    """None: still waiting when the prober stopped."""
    status: str
    conn: int = 0


@attrs.frozen
class Break:
    """A long-lived connection that broke (or could not be opened)."""

    node: str
    conn: int
    at: float
    status: str


@attrs.frozen
class Output:
    """Everything one prober printed."""

    started: float | None = None
    ended: float | None = None
    probes: tuple[Probe, ...] = ()
    breaks: tuple[Break, ...] = ()
    connects: tuple[tuple[str, int, float, bool], ...] = ()
    """``(node, conn, time, opened)`` for every long-lived connection attempt."""
    fatal: str | None = None
    """The prober could not run at all (``F`` line: no bash 5)."""
    unreadable: int = 0
    """Lines that are none of the above (a pod image that printed something else)."""


def _us(text: str) -> float:
    return int(text) / 1e6


def parse(lines: Iterable[str]) -> Output:
    """The prober's output; a probe both answered (``P``) and listed as pending (``X``) keeps its answer."""
    started = ended = None
    probes: dict[tuple[str, str, int], Probe] = {}
    breaks: list[Break] = []
    connects: list[tuple[str, int, float, bool]] = []
    fatal: str | None = None
    bad = 0
    for raw in lines:
        parts = raw.split()
        if not parts:
            continue
        tag = parts[0]
        try:
            if tag == "H" and len(parts) >= 3:
                started = _us(parts[2])
            elif tag == "E" and len(parts) == 2:
                ended = _us(parts[1])
            elif tag == "P" and len(parts) == 7:
                kind, node, seq = parts[1], parts[2], int(parts[3])
                probes[(kind, node, seq)] = Probe(kind, node, seq, _us(parts[4]), _us(parts[5]), parts[6])
            elif tag == "X" and len(parts) == 6:
                kind, node, seq = parts[1], parts[2], int(parts[3])
                if (kind, node, seq) not in probes:
                    probes[(kind, node, seq)] = Probe(kind, node, seq, _us(parts[4]), None, "pending")
            elif tag == "L" and len(parts) == 7:
                node, conn, seq = parts[1], int(parts[2]), int(parts[3])
                probes[(LONG_LIVED, node, seq)] = Probe(LONG_LIVED, node, seq, _us(parts[4]), _us(parts[5]),
                                                        parts[6], conn)  # fmt: skip
            elif tag == "B" and len(parts) == 5:
                breaks.append(Break(parts[1], int(parts[2]), _us(parts[3]), parts[4]))
            elif tag == "C" and len(parts) == 6:
                connects.append((parts[1], int(parts[2]), _us(parts[4]), parts[5] == "ok"))
            elif tag == "F":
                fatal = raw[2:].strip()
            else:
                bad += 1
        except ValueError:
            bad += 1
    ordered = tuple(sorted(probes.values(), key=lambda p: (p.kind, p.node, p.sent, p.seq)))
    return Output(started, ended, ordered, tuple(breaks), tuple(connects), fatal, bad)
