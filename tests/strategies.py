"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text that survives a UTF-8 round trip (no lone surrogates).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)

json_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | text
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(text, json_values, max_size=6)

identities = st.lists(
    st.binary(min_size=1, max_size=16).filter(lambda b: b != b"<IDS|MSG>"), max_size=3
)
buffers = st.lists(st.binary(max_size=256), max_size=3)
msg_types = st.sampled_from(
    ["execute_request", "stream", "display_data", "status", "comm_msg", "kernel_info_reply"]
) | st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=20)
channels = st.sampled_from(["shell", "control", "stdin", "iopub"])
schemes = st.sampled_from(["hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-md5", "hmac-sha3_256"])
keys = st.one_of(st.just(""), st.text(min_size=1, max_size=40).filter(lambda s: "\ud800" not in s))

# Frame lists: arbitrary bytes, sometimes with a delimiter and plausible JSON frames.
json_frame = st.sampled_from(
    [
        b"{}",
        b"[]",
        b"null",
        b"1",
        b'"x"',
        b"{",
        b"\xff\xfe",
        b'{"msg_id": 1}',
        b"NaN",
        b'{"msg_id": "a", "msg_type": "b"}',
        b'{"a": NaN}',
    ]
)
any_frame = st.binary(max_size=64) | json_frame | st.just(b"<IDS|MSG>")
frame_lists = st.lists(any_frame, max_size=12)
