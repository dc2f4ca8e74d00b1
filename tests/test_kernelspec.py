"""Kernelspec discovery: Jupyter's path rules, parsing, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trio_enchannel._errors import InvalidKernelSpec, NoSuchKernel
from trio_enchannel._launch._kernelspec import (
    KernelSpec,
    find_kernel_specs,
    get_kernel_spec,
    kernel_spec_dirs,
    list_kernel_specs,
)


def write_spec(root: Path, name: str, data: dict[str, Any] | str | None = None) -> Path:
    """Create ``root/name/kernel.json`` (a dict is dumped as JSON, a str written verbatim)."""
    directory = root / name
    directory.mkdir(parents=True)
    if data is None:
        data = {"argv": ["echo", "{connection_file}"], "display_name": name, "language": "x"}
    text = data if isinstance(data, str) else json.dumps(data)
    (directory / "kernel.json").write_text(text, encoding="utf-8")
    return directory


def test_parse_full_spec(tmp_path: Path) -> None:
    d = write_spec(
        tmp_path,
        "mykernel",
        {
            "argv": ["python", "-m", "mk", "-f", "{connection_file}"],
            "display_name": "My Kernel",
            "language": "mylang",
            "env": {"A": "1"},
            "interrupt_mode": "Message",
            "metadata": {"debugger": True, "supported_encryption": ["curve"]},
            "kernel_protocol_version": "5.5",
            "codemirror_mode": "shell",
        },
    )
    spec = KernelSpec.from_resource_dir(d)
    assert spec.name == "mykernel"
    assert spec.argv == ("python", "-m", "mk", "-f", "{connection_file}")
    assert spec.display_name == "My Kernel"
    assert spec.language == "mylang"
    assert spec.env == {"A": "1"}
    assert spec.interrupt_mode == "message"
    assert spec.metadata["debugger"] is True
    assert spec.supports_curve
    assert spec.resource_dir == d
    assert spec.kernel_protocol_version == "5.5"
    assert spec.to_dict()["interrupt_mode"] == "message"
    assert "codemirror_mode" not in spec.to_dict()


def test_defaults(tmp_path: Path) -> None:
    spec = KernelSpec.from_resource_dir(write_spec(tmp_path, "Mini", {"argv": ["k"]}))
    assert spec.name == "mini"
    assert spec.display_name == "mini"
    assert spec.language == ""
    assert spec.env == {}
    assert spec.interrupt_mode == "signal"
    assert spec.metadata == {}
    assert spec.kernel_protocol_version is None
    assert not spec.supports_curve


def test_spec_by_hand_validates() -> None:
    with pytest.raises(ValueError, match="argv"):
        KernelSpec(name="x", argv=())
    with pytest.raises(ValueError, match="interrupt_mode"):
        KernelSpec(name="x", argv=["k"], interrupt_mode="sometimes")
    with pytest.raises(TypeError, match="env"):
        KernelSpec(name="x", argv=["k"], env={"A": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe".decode("latin-1"), "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"display_name": "x"}), "'argv'"),
        (json.dumps({"argv": []}), "'argv'"),
        (json.dumps({"argv": ["a", 1]}), "'argv'"),
        (json.dumps({"argv": ["a"], "display_name": 3}), "'display_name'"),
        (json.dumps({"argv": ["a"], "env": {"A": 1}}), "'env'"),
        (json.dumps({"argv": ["a"], "env": []}), "'env'"),
        (json.dumps({"argv": ["a"], "metadata": []}), "'metadata'"),
        (json.dumps({"argv": ["a"], "interrupt_mode": "never"}), "'interrupt_mode'"),
        (json.dumps({"argv": ["a"], "kernel_protocol_version": 5}), "'kernel_protocol_version'"),
    ],
)
def test_invalid_kernel_json_names_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    d = write_spec(tmp_path, "broken", content)
    with pytest.raises(InvalidKernelSpec, match=fragment) as info:
        get_kernel_spec("broken", kernel_dirs=[tmp_path])
    assert str(d / "kernel.json") in str(info.value)
    assert info.value.path == d / "kernel.json"
    assert isinstance(info.value, ValueError)


def test_first_directory_wins_and_lookup_is_case_insensitive(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_spec(first, "Shared", {"argv": ["first"]})
    write_spec(second, "shared", {"argv": ["second"]})
    write_spec(second, "only-second")
    assert find_kernel_specs(kernel_dirs=[first, second], include_native=False) == {
        "only-second": second / "only-second",
        "shared": first / "Shared",
    }
    assert get_kernel_spec("SHARED", kernel_dirs=[first, second]).argv == ("first",)
    assert get_kernel_spec("shared", kernel_dirs=[second, first]).argv == ("second",)


def test_directories_without_kernel_json_and_invalid_names_are_ignored(tmp_path: Path) -> None:
    write_spec(tmp_path, "good.name_1-x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    write_spec(tmp_path, "bad name!")
    with pytest.warns(RuntimeWarning, match="invalid name"):
        names = find_kernel_specs(kernel_dirs=[tmp_path, tmp_path / "missing"])
    assert "good.name_1-x" in names
    assert "empty" not in names
    assert "bad name!" not in names


def test_no_such_kernel_lists_available(tmp_path: Path) -> None:
    write_spec(tmp_path, "alpha")
    write_spec(tmp_path, "beta")
    with pytest.raises(NoSuchKernel) as info:
        get_kernel_spec("gamma", kernel_dirs=[tmp_path], include_native=False)
    assert info.value.name == "gamma"
    assert info.value.available == ["alpha", "beta"]
    assert "alpha, beta" in str(info.value)
    assert isinstance(info.value, LookupError)
    with pytest.raises(NoSuchKernel, match=r"\(none installed\)"):
        get_kernel_spec("python3", kernel_dirs=[], include_native=False)
    # A name that breaks the naming rules is simply not found.
    with pytest.raises(NoSuchKernel):
        get_kernel_spec("../alpha", kernel_dirs=[tmp_path])


def test_native_python3_fallback_runs_this_interpreter() -> None:
    pytest.importorskip("ipykernel", reason="the fallback is ipykernel's own spec")
    assert "python3" in find_kernel_specs(kernel_dirs=[])
    spec = get_kernel_spec("python3", kernel_dirs=[])
    assert spec.argv[0] == sys.executable
    assert "{connection_file}" in spec.argv
    assert spec.language == "python"
    assert [s.name for s in list_kernel_specs(kernel_dirs=[])] == ["python3"]


def test_an_installed_python3_spec_is_read_without_importing_ipykernel(tmp_path: Path) -> None:
    """Only a ``python3`` directory without ``kernel.json`` may be ipykernel's own resources;
    importing ipykernel (and jupyter_client with it) to check an installed spec cost a
    notebook run a tenth of a second before its first kernel could start."""
    write_spec(tmp_path, "python3")
    code = (
        "import sys\n"
        "from trio_enchannel._launch._kernelspec import get_kernel_spec\n"
        f"spec = get_kernel_spec('python3', kernel_dirs=[{str(tmp_path)!r}])\n"
        "print(spec.argv[0], 'ipykernel' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["echo", "False"]


def test_list_kernel_specs_error_policy(tmp_path: Path) -> None:
    write_spec(tmp_path, "ok")
    write_spec(tmp_path, "broken", "{")
    with pytest.warns(RuntimeWarning, match="broken"):
        specs = list_kernel_specs(kernel_dirs=[tmp_path], include_native=False)
    assert [s.name for s in specs] == ["ok"]
    skipped = list_kernel_specs(kernel_dirs=[tmp_path], include_native=False, on_error="skip")
    assert [s.name for s in skipped] == ["ok"]
    with pytest.raises(InvalidKernelSpec, match="broken"):
        list_kernel_specs(kernel_dirs=[tmp_path], include_native=False, on_error="raise")


def test_jupyter_path_is_honoured_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jp = tmp_path / "jp"
    data = tmp_path / "data"
    write_spec(jp / "kernels", "python3", {"argv": ["from-jupyter-path"]})
    write_spec(data / "kernels", "python3", {"argv": ["from-data-dir"]})
    write_spec(data / "kernels", "datak", {"argv": ["d"]})
    monkeypatch.setenv("JUPYTER_PATH", str(jp))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    dirs = kernel_spec_dirs()
    assert dirs[0] == jp / "kernels"
    assert data / "kernels" in dirs
    assert get_kernel_spec("python3").argv == ("from-jupyter-path",)
    assert get_kernel_spec("datak").argv == ("d",)
    found = find_kernel_specs()
    assert found["python3"] == jp / "kernels" / "python3"
    assert found["datak"] == data / "kernels" / "datak"


def test_environment_prefix_is_searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "empty-data"))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    assert Path(sys.prefix) / "share" / "jupyter" / "kernels" in kernel_spec_dirs()


def test_installed_kernels() -> None:
    """The kernels `pip install .[test]` brings: ipykernel (with curve) and xeus-python."""
    pytest.importorskip("ipykernel")
    if sys.platform.startswith("linux"):
        pytest.importorskip("xpython_launcher", reason="xeus-python")
    python3 = get_kernel_spec("python3")
    assert python3.language == "python"
    assert python3.supports_curve
    if sys.platform.startswith("linux"):
        xpython = get_kernel_spec("xpython")
        assert xpython.language == "python"
        assert not xpython.supports_curve


def test_bash_kernel_installed_into_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("bash_kernel")
    subprocess.run(
        [sys.executable, "-m", "bash_kernel.install", "--prefix", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    spec = get_kernel_spec("bash")
    assert spec.language == "bash"
    assert spec.env == {"PS1": "$"}
    assert spec.resource_dir == tmp_path / "share" / "jupyter" / "kernels" / "bash"
