"""The Go tabwriter port: the padding rules real agent output follows."""

from __future__ import annotations

from cilium_labs.sim.tabwriter import TabWriter, tabwrite


def test_cells_padded_to_widest_plus_padding_and_trailing_text_unpadded() -> None:
    text = "TUNNEL\tVALUE\n10.244.1.0\t172.18.0.3:0\t\n10.244.22.0\t172.18.0.4:0\t\n"
    assert tabwrite(text, 5, 3) == (
        "TUNNEL        VALUE\n"
        "10.244.1.0    172.18.0.3:0   \n"
        "10.244.22.0   172.18.0.4:0   \n"
    )


def test_minwidth_applies_to_narrow_columns() -> None:
    assert tabwrite("a\tb\t\n", 5, 3) == "a    b    \n"


def test_line_without_tabs_ends_a_column_block() -> None:
    text = "KVStore:\tOk\tDisabled\nKubernetes APIs:\t[x]\nNodeMonitor (a long label):\tOk\nIPAM:\tv4\n"
    out = tabwrite(text, 2, 3).splitlines()
    assert out[0] == "KVStore:                      Ok   Disabled"
    # the label column spans every line (all have a first cell); column 2 only the first line
    assert out[1].startswith("Kubernetes APIs:              [x]")


def test_empty_cells_are_padded_too() -> None:
    assert tabwrite("1\t10.0.0.1:80\tClusterIP\t\n\t\t\tx\n", 0, 3) == (
        "1   10.0.0.1:80   ClusterIP   \n"
        "                              x\n"
    )


def test_writer_object_and_no_trailing_newline() -> None:
    w = TabWriter(2, 3)
    w.write("a\tb\n")
    w.write("ccc\td")
    assert w.getvalue() == "a     b\nccc   d"
