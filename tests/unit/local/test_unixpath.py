"""Sockets in folders deeper than a socket address holds (107 bytes) still bind and connect."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cilium_labs.local import unixpath


def _deep(tmp_path: Path) -> Path:
    folder = tmp_path / ("d" * 60) / ("e" * 60)
    folder.mkdir(parents=True)
    return folder / "control.sock"


def test_a_deep_path_is_too_long_for_a_plain_bind(tmp_path: Path) -> None:
    path = _deep(tmp_path)
    assert not unixpath.fits(path)
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(OSError):
        s.bind(str(path))  # what failed before: "AF_UNIX path too long"


def test_short_name_binds_and_connects_the_same_socket(tmp_path: Path) -> None:
    path = _deep(tmp_path)
    with socket.socket(socket.AF_UNIX) as server:
        with unixpath.short(path) as name:
            assert len(name) <= unixpath.SUN_PATH_MAX
            server.bind(name)
        server.listen(1)
        assert path.is_socket()  # the socket is where it was asked for, not in /proc
        with socket.socket(socket.AF_UNIX) as client:
            with unixpath.short(path) as name:
                client.connect(name)
            conn, _ = server.accept()
            with conn:
                client.sendall(b"ok")
                assert conn.recv(2) == b"ok"


def test_a_short_path_is_used_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with unixpath.short(path) as name:
        assert name == str(path)
