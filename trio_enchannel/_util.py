"""Small helpers shared by the modules that own nurseries."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on exceptiongroup there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["BaseExceptionGroup", "unwrap_single"]


@contextlib.contextmanager
def unwrap_single() -> Iterator[None]:
    """Let a lone exception out of a nursery as itself, not inside an exception group.

    A nursery that owns background tasks would otherwise wrap the caller's own exceptions
    (and ours, such as :class:`~trio_enchannel.KernelStartupError`) in a group. Nested
    single-exception groups are unwrapped too; a group of several errors is re-raised as is.
    The exception's ``__context__`` is preserved.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context
            del exc
