"""The exec shim: what KWOK runs when someone ``kubectl exec``s into a local lab's pod.

KWOK serves exec by running the requested command as a local process (its ``Exec`` resource gives the
environment) and resolves the command on its *own* PATH (real-components.md). KWOK's PATH in a local lab is a
folder of links to this one script under the names a command may have (``cilium-dbg``, ``curl``...); the
script reads the container's target (pid, PATH, cgroup) that the runtime published for that pod and container,
joins the container's cgroup and execs ``nsenter`` into the container's mount and network namespaces, where
the named program runs exactly as it would in the pod. Nothing runs on the host itself: a name without a link
is "executable file not found", and a pod without a target is refused.

Standalone on purpose (no package imports): it runs once per exec, so it must start fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

COMMANDS = (
    # Cilium's image (cilium-dbg is also ``cilium`` in every image since 1.15)
    "cilium", "cilium-dbg", "cilium-health", "cilium-bugtool", "bpftool", "hubble",
    # what checks, people and cilium-cli run in agent and workload pods
    "sh", "bash", "cat", "ls", "env", "echo", "sleep", "true", "false", "test", "timeout", "hostname", "date",
    "curl", "wget", "ping", "ip", "ss", "tc", "nft", "iptables", "ip6tables", "nslookup", "dig", "agnhost",
    "grep", "head", "tail", "wc", "awk", "sed", "ps", "uname", "mount", "id",
)
TARGET_ENV = "CILIUM_LABS_EXEC_TARGET"
NSENTER = "/usr/bin/nsenter"


def install(folder: Path, python: str) -> Path:
    """Write the shim into ``folder`` with ``python`` as its interpreter and link every command name to it."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / ".cilium-labs-exec"
    text = Path(__file__).read_text()
    script.write_text(f"#!{python} -S\n{text}")
    script.chmod(0o755)
    for name in COMMANDS:
        link = folder / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(script.name)
    return folder


def main() -> None:
    name = os.path.basename(sys.argv[0])
    target_file = os.environ.get(TARGET_ENV, "")
    if not target_file:
        sys.stderr.write(f"cilium-labs: no exec target for this container ({TARGET_ENV} unset)\n")
        raise SystemExit(126)
    try:
        with open(target_file) as fh:
            target = json.load(fh)
        pid = int(target["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"cilium-labs: the container is not running ({exc})\n")
        raise SystemExit(126) from None
    if not os.path.exists(f"/proc/{pid}"):
        sys.stderr.write("cilium-labs: the container is not running\n")
        raise SystemExit(126)
    cgroup = target.get("cgroup")
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError:
            pass
    env = {"PATH": str(target.get("path") or "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
           "TERM": os.environ.get("TERM", "xterm"), "LANG": "C.UTF-8"}
    argv = [NSENTER, "-t", str(pid), "-m", "-n", "-r", "-w", "--", name, *sys.argv[1:]]
    os.execve(NSENTER, argv, env)


if __name__ == "__main__":
    main()
