"""The counters and rejects shared by every reader (trio_enchannel._io._stats)."""

from __future__ import annotations

from trio_enchannel._io._stats import RecentIds


def test_recent_ids_forget_the_oldest_beyond_their_size() -> None:
    """The ZeroMQ nudges and the websocket probes: one bounded set that forgets the oldest
    ids first (never all at once, which would deliver what a recent probe causes)."""
    ids = RecentIds(size=3)
    assert not ids
    for msg_id in ("a", "b", "c", "d"):
        ids.add(msg_id)
    assert len(ids) == 3
    assert "a" not in ids
    assert all(msg_id in ids for msg_id in ("b", "c", "d"))
    ids.add("e")
    assert "b" not in ids and "e" in ids
