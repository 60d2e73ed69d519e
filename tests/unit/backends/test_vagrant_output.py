"""Parsers of what the vagrant backend reads, on recorded real output: ``vagrant status --machine-readable`` and
``vagrant ssh-config`` from Vagrant 2.3.4 with vagrant-libvirt 0.11.2 (recorded by the VM tier, tests/vagrant/),
older formats as pasted in public issues, ``/proc/net/route`` from this kind of machine, libvirt network XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from cilium_labs.backends.vagrant_output import (
    SshTarget,
    parse_machine_readable,
    parse_network_xml,
    parse_proc_net_route,
    parse_ssh_config,
    parse_status,
    ssh_argv,
)
from cilium_labs.errors import BackendError, ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "vagrant"
CP, WORKER = "vt-control-plane", "vt-worker"


def test_status_of_running_and_destroyed_machines_from_vagrant_2_3_4() -> None:
    running = parse_status((DATA / "status-running-2.3.4.txt").read_text())
    assert {n: (s.state, s.provider, s.running) for n, s in running.items()} == {
        CP: ("running", "libvirt", True),
        WORKER: ("running", "libvirt", True),
    }
    gone = parse_status((DATA / "status-not-created-2.3.4.txt").read_text())
    assert [(s.name, s.state, s.created) for s in gone.values()] == [
        (CP, "not_created", False),
        (WORKER, "not_created", False),
    ]


def test_status_as_pasted_with_a_prompt_and_vagrant_1_7_format() -> None:
    # Vagrant 1.7 had no metadata line; pasted with the shell prompt and a cut-off last line.
    text = (
        "$ vagrant status --machine-readable\n"
        "1450806320,server,provider-name,virtualbox\n"
        "1450806320,server,state,running\n"
        "1450806320,server,state-human-long,The VM is running. To stop this VM%!(VAGRANT_COMMA) you can run\\nmore\n"
        "1450806321,client,provider-name,virtualbox\n"
        "1450806321,client,state,poweroff\n"
        "1450806321,client,state-hum"
    )
    states = parse_status(text)
    assert [(s.name, s.state, s.provider) for s in states.values()] == [
        ("server", "running", "virtualbox"),
        ("client", "poweroff", "virtualbox"),
    ]


def test_machine_readable_unescapes_commas_and_newlines() -> None:
    (rec,) = parse_machine_readable("1700000000,node,state-human-long,a%!(VAGRANT_COMMA) b\\nc\\r")
    assert rec == type(rec)(1700000000, "node", "state-human-long", ("a, b\nc\r",))


def test_machine_readable_error_exit_is_a_backend_error() -> None:
    text = (
        "1556436418,,error-exit,Vagrant::Errors::UIExpectsTTY,Vagrant is attempting to interface%!(VAGRANT_COMMA) ok\n"
    )
    with pytest.raises(BackendError, match=r"UIExpectsTTY\): Vagrant is attempting to interface, ok"):
        parse_machine_readable(text)


def test_status_without_any_state_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no machine states"):
        parse_status("Current machine states:\n\nnode1   running (libvirt)\n")


def test_ssh_config_from_vagrant_libvirt() -> None:
    targets = parse_ssh_config((DATA / "ssh-config-2.3.4.txt").read_text())
    assert sorted(targets) == [CP, WORKER]
    t = targets[CP]
    assert t.user == "vagrant" and t.port == 22
    assert t.hostname.startswith("192.168.121.")
    assert len(t.identity_files) == 1 and t.identity_files[0].endswith(f"/machines/{CP}/libvirt/private_key")
    assert ("UserKnownHostsFile", "/dev/null") in t.options
    assert ("StrictHostKeyChecking", "no") in t.options


def test_ssh_config_quoted_identity_and_key_equals_value() -> None:
    text = "Host n1\n  HostName=10.0.0.5\n  User vagrant\n  Port 2222\n"
    text += '  IdentityFile "/home/a b/key"\n  IdentityFile /k2\n'
    t = parse_ssh_config(text)["n1"]
    assert (t.hostname, t.port, t.identity_files) == ("10.0.0.5", 2222, ("/home/a b/key", "/k2"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'Host' entry"),
        ("The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH.", "no 'Host'"),
        ("Host n1\n  User vagrant\n", "has no hostname"),
        ("Host n1\n  HostName 10.0.0.5\n  User vagrant\n  Port twenty\n", "not a number"),
        ('Host n1\n  HostName 10.0.0.5\n  User vagrant\n  IdentityFile "/unterminated\n', "unbalanced quotes"),
    ],
)
def test_ssh_config_rejects_what_is_not_one(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_ssh_config(text)


def test_ssh_argv_is_a_list_with_the_command_last() -> None:
    t = SshTarget(
        "n1", "192.168.121.5", "vagrant", 22, ("/k",), (("StrictHostKeyChecking", "no"), ("LogLevel", "FATAL"))
    )
    assert ssh_argv(t, "ls '/a b'") == [
        "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=FATAL", "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=15", "-i", "/k", "-p", "22", "-l", "vagrant", "--",
        "192.168.121.5", "ls '/a b'",
    ]  # fmt: skip


def test_proc_net_route_recorded_on_this_kind_of_machine() -> None:
    routes = parse_proc_net_route((DATA / "proc-net-route.txt").read_text())
    assert [(r.iface, str(r.network)) for r in routes] == [("eth0", "192.0.2.0/24")]  # default route left out
    with pytest.raises(ParseError, match="/proc/net/route"):
        parse_proc_net_route("default via 192.0.2.1 dev eth0\n")


def test_libvirt_network_xml() -> None:
    xml = (
        "<network connections='2'><name>vagrant-libvirt</name><bridge name='virbr1' stp='on'/>"
        "<ip address='192.168.121.1' netmask='255.255.255.0'><dhcp/></ip>"
        "<ip family='ipv6' address='fd00::1' prefix='64'/></network>"
    )
    net = parse_network_xml(xml)
    assert (net.name, net.bridge, [str(n) for n in net.networks], net.connections) == (
        "vagrant-libvirt", "virbr1", ["192.168.121.0/24", "fd00::/64"], 2,
    )  # fmt: skip
    with pytest.raises(ParseError):
        parse_network_xml("<domain/>")
    with pytest.raises(ParseError):
        parse_network_xml("<network><name>x")
