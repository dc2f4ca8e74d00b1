"""ConnectionInfo: loading, validation, URLs, allocation and writing connection files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from trio_enchannel import ConnectionInfo, ConnectionInfoError, write_connection_file


def test_loads_file_written_by_jupyter_client(tmp_path: Path) -> None:
    jc_connect = pytest.importorskip("jupyter_client.connect")
    fname, cfg = jc_connect.write_connection_file(
        str(tmp_path / "kernel.json"), ip="127.0.0.1", key=b"abc", kernel_name="python3"
    )
    info = ConnectionInfo.from_file(fname)
    assert info.shell_port == cfg["shell_port"]
    assert info.hb_port == cfg["hb_port"]
    assert info.key == "abc"
    assert info.signature_scheme == "hmac-sha256"
    assert info.kernel_name == "python3"
    assert info.url("shell") == f"tcp://127.0.0.1:{cfg['shell_port']}"


def test_loads_ipc_file_written_by_jupyter_client(tmp_path: Path) -> None:
    jc_connect = pytest.importorskip("jupyter_client.connect")
    fname, cfg = jc_connect.write_connection_file(
        str(tmp_path / "kernel.json"), ip=str(tmp_path / "sock"), transport="ipc", key=b"k"
    )
    info = ConnectionInfo.from_file(fname)
    assert info.transport == "ipc"
    assert info.url("iopub") == f"ipc://{tmp_path / 'sock'}-{cfg['iopub_port']}"


def base(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "shell_port": 1,
        "iopub_port": 2,
        "stdin_port": 3,
        "control_port": 4,
        "hb_port": 5,
        "ip": "127.0.0.1",
        "key": "k",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
    }
    data.update(overrides)
    return data


def test_unknown_keys_tolerated_and_round_tripped() -> None:
    info = ConnectionInfo.from_dict(base(jupyter_session="/x.ipynb", custom=1))
    assert info.extra == {"jupyter_session": "/x.ipynb", "custom": 1}
    assert info.to_dict()["custom"] == 1
    assert ConnectionInfo.from_dict(info.to_dict()) == info


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({k: v for k, v in base().items() if k != "hb_port"}, "hb_port"),
        (base(shell_port="1"), "shell_port"),
        (base(shell_port=True), "shell_port"),
        (base(iopub_port=70000), "iopub_port"),
        (base(transport="udp"), "transport"),
        (base(signature_scheme="sha256"), "signature_scheme"),
        (base(key=5), "key"),
        (base(curve_publickey="short"), "curve_publickey"),
    ],
)
def test_invalid_fields_named_with_source(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectionInfoError, match=field) as info:
        ConnectionInfo.from_dict(data, source="conn.json")
    assert "conn.json" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(ConnectionInfoError, match=r"missing\.json"):
        ConnectionInfo.from_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConnectionInfoError, match=r"bad\.json.*JSON"):
        ConnectionInfo.from_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(ConnectionInfoError, match=r"wrong\.json"):
        ConnectionInfo.from_file(wrong)


def test_urls() -> None:
    info = ConnectionInfo.from_dict(base(ip="*"))
    assert info.url("control") == "tcp://127.0.0.1:4"
    assert info.url("control", bind=True) == "tcp://*:4"
    assert ConnectionInfo.from_dict(base(ip="0.0.0.0")).url("hb", bind=True) == "tcp://*:5"
    assert ConnectionInfo.from_dict(base(ip="::1")).url("hb") == "tcp://[::1]:5"
    with pytest.raises(ValueError, match="unknown socket"):
        info.url("nope")  # type: ignore[arg-type]


def test_secrets_not_in_repr() -> None:
    secret = "S" * 40
    info = ConnectionInfo.from_dict(base(key="hush-hush", curve_secretkey=secret))
    assert "hush-hush" not in repr(info)
    assert secret not in repr(info)


def test_port_by_socket_name() -> None:
    info = ConnectionInfo(shell_port=1, iopub_port=2, stdin_port=3, control_port=4, hb_port=5)
    names = ("shell", "iopub", "stdin", "control", "hb")
    assert [info.port(n) for n in names] == [1, 2, 3, 4, 5]  # type: ignore[arg-type]


def test_allocate_never_repeats_ports() -> None:
    seen: set[int] = set()
    for _ in range(30):
        info = ConnectionInfo.allocate()
        ports = {info.port(n) for n in ("shell", "iopub", "stdin", "control", "hb")}
        assert len(ports) == 5
        assert not (ports & seen)
        seen |= ports
    assert len(info.key) == 32


def test_allocate_ipc_uses_private_prefix() -> None:
    info = ConnectionInfo.allocate(transport="ipc")
    assert info.transport == "ipc"
    directory = Path(info.ip).parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert len({str(p) for p in info.ipc_paths()}) == 5


def test_write_is_owner_only_atomic_and_loadable(tmp_path: Path) -> None:
    info = ConnectionInfo.allocate(kernel_name="python3")
    path = write_connection_file(info, runtime_dir=tmp_path)
    assert path.parent == tmp_path
    assert path.name.startswith("kernel-") and path.suffix == ".json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ConnectionInfo.from_file(path) == info
    assert json.loads(path.read_text())["key"] == info.key
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_write_to_explicit_path_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "conn.json"
    write_connection_file(ConnectionInfo.allocate(), target)
    info2 = ConnectionInfo.allocate()
    write_connection_file(info2, target)
    assert ConnectionInfo.from_file(target) == info2
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_default_location_is_jupyter_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "rt"))
    path = write_connection_file(ConnectionInfo.allocate())
    assert path.parent == tmp_path / "rt"
    os.unlink(path)


def test_write_failure_is_typed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConnectionInfoError, match="cannot write"):
        write_connection_file(ConnectionInfo.allocate(), blocker / "x.json")
