"""``parse_service_list`` on further real pastes of ``cilium service list`` (1.0-dev to 1.16), one test per paste:
what a person reading the paste takes from it. Sources: ``tests/data/outputs/SOURCES.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cilium_labs.cilium.parse import ServiceTable, parse_service_list
from cilium_labs.errors import ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "outputs" / "service-list"


def table(name: str) -> ServiceTable:
    return parse_service_list((DATA / name).read_text(encoding="utf-8"))


def rows(t: ServiceTable) -> list[tuple[Any, ...]]:
    return [(s.id, s.frontend, s.type, [(b.address, b.state) for b in s.backends]) for s in t.services]


def test_1_0_dev_agent_error_line_is_reported_not_taken_for_a_cut_row() -> None:
    t = table("v1.0-dev-issue2053-error-line.txt")
    assert rows(t) == [
        (1, "100.64.0.10:53", None, [("100.96.1.179:53", None), ("100.96.2.134:53", None)]),
        (2, "100.64.0.1:443", None, [("172.20.55.217:443", None)]),
        (3, "100.69.43.223:80", None, [("100.96.2.150:80", None), ("100.96.3.188:80", None)]),
        (5, "100.66.223.91:9092", None, []),
        (9, "100.70.202.32:2181", None, [("100.96.3.65:2181", None)]),
    ]
    assert t.version_hint == "1.0-1.6"
    assert len(t.warnings) == 1
    assert t.warnings[0].startswith("the agent printed an error instead of a row")
    assert "Port:9093" in t.warnings[0] and "cut off" not in t.warnings[0]


def test_1_7_dev_elided_rows_and_services_without_backends() -> None:
    t = table("v1.7-dev-issue9576-elided.txt")
    assert rows(t) == [(12, "172.20.0.73:81", "ClusterIP", []), (13, "172.20.0.73:80", "ClusterIP", [])]
    assert all(s.protocol is None and s.scope is None for s in t.services)
    assert t.version_hint == ">=1.7"  # typed rows, no backend printed: nothing to date it further


def test_1_8_dev_external_ips_and_a_cut_row_that_still_parses() -> None:
    t = table("v1.8-dev-issue10669-externalips-cut.txt")
    assert [s.id for s in t.services] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.frontend for s in t.services if s.type == "ExternalIPs"] == [
        "192.0.2.223:82",
        "172.28.128.3:82",
        "192.168.36.11:82",
    ]
    assert t.by_frontend()[("10.96.0.1:443", None)].backends[0].address == "192.168.36.11:6443"
    assert all(len(s.backends) == 1 and s.backends[0].state is None for s in t.services)
    # "8    192.168.36.11:3" reads as IP:PORT, but a row of a Service Type table never lacks its type
    assert t.warnings == ("last line looks cut off and was ignored: '8    192.168.36.11:3'",)
    assert ("192.168.36.11:3", None) not in t.by_frontend()
    assert t.version_hint == "1.7-1.11"


def test_1_8_dev_hostport_tail_without_header() -> None:
    t = table("v1.8-dev-issue10669-hostport-tail.txt")
    assert [s.id for s in t.services] == list(range(73, 84))
    types = {s.id: s.type for s in t.services}
    assert [i for i, ty in types.items() if ty == "HostPort"] == [82, 83]
    assert [i for i, ty in types.items() if ty == "ClusterIP"] == [74, 78]
    assert [s.id for s in t.services if not s.backends] == [79, 80, 81]
    assert rows(t)[-1] == (83, "192.168.36.12:6969", "HostPort", [("10.10.1.82:69", None)])
    assert [b.address for b in t.services[3].backends] == ["10.10.1.50:80", "10.10.0.39:80"]  # continuation row
    assert t.warnings == ()


def test_1_9_dev_docs_local_redirect_with_elision() -> None:
    t = table("v1.9-dev-docs-local-redirect.txt")
    assert rows(t) == [(4, "172.20.0.51:80", "LocalRedirect", [("10.16.70.187:80", None)])]
    assert t.warnings == ("the paste leaves rows out ('[...]'): the table is partial",)


def test_1_10_dev_internal_scope_suffix() -> None:
    t = table("v1.10-dev-issue15621-internal-scope.txt")
    assert [s.id for s in t.services] == list(range(28, 40))
    internal = [s for s in t.services if s.scope == "internal"]
    assert [s.id for s in internal] == [29, 31, 33, 35, 37]
    # "/i" is a scope, not part of the address: the pair shares a frontend and differs in scope
    pair = [s for s in t.services if s.frontend == "0.0.0.0:31786"]
    assert [(s.id, s.scope, len(s.backends)) for s in pair] == [(30, None, 1), (31, "internal", 2)]
    assert all(s.protocol is None for s in t.services)
    assert rows(t)[-1] == (39, "10.109.87.207:10080", "ClusterIP", [("10.0.1.204:80", None)])
    assert t.warnings == ()


def test_1_11_dev_ipv6_any_hostport_in_a_named_fence() -> None:
    t = table("v1.11-dev-issue18014-hostport-ipv6-any.txt")
    assert rows(t) == [
        (132, "[fd04::12]:8080", "HostPort", [("[fd02::6c]:80", None)]),
        (133, "[::]:8080", "HostPort", [("[fd02::6c]:80", None)]),
        (134, "10.0.2.15:30693", "NodePort", [("10.0.0.158:80", None)]),
        (135, "192.168.56.12:6969", "HostPort", [("10.0.0.158:69", None)]),
        (136, "0.0.0.0:6969", "HostPort", [("10.0.0.158:69", None)]),
        (137, "[fd04::12]:6969", "HostPort", [("[fd02::6c]:69", None)]),
        (138, "[::]:6969", "HostPort", [("[fd02::6c]:69", None)]),
    ]
    assert t.services[2].scope == "internal" and t.services[1].scope is None


def test_1_12_7_lone_cut_row_is_refused_as_cut() -> None:
    with pytest.raises(ParseError, match=r"the only line, '5    192\.168\.199\.159:80 .*cut off\?") as info:
        table("v1.12.7-issue28094-lone-cut-row.txt")
    assert "header included" in str(info.value)


def test_1_14_13_grep_row_without_header() -> None:
    # The text alone is a complete pre-1.12 style row; only the thread (1.14.13, which always prints a state)
    # tells a reader the backend was cut at ":6". The parser cannot know the version, so it keeps the row and
    # reports no state; no version hint is claimed for one headerless row.
    t = table("v1.14.13-issue34792-grep-hostport-cut.txt")
    assert rows(t) == [(15, "10.128.0.48:60000", "HostPort", [("10.56.2.11:6", None)])]
    assert t.version_hint is None


def test_1_15_pre_cilium_dbg_states_and_cut_row() -> None:
    t = table("v1.15-pre-issue29967-dbg-cut.txt")
    assert rows(t) == [
        (1, "10.43.0.1:443", "ClusterIP", [("192.168.1.195:6443", "active")]),
        (2, "10.43.241.39:80", "ClusterIP", [("10.42.2.146:8081", "active")]),
    ]
    assert t.warnings == ("last line looks cut off and was ignored: '5      10.43.9.65:443        ClusterIP      1'",)
    assert t.version_hint == "1.12-1.16"


def test_1_15_or_1_16_ipv6_backends_and_last_row_missing_its_state() -> None:
    t = table("v1.15to1.16-issue33076-ipv6-dbg-cut.txt")
    assert [s.id for s in t.services] == [1, 2, 3, 4, 5, 6, 7]
    first = t.services[0]
    assert first.frontend == "[ffff:fff:fff:701::2:dceb]:80"
    assert [(b.address, b.state) for b in first.backends] == [
        ("[ffff:fff:fff:700:0:2:7:2c53]:80", "active"),
        ("[ffff:fff:fff:700:0:2:7:949c]:80", "active"),
    ]
    assert rows(t)[1] == (2, "10.7.14.194:9000", "ClusterIP", [("10.7.10.209:9000", "active")])
    assert t.by_frontend()[("[ffff:fff:fff:701::2:5bbd]:443", None)].backends[0].address.endswith("]:10250")
    # row 8 ends at ":9443" without the "(active)" every other backend has: cut, not a stateless backend
    assert len(t.warnings) == 1 and t.warnings[0].startswith("last line looks cut off") and "'8 " in t.warnings[0]
    assert all(b.state == "active" for s in t.services for b in s.backends)


def test_redacted_addresses_are_refused_saying_so() -> None:
    with pytest.raises(ParseError, match=r"line 2 .*10\.x\.x\.31:60443.*looks redacted"):
        table("v1.12to1.16-issue35518-redacted-ips.txt")


def test_cut_backend_in_a_continuation_row_is_dropped() -> None:
    # constructed from the 1.15/1.16 paste above: its first service, with the second backend cut before its state
    text = (
        "ID    Frontend                         Service Type   Backend\n"
        "1     [ffff:fff:fff:701::2:dceb]:80    ClusterIP      1 => [ffff:fff:fff:700:0:2:7:2c53]:80 (active)\n"
        "                                                      2 => [ffff:fff:fff:700:0:2:7:949c]:80\n"
    )
    t = parse_service_list(text)
    assert [b.address for b in t.services[0].backends] == ["[ffff:fff:fff:700:0:2:7:2c53]:80"]
    assert t.warnings and t.warnings[0].startswith("last line looks cut off")
    # the same row in a table without states (before 1.12) is a whole backend
    old = text.replace(" (active)", "")
    assert len(parse_service_list(old).services[0].backends) == 2
