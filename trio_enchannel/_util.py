"""Small helpers shared by the modules that own nurseries (and the rate of repeated log lines)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on exceptiongroup there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]
else:
    import builtins

    BaseExceptionGroup = builtins.BaseExceptionGroup  # re-exported for the other modules

__all__ = [
    "SCHEDULE_EVERY",
    "BaseExceptionGroup",
    "ScheduleBudget",
    "lazy_exports",
    "lone_exception",
    "unwrap_single",
    "worth_logging",
]


def worth_logging(count: int) -> bool:
    """Whether the ``count``-th occurrence of a repeated event gets a log line: the first ten,
    then powers of two (a flood of bad messages must not become a flood of log lines)."""
    return count <= 10 or count & (count - 1) == 0


def lone_exception(exc: BaseException) -> BaseException:
    """The lone exception inside ``exc``'s (nested) single-exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


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
        exc = lone_exception(group)
        if exc is group:
            raise
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context
            del exc


#: A send or receive that completes without waiting skips its schedule point, except every
#: ``SCHEDULE_EVERY``-th such call in a row on the same object.
SCHEDULE_EVERY = 16


class ScheduleBudget:
    """Amortised schedule points for operations that did not have to wait.

    Every send and receive of the channels is a cancel point: a cancelled caller gets
    :class:`trio.Cancelled` before anything happens. A call that must wait is a schedule point
    as well. A call that completes at once (a message was queued, ZeroMQ took the frames)
    yields to the scheduler only every :data:`SCHEDULE_EVERY`-th time in a row: a full Trio
    scheduler pass (an ``epoll_wait``) per message would cost more than the rest of the
    call, while a consumer that keeps finding messages still lets other tasks run after at
    most that many of them. Usage::

        await trio.lowlevel.checkpoint_if_cancelled()
        ...  # the operation, without waiting
        if budget.spend():
            await trio.lowlevel.cancel_shielded_checkpoint()
    """

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls = 0

    def spend(self) -> bool:
        """Count one call that did not wait; ``True`` when it must yield."""
        self._calls += 1
        if self._calls >= SCHEDULE_EVERY:
            self._calls = 0
            return True
        return False

    def reset(self) -> None:
        """A call waited (and so yielded): start counting again."""
        self._calls = 0


def _is_ours_and_private(module: str, package: str) -> bool:
    root, *parts = module.split(".")
    return root == package.partition(".")[0] and any(part.startswith("_") for part in parts)


def _evaluate_annotations(cls: type, module_name: str) -> None:
    """Evaluate the class's string annotations where they were written.

    :func:`typing.get_type_hints` (and so attrs, Sphinx, ``inspect.get_annotations``) looks a
    class's string annotations up in the module its ``__module__`` names: once that is the
    package, the private names they use are not there. An annotation that cannot be evaluated
    (a name imported for type checkers only) stays a string, as unresolvable as before.
    """
    # The class's own dict, changed in place (inspect.get_annotations returns a copy).
    annotations = cls.__dict__.get("__annotations__")  # noqa: RUF063
    if not isinstance(annotations, dict):
        return
    namespace = vars(sys.modules[module_name])
    class_namespace = dict(vars(cls))
    for key, value in annotations.items():
        if isinstance(value, str):
            try:
                annotations[key] = eval(value, namespace, class_namespace)
            except Exception:  # left as it was
                continue


def lazy_exports(
    namespace: dict[str, Any],
    exports: Mapping[str, Sequence[str]],
    *,
    extra_for: Callable[[str], str | None] = lambda module: None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) that import each public name
    from its private module on first use and cache it in the package's namespace.

    Each public class and function then shows the package as its module (``__module__``), in
    tracebacks, reprs and the docs, like trio's names (``trio_enchannel.KernelDied``, not
    ``trio_enchannel._errors.KernelDied``): on every first use, the public names of every
    listed module imported so far are given the package's name, so that the errors that
    the module just imported can raise are named right even before the caller looks them
    up. Only objects defined at the top of their module under their public name are renamed,
    so pickle still finds each one (it looks ``__qualname__`` up in ``__module__``, where
    ``__getattr__`` imports it).

    Args:
        namespace: the package's ``globals()`` (``__name__`` and ``__all__`` are read there).
        exports: each private module, relative to the package, and the public names it
            defines; ``__all__`` is the same names.
        extra_for: for a module that needs an optional extra, that extra's name; when a
            dependency is missing, the ImportError then says which extra to install.
    """
    package = namespace["__name__"]
    table = {name: module for module, names in exports.items() for name in names}
    absolute = {module: importlib.util.resolve_name(module, package) for module in exports}
    renamed: set[str] = set()

    def rename_loaded() -> None:
        # Rename everything first, then evaluate annotations where they were written: an
        # annotation such as DroppingQueue[Message] captures its class's module when it is
        # built, so every class must carry its public module by then.
        classes: list[tuple[type, str]] = []
        for module_name, names in exports.items():
            module = sys.modules.get(absolute[module_name])
            if module is None or module_name in renamed:
                continue
            renamed.add(module_name)
            for name in names:
                value = getattr(module, name, None)
                if (
                    isinstance(value, (type, types.FunctionType))
                    and value.__qualname__ == name
                    and _is_ours_and_private(value.__module__, package)
                ):
                    if isinstance(value, type):
                        classes.append((value, value.__module__))
                    value.__module__ = package
        for cls, module_name in classes:
            _evaluate_annotations(cls, module_name)

    def __getattr__(name: str) -> Any:
        try:
            module_name = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        try:
            module = importlib.import_module(module_name, package)
        except ModuleNotFoundError as exc:
            extra = extra_for(module_name)
            if extra is None or (exc.name or package).startswith(package.partition(".")[0]):
                raise  # not a missing dependency, but a bug of ours: say so
            raise ImportError(  # pragma: no cover - depends on the environment
                f"{package}.{name} needs the {extra} extra: pip install "
                f"'trio-enchannel[{extra}]' ({exc})"
            ) from exc
        rename_loaded()
        value = getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace["__all__"]})

    return __getattr__, __dir__
