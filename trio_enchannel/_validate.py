"""Checking the caller's arguments at the public API, before anything else happens.

Every public entry point checks its arguments with these helpers first: a wrong type is a
:class:`TypeError`, a value out of range an :class:`~trio_enchannel.EnchannelError` subclass
(:class:`~trio_enchannel.ConfigurationError` by default), and either names the argument. A
value is never silently replaced by another (no ``bytes(5)`` for a key, no ``list("--x")``
for an argument list). Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ._errors import ConfigurationError, EnchannelError

__all__ = [
    "check_bool",
    "check_buffers",
    "check_bytes",
    "check_callable",
    "check_choice",
    "check_int",
    "check_ip",
    "check_mapping",
    "check_option_names",
    "check_optional_str",
    "check_seconds",
    "check_str",
    "check_str_sequence",
    "type_name",
]

_Error = type[EnchannelError]


def type_name(value: object) -> str:
    """The name of ``value``'s type, as the error messages show it."""
    return type(value).__name__


def _type_error(name: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{name} must be {expected}, got {type_name(value)} {value!r:.80}")


def check_bool(name: str, value: object) -> bool:
    """``value`` itself, which must be a :class:`bool`."""
    if not isinstance(value, bool):
        raise _type_error(name, "a bool", value)
    return value


def check_str(
    name: str, value: object, *, nonempty: bool = False, error: _Error = ConfigurationError
) -> str:
    """``value`` itself, which must be a :class:`str` (and not empty, with ``nonempty``)."""
    if not isinstance(value, str):
        raise _type_error(name, "a str", value)
    if nonempty and not value:
        raise error(f"{name} must not be empty")
    return value


def check_optional_str(
    name: str, value: object, *, nonempty: bool = False, error: _Error = ConfigurationError
) -> str | None:
    """``value`` itself, which must be ``None`` or a :class:`str`."""
    if value is None:
        return None
    return check_str(name, value, nonempty=nonempty, error=error)


def check_bytes(
    name: str, value: object, *, nonempty: bool = False, error: _Error = ConfigurationError
) -> bytes:
    """``value`` as :class:`bytes`; it must be bytes-like (``bytes``, ``bytearray``,
    ``memoryview``), never an integer (``bytes(5)`` is five NUL bytes) nor a string."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _type_error(name, "bytes", value)
    data = bytes(value)
    if nonempty and not data:
        raise error(f"{name} must not be empty")
    return data


def check_int(
    name: str,
    value: object,
    *,
    at_least: int | None = None,
    at_most: int | None = None,
    error: _Error = ConfigurationError,
) -> int:
    """``value`` as :class:`int`; it must be an integer (not a bool, not a float) in
    ``at_least..at_most``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _type_error(name, "an int", value)
    number = int(value)
    low, high = at_least, at_most
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            bounds = f">= {low}"
        elif low is None:
            bounds = f"<= {high}"
        else:
            bounds = f"in {low}..{high}"
        raise error(f"{name} must be {bounds}, got {number}")
    return number


def check_seconds(
    name: str,
    value: object,
    *,
    allow_zero: bool = False,
    allow_inf: bool = False,
    error: _Error = ConfigurationError,
) -> float:
    """``value`` as :class:`float`: a real number of seconds, positive (or ``>= 0`` with
    ``allow_zero``), never NaN, infinite only with ``allow_inf``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _type_error(name, "a number of seconds", value)
    seconds = float(value)
    if math.isnan(seconds):
        raise error(f"{name} must be a number of seconds, got NaN")
    if math.isinf(seconds) and not (allow_inf and seconds > 0):
        raise error(f"{name} must be finite, got {seconds}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise error(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {seconds}")
    return seconds


def check_choice(
    name: str, value: object, choices: Collection[object], *, error: _Error = ConfigurationError
) -> Any:
    """``value`` itself, which must be one of ``choices``."""
    try:
        known = value in choices
    except TypeError:  # unhashable
        known = False
    if not known or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
        listing = ", ".join(repr(c) for c in choices)
        raise error(f"{name} must be one of {listing}, got {value!r:.80}")
    return value


def check_str_sequence(name: str, value: object) -> tuple[str, ...]:
    """``value`` as a tuple of strings; it must be a sequence of :class:`str` and not a
    string itself (which would be split into characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _type_error(name, "a sequence of str (a list, not a string)", value)
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _type_error(f"{name}[{index}]", "a str", item)
    return items


def check_mapping(name: str, value: object, *, optional: bool = True) -> Mapping[str, Any] | None:
    """``value`` itself, which must be a mapping (or ``None`` with ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise _type_error(name, "a dict" + (" or None" if optional else ""), value)
    return value


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def check_ip(name: str, value: object, *, bindable: bool = False, error: _Error) -> str:
    """``value`` itself: a TCP address, which must be ``*``, an IPv4 or IPv6 address or
    (unless ``bindable``, where a kernel must listen on a local address) a host name."""
    text = check_str(name, value, nonempty=True, error=error)
    if text == "*" or text == "localhost":
        return text
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        return text
    labels = text.rstrip(".").split(".")
    if not bindable and len(text) <= 253 and all(_HOST_LABEL.fullmatch(x) for x in labels):
        return text
    expected = "an IP address or '*'" if bindable else "an IP address, '*' or a host name"
    raise error(f"{name} must be {expected}, got {text!r:.80}")


def check_buffers(name: str, value: object) -> None:
    """``value`` must be a sequence of bytes-like buffers (``bytes``, ``bytearray``,
    ``memoryview`` or any other object with the buffer protocol, such as ``array.array``)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise _type_error(name, "a sequence of bytes-like buffers", value)
    for index, item in enumerate(value):
        if not isinstance(item, (bytes, bytearray, memoryview)):
            try:
                memoryview(item)
            except TypeError:
                raise _type_error(f"{name}[{index}]", "bytes-like", item) from None


def check_callable(name: str, value: object, *, optional: bool = True) -> None:
    """``value`` must be callable (or ``None`` with ``optional``)."""
    if value is None and optional:
        return
    if not callable(value):
        raise _type_error(name, "callable" + (" or None" if optional else ""), value)


def check_option_names(
    name: str, options: Mapping[str, Any] | None, allowed: Collection[str]
) -> None:
    """Every key of ``options`` (an options dict such as ``client_options``, turned into a
    checked options object before any I/O) must be one of ``allowed``: a misspelt option is a
    :class:`TypeError` now, not after a kernel has been started."""
    for key in options or {}:
        if key not in allowed:
            listing = ", ".join(sorted(allowed))
            raise TypeError(f"{name}: unknown option {key!r:.40}; expected one of {listing}")


def merged_options(
    name: str,
    options: object,
    defaults: Mapping[str, object],
    *,
    fixed: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """An options dict argument (``client_options``, ``kernel_options``...) named ``name``,
    merged over ``defaults``: it must be a dict (or ``None``) whose keys are names of
    ``defaults`` other than those in ``fixed`` (the values the caller sets itself, which win).
    The values are not checked here: the options object's ``build`` checks each by name.

    Raises:
        TypeError: ``options`` is not a dict or ``None``, or a key is unknown or fixed.
    """
    given = check_mapping(name, options) or {}
    pinned = fixed or {}
    check_option_names(name, given, [key for key in defaults if key not in pinned])
    return {**defaults, **given, **pinned}
