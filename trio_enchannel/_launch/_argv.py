"""The command line and the environment a kernel process starts with, from its kernelspec."""

from __future__ import annotations

import os
import re
import string
import sys
from collections.abc import Iterable, Mapping

from ._kernelspec import KernelSpec

__all__ = ["kernel_argv", "kernel_env"]

_PYTHON_NAMES = frozenset(
    {
        "python",
        f"python{sys.version_info[0]}",
        f"python{sys.version_info[0]}.{sys.version_info[1]}",
    }
)
_PLACEHOLDER = re.compile(r"\{(connection_file|resource_dir)\}")


def kernel_argv(
    spec: KernelSpec, connection_file: str | os.PathLike[str], extra_arguments: Iterable[str] = ()
) -> list[str]:
    """The command line that starts *spec*'s kernel.

    ``{connection_file}`` and ``{resource_dir}`` are substituted, a leading ``python``,
    ``python3`` or ``python3.X`` (this interpreter's version) is replaced by
    :data:`sys.executable`, and *extra_arguments* are appended.
    """
    values = {
        "connection_file": os.fspath(connection_file),
        "resource_dir": os.fspath(spec.resource_dir) if spec.resource_dir is not None else "",
    }
    argv = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in spec.argv]
    if argv[0] in _PYTHON_NAMES:
        argv[0] = sys.executable
    argv.extend(extra_arguments)
    return argv


def kernel_env(
    spec: KernelSpec,
    env: Mapping[str, str | None] | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a kernel starts with.

    The parent's environment (*base*, default :data:`os.environ`), then the spec's ``env`` (in
    which ``${VAR}`` refers to the parent's variables, as in jupyter_client), then *env* from
    the caller, where a value of ``None`` removes the variable. ``JPY_PARENT_PID`` is set to
    this process's pid so the kernel can exit if its parent dies.
    """
    result = dict(os.environ if base is None else base)
    for key, value in spec.env.items():
        result[key] = string.Template(value).safe_substitute(result)
    result["JPY_PARENT_PID"] = str(os.getpid())
    for key, maybe in (env or {}).items():
        if maybe is None:
            result.pop(key, None)
        else:
            result[key] = maybe
    return result
