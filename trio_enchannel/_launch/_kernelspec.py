"""Kernelspec discovery: which kernels are installed, and how to start them.

A kernelspec is a directory named after the kernel (``[a-z0-9._-]+``, case-insensitive) that
holds a ``kernel.json`` file, found under ``kernels/`` in one of the Jupyter data directories.
The search path follows Jupyter's rules (:func:`jupyter_core.paths.jupyter_path`): the
``JUPYTER_PATH`` entries first, then the user data directory (``JUPYTER_DATA_DIR``) and the
environment prefix (in the order jupyter_core prefers), then the system directories. When two
directories hold a kernel with the same name, the first one wins.

Like jupyter_client, the legacy ``~/.ipython/kernels`` directory is searched last, and when no
``python3`` kernel is installed but ipykernel is importable, ipykernel's built-in spec (running
the current interpreter) is offered under that name.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
from jupyter_core.paths import jupyter_path

from .._errors import ConfigurationError, InvalidKernelSpec, NoSuchKernel
from .._validate import check_bool, check_choice, check_str

__all__ = [
    "KernelSpec",
    "find_kernel_specs",
    "get_kernel_spec",
    "kernel_spec_dirs",
    "list_kernel_specs",
]

InterruptMode = Literal["signal", "message"]

NATIVE_KERNEL_NAME = "python3"

_NAME_RE = re.compile(r"^[a-z0-9._\-]+$", re.IGNORECASE)


def is_valid_kernel_name(name: str) -> bool:
    """Whether *name* follows the kernelspec naming rule ``[a-z0-9._-]+`` (any case)."""
    return bool(_NAME_RE.match(name))


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    # A command line given as one string would become its characters.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"argv must be a list of str, got {type(value).__name__}")
    return tuple(value)


def _str_dict(value: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"env must be a dict, got {type(value).__name__}")
    return dict(value)


def _any_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(value).__name__}")
    return dict(value)


def _str_field(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")


def _optional_str_field(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _str_field(_inst, attribute, value)


def _check_argv(_inst: object, _attr: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value:
        raise ConfigurationError("a kernelspec's argv must not be empty")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"argv items must be strings, got {item!r}")


def _check_env(_inst: object, _attr: attrs.Attribute[Any], value: dict[str, str]) -> None:
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"env entries must map strings to strings, got {k!r}: {v!r}")


def _interrupt_mode(value: str) -> InterruptMode:
    lowered = str(value).lower()
    if lowered == "signal":
        return "signal"
    if lowered == "message":
        return "message"
    raise ConfigurationError(f"interrupt_mode must be 'signal' or 'message', got {value!r}")


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class KernelSpec:
    """How to start one kind of kernel: the contents of a ``kernel.json`` plus where it lives.

    Build one by hand to launch a kernel that is not installed, or get one from
    :func:`get_kernel_spec` / :func:`list_kernel_specs`.

    Attributes:
        name: the kernelspec's name (its directory name, lower-cased).
        argv: the command line; ``{connection_file}`` and ``{resource_dir}`` are substituted
            at launch, and a leading ``python``/``python3`` runs the current interpreter.
        display_name: the human-readable name.
        language: the kernel's language (``"python"``, ``"bash"``, ...).
        env: environment variables set on top of the parent's when the kernel starts.
        interrupt_mode: ``"signal"`` (SIGINT to the kernel's process group) or ``"message"``
            (an ``interrupt_request`` on the control channel).
        metadata: free-form metadata (``debugger``, ``supported_encryption``, ...).
        resource_dir: the kernelspec's directory, or ``None`` for a spec built by hand.
        kernel_protocol_version: the protocol version the kernel declares, if any.

    Raises:
        ConfigurationError: *argv* is empty or *interrupt_mode* is not ``signal``/``message``
            (a :class:`ValueError`).
        TypeError: a field has the wrong type (*argv* must be a list of strings, not one
            string; *env* a dict of strings).
    """

    name: str = attrs.field(validator=_str_field)
    argv: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=_check_argv)
    display_name: str = attrs.field(default="", validator=_str_field)
    language: str = attrs.field(default="", validator=_str_field)
    env: dict[str, str] = attrs.field(factory=dict, converter=_str_dict, validator=_check_env)
    interrupt_mode: InterruptMode = attrs.field(default="signal", converter=_interrupt_mode)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_any_dict)
    resource_dir: Path | None = attrs.field(default=None, converter=_optional_path)
    kernel_protocol_version: str | None = attrs.field(default=None, validator=_optional_str_field)

    @property
    def supported_encryption(self) -> tuple[str, ...]:
        """The transport encryption schemes the kernel declares (``("curve",)`` or ``()``)."""
        declared = self.metadata.get("supported_encryption", ())
        if isinstance(declared, str):
            return (declared,)
        if isinstance(declared, Sequence):
            return tuple(str(x) for x in declared)
        return ()

    @property
    def supports_curve(self) -> bool:
        """Whether the kernel declares CurveZMQ support in its metadata."""
        return "curve" in self.supported_encryption

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        name: str,
        resource_dir: str | os.PathLike[str] | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> KernelSpec:
        """Build a spec from the contents of a ``kernel.json``.

        Unknown keys are ignored. *source* names the file in error messages.

        Raises:
            InvalidKernelSpec: a field is missing or has the wrong type.
        """
        where = f" in {source}" if source is not None else ""
        path = Path(source) if source is not None else None

        def bad(msg: str) -> InvalidKernelSpec:
            return InvalidKernelSpec(f"invalid kernelspec {name!r}{where}: {msg}", path=path)

        if not isinstance(data, Mapping):
            raise bad(f"expected a JSON object, got {type(data).__name__}")
        argv = data.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise bad(f"'argv' must be a non-empty list of strings, got {argv!r}")

        def text(key: str, default: str) -> str:
            value = data.get(key, default)
            if not isinstance(value, str):
                raise bad(f"{key!r} must be a string, got {value!r}")
            return value

        display_name = text("display_name", name)
        language = text("language", "")
        mode = text("interrupt_mode", "signal")
        if mode.lower() not in ("signal", "message"):
            raise bad(f"'interrupt_mode' must be 'signal' or 'message', got {mode!r}")
        env = data.get("env", {})
        if env is None:
            env = {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise bad(f"'env' must be an object of string values, got {env!r}")
        metadata = data.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise bad(f"'metadata' must be an object, got {metadata!r}")
        version = data.get("kernel_protocol_version")
        if version is not None and not isinstance(version, str):
            raise bad(f"'kernel_protocol_version' must be a string, got {version!r}")
        return cls(
            name=name,
            argv=argv,
            display_name=display_name,
            language=language,
            env=env,
            interrupt_mode=_interrupt_mode(mode),
            metadata=metadata,
            resource_dir=resource_dir,
            kernel_protocol_version=version,
        )

    @classmethod
    def from_resource_dir(
        cls, resource_dir: str | os.PathLike[str], *, name: str | None = None
    ) -> KernelSpec:
        """Read ``kernel.json`` from a kernelspec directory.

        The name defaults to the directory's name, lower-cased.

        Raises:
            InvalidKernelSpec: the file is missing, unreadable, not JSON, or malformed.
        """
        directory = Path(resource_dir)
        spec_name = name if name is not None else directory.name.lower()
        kernel_json = directory / "kernel.json"
        try:
            raw = kernel_json.read_bytes()
        except OSError as exc:
            raise InvalidKernelSpec(
                f"cannot read kernelspec {spec_name!r} from {kernel_json}: {exc}",
                path=kernel_json,
            ) from exc
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidKernelSpec(
                f"invalid kernelspec {spec_name!r}: {kernel_json} is not valid JSON: {exc}",
                path=kernel_json,
            ) from exc
        return cls.from_dict(data, name=spec_name, resource_dir=directory, source=kernel_json)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a ``kernel.json`` dict (without name and resource directory)."""
        data: dict[str, Any] = {
            "argv": list(self.argv),
            "display_name": self.display_name,
            "language": self.language,
            "interrupt_mode": self.interrupt_mode,
            "env": dict(self.env),
            "metadata": dict(self.metadata),
        }
        if self.kernel_protocol_version is not None:
            data["kernel_protocol_version"] = self.kernel_protocol_version
        return data


def kernel_spec_dirs() -> list[Path]:
    """The directories searched for kernelspecs, highest priority first.

    Follows :func:`jupyter_core.paths.jupyter_path` (``JUPYTER_PATH``, ``JUPYTER_DATA_DIR``,
    the environment prefix, system directories), then the legacy IPython directory.
    """
    dirs = [Path(p) for p in jupyter_path("kernels")]
    ipython_dir = os.environ.get("IPYTHONDIR") or os.path.join("~", ".ipython")
    dirs.append(Path(os.path.expanduser(ipython_dir)) / "kernels")
    return dirs


def _scan(directory: Path) -> list[tuple[str, Path]]:
    """Kernelspec directories in *directory*, as (lower-cased name, path), sorted by name."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:  # missing, not a directory, unreadable
        return []
    found: list[tuple[str, Path]] = []
    for entry in entries:
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        path = Path(entry.path)
        if not (path / "kernel.json").is_file():
            continue
        if not is_valid_kernel_name(entry.name):
            warnings.warn(
                f"ignoring kernelspec directory with an invalid name (names may only hold "
                f"ASCII letters, digits, '.', '_' and '-'): {path}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found.append((entry.name.lower(), path))
    return found


def _native_spec() -> KernelSpec | None:
    """ipykernel's built-in spec for the current interpreter, when ipykernel is importable."""
    try:
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    except ImportError:
        return None
    return KernelSpec.from_dict(
        get_kernel_dict(), name=NATIVE_KERNEL_NAME, resource_dir=RESOURCES, source=None
    )


def _dirs(kernel_dirs: Iterable[str | os.PathLike[str]] | None) -> list[Path]:
    if kernel_dirs is None:
        return kernel_spec_dirs()
    # A lone path is iterable too (a str by its characters): never search "/", "h", ...
    if isinstance(kernel_dirs, (str, bytes, os.PathLike)) or not isinstance(kernel_dirs, Iterable):
        raise TypeError(
            f"kernel_dirs must be a list of directories or None, got {type(kernel_dirs).__name__}"
        )
    dirs = list(kernel_dirs)
    for index, item in enumerate(dirs):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"kernel_dirs[{index}] must be a path, got {type(item).__name__}")
    return [Path(d) for d in dirs]


def find_kernel_specs(
    *,
    kernel_dirs: Iterable[str | os.PathLike[str]] | None = None,
    include_native: bool = True,
) -> dict[str, Path]:
    """Map each installed kernelspec's name to its directory.

    Args:
        kernel_dirs: directories to search instead of Jupyter's path (highest priority
            first).
        include_native: offer ipykernel's built-in ``python3`` spec when no ``python3``
            kernelspec is installed and ipykernel is importable.

    Returns:
        ``{name: resource_dir}``, sorted by name. For a name found in several directories,
        the first directory wins.
    """
    check_bool("include_native", include_native)
    found: dict[str, Path] = {}
    for directory in _dirs(kernel_dirs):
        for name, path in _scan(directory):
            found.setdefault(name, path)
    if include_native and NATIVE_KERNEL_NAME not in found:
        try:
            from ipykernel.kernelspec import RESOURCES
        except ImportError:
            pass
        else:
            found[NATIVE_KERNEL_NAME] = Path(RESOURCES)
    return dict(sorted(found.items()))


def list_kernel_specs(
    *,
    kernel_dirs: Iterable[str | os.PathLike[str]] | None = None,
    include_native: bool = True,
    on_error: Literal["warn", "raise", "skip"] = "warn",
) -> list[KernelSpec]:
    """Every installed kernelspec, parsed, sorted by name.

    Args:
        kernel_dirs: directories to search instead of Jupyter's path.
        include_native: see :func:`find_kernel_specs`.
        on_error: what to do with a kernelspec whose ``kernel.json`` is invalid: skip it with
            a :class:`RuntimeWarning` (``"warn"``), skip it silently (``"skip"``), or raise.

    Raises:
        InvalidKernelSpec: a ``kernel.json`` is invalid and *on_error* is ``"raise"``.
        ConfigurationError: *on_error* is none of those.
    """
    check_choice("on_error", on_error, ("warn", "raise", "skip"))
    specs: list[KernelSpec] = []
    for name, path in find_kernel_specs(
        kernel_dirs=kernel_dirs, include_native=include_native
    ).items():
        try:
            specs.append(_load(name, path))
        except InvalidKernelSpec as exc:
            if on_error == "raise":
                raise
            if on_error == "warn":
                warnings.warn(f"skipping kernelspec: {exc}", RuntimeWarning, stacklevel=2)
    return specs


def _load(name: str, path: Path) -> KernelSpec:
    if name == NATIVE_KERNEL_NAME:
        native = _native_spec_if_resources(path)
        if native is not None:
            return native
    return KernelSpec.from_resource_dir(path, name=name)


def _native_spec_if_resources(path: Path) -> KernelSpec | None:
    """ipykernel's own spec when *path* is ipykernel's (uninstalled) resources directory."""
    if (path / "kernel.json").is_file():  # an installed spec: no need to import ipykernel
        return None
    try:
        from ipykernel.kernelspec import RESOURCES
    except ImportError:
        return None
    if Path(RESOURCES) != path:
        return None
    return _native_spec()


def get_kernel_spec(
    name: str,
    *,
    kernel_dirs: Iterable[str | os.PathLike[str]] | None = None,
    include_native: bool = True,
) -> KernelSpec:
    """The kernelspec called *name* (case-insensitive; the first directory that has it wins).

    Args:
        name: the kernelspec name, for example ``"python3"``.
        kernel_dirs: directories to search instead of Jupyter's path.
        include_native: see :func:`find_kernel_specs`.

    Raises:
        NoSuchKernel: no kernelspec has that name; the error lists the ones that exist.
        InvalidKernelSpec: the kernelspec exists but its ``kernel.json`` is invalid.
        TypeError: ``name`` is not a str, or ``kernel_dirs`` not a list of paths.
    """
    check_str("name", name)
    check_bool("include_native", include_native)
    wanted = name.lower()
    if is_valid_kernel_name(name):
        for directory in _dirs(kernel_dirs):
            for found, path in _scan(directory):
                if found == wanted:
                    return _load(found, path)
        if include_native and wanted == NATIVE_KERNEL_NAME:
            native = _native_spec()
            if native is not None:
                return native
    available = find_kernel_specs(kernel_dirs=kernel_dirs, include_native=include_native)
    raise NoSuchKernel(name, list(available))
