"""The Redis broker's wire format, without a server: commands are the same bytes whether
hiredis packs them or faena does."""

from __future__ import annotations

import pytest

from faena.brokers.redis import connection
from faena.brokers.redis.codec import priority_rank
from faena.errors import ConfigError


@pytest.mark.parametrize("args", [[], ["1.5", ""], ["é ü", "[1,2]", "{}", "x" * 300]])
def test_a_command_packs_the_same_with_or_without_hiredis(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    call = connection.FunctionCall("faena_x_enqueue", "-- code", ["1", "{p}:meta", "{p}"])
    packed = call.command(args)
    monkeypatch.setattr(connection, "_pack_command", None)
    assert call.command(args) == packed
    words = ["FCALL", "faena_x_enqueue", "1", "{p}:meta", "{p}", *args]
    expected = b"*%d\r\n" % len(words) + b"".join(
        b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words
    )
    assert packed == expected


def test_priority_ranks_are_remembered_and_still_checked() -> None:
    assert priority_rank(0) == priority_rank(0) == "7fffffffffffffff"
    assert priority_rank(10) < priority_rank(0)  # a higher priority sorts first
    for _ in range(2):  # a refused priority is never remembered
        with pytest.raises(ConfigError, match="out of range"):
            priority_rank(2**63)
