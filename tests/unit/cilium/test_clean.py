"""``check_text``: text passes, binary data is refused, and the control-character count follows its rule."""

from __future__ import annotations

import random

import pytest

from cilium_labs.cilium._clean import _BINARY, check_text
from cilium_labs.errors import ParseError


def _rule(sample: str) -> int:
    """The rule as written first: control characters other than tab, LF, CR, ESC and form feed, and U+FFFD."""
    return sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\r\x1b\x0c") or ch == "\ufffd")


def test_the_regex_counts_what_the_rule_counts() -> None:
    rng = random.Random(7)
    alphabet = [chr(i) for i in range(0, 40)] + ["\ufffd", "é", "✓", "\x7f", "\u2028"]
    for _ in range(3000):
        sample = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 50)))
        assert len(_BINARY.findall(sample)) == _rule(sample), repr(sample)


def test_text_with_terminal_colours_and_tabs_passes() -> None:
    text = "\x1b[32mOK\x1b[0m\tall good\r\n" * 200 + "\x0c"
    assert check_text(text, "`cilium status`") == text
    assert check_text(text.encode(), "`cilium status`") == text


@pytest.mark.parametrize("data", [
    bytes(range(256)) * 20,
    "ok\n" * 100 + "\x01\x02\x03" * 10,
    "\ufffd" * 50 + "x" * 1000,
])
def test_binary_data_is_refused(data: object) -> None:
    with pytest.raises(ParseError, match="binary|not UTF-8"):
        check_text(data, "`cilium status`")


def test_a_few_stray_control_characters_are_tolerated() -> None:
    text = "x" * 1000 + "\x07"  # one bell in a thousand characters: under 2 %
    assert check_text(text, "`cilium status`") == text


def test_too_many_lines_are_refused_before_cleaning() -> None:
    """Cleaning costs microseconds a line: 2.5 million short lines took 8 s to refuse (issue 11)."""
    import time

    from cilium_labs.cilium._clean import MAX_INPUT_LINES, clean

    started = time.monotonic()
    with pytest.raises(ParseError, match="lines, more than"):
        clean("y\n" * (MAX_INPUT_LINES + 1), "`cilium status`")
    assert time.monotonic() - started < 1.0
