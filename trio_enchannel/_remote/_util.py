"""Small helpers shared by the remote modules."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["unwrap_single"]


@contextlib.contextmanager
def unwrap_single() -> Iterator[None]:
    """Let a lone exception out of a nursery as itself, not inside an exception group.

    A nursery owning background tasks would otherwise wrap the caller's own exception (or a
    single error of ours) in a group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        exc = group.exceptions[0]
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context
            del exc
