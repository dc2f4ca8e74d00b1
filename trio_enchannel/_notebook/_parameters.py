"""Notebook parameters the way papermill passes them, without papermill.

Three jobs, no I/O beyond reading the parameter files the caller names:

- :func:`parse_parameters` turns papermill's command-line forms (``-p NAME VALUE``,
  ``-r NAME VALUE``, ``-f FILE``, ``-y YAML``) into one mapping, with papermill's precedence and
  its typing of ``-p`` values.
- :func:`translate_parameters` writes source code assigning each parameter in the kernel's
  language (Python, R, Julia, bash, Scala, MATLAB, PowerShell, C#, F#). The output is
  papermill's for every value papermill translates correctly; where papermill's code would not
  parse or would not give the value back (non-ASCII text in R and Julia, ``$`` in Julia
  strings, infinities in R and Julia, ``None`` inside a bash array, backslashes and newlines in
  MATLAB and PowerShell strings), ours does. A value the language cannot hold is refused with
  :class:`~trio_enchannel.ParameterError` instead of becoming broken code.
- :func:`inject_parameters` puts that code in a cell tagged ``injected-parameters`` right after
  the cell tagged ``parameters`` (replacing an earlier injected cell), and records the values
  in ``metadata.papermill.parameters`` as papermill does.

This module imports neither trio nor zmq; nbformat is imported only by :func:`inject_parameters`.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import keyword
import math
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ParameterError

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "INJECTED_TAG",
    "PARAMETERS_TAG",
    "inject_parameters",
    "parameters_language",
    "parse_parameters",
    "supported_languages",
    "translate_parameters",
]

#: The tag of the cell that holds the notebook's default parameters.
PARAMETERS_TAG = "parameters"
#: The tag of the cell we (and papermill) insert with the given parameters.
INJECTED_TAG = "injected-parameters"

_INT32 = range(-(2**31), 2**31)


# --- string literals -------------------------------------------------------------------------


def _check_unicode(text: str, where: str) -> None:
    """Refuse lone surrogates: no language but Python can hold them in source code."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParameterError(
            f"parameter {where}: the string contains a lone surrogate, which is not text",
            name=_root(where),
        ) from None


def _backslash_escape(
    text: str,
    where: str,
    *,
    specials: Mapping[str, str],
    x_below: int,
    astral: str,
    allow_nul: bool = True,
) -> str:
    r"""Escape *text* for a double-quoted literal of a C-like language.

    Printable ASCII and *specials* aside, every character is escaped: ``\xhh`` below
    *x_below* (0x100 is what Python's ``unicode_escape`` codec does), ``\uhhhh`` below
    U+10000, and above it either ``\Uhhhhhhhh`` (*astral* ``"U8"``) or a UTF-16 surrogate pair
    of ``\u`` escapes (*astral* ``"pair"``).
    """
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in specials:
            out.append(specials[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code == 0 and not allow_nul:
            raise ParameterError(
                f"parameter {where}: the string contains a NUL character, which this "
                "language's strings cannot hold",
                name=_root(where),
            )
        elif code < x_below:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        elif astral == "U8":
            out.append(f"\\U{code:08x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


_C_SPECIALS = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _python_str(text: str, where: str) -> str:
    # Exactly what papermill writes (Python's unicode_escape codec, then \" for quotes).
    body = _backslash_escape(text, where, specials=_C_SPECIALS, x_below=0x100, astral="U8")
    return f'"{body}"'


def _r_str(text: str, where: str) -> str:
    # R reads "\xe9" as the byte 0xE9, not as "é": non-ASCII characters take \u escapes.
    _check_unicode(text, where)
    body = _backslash_escape(
        text, where, specials=_C_SPECIALS, x_below=0x80, astral="U8", allow_nul=False
    )
    return f'"{body}"'


_JULIA_SPECIALS = {**_C_SPECIALS, "$": "\\$"}


def _julia_str(text: str, where: str) -> str:
    # Like R, plus "$", which would interpolate a variable.
    _check_unicode(text, where)
    body = _backslash_escape(text, where, specials=_JULIA_SPECIALS, x_below=0x80, astral="U8")
    return f'"{body}"'


_JVM_SPECIALS = {**_C_SPECIALS, "\b": "\\b", "\f": "\\f"}


def _scala_str(text: str, where: str) -> str:
    # Scala has no \x escapes, and its \u escapes are UTF-16 code units.
    _check_unicode(text, where)
    body = _backslash_escape(text, where, specials=_JVM_SPECIALS, x_below=0, astral="pair")
    return f'"{body}"'


def _dotnet_str(text: str, where: str) -> str:
    # C# and F#: \u and \U escapes (C#'s \x takes up to four digits, so it is never used).
    _check_unicode(text, where)
    body = _backslash_escape(text, where, specials=_C_SPECIALS, x_below=0, astral="U8")
    return f'"{body}"'


# PowerShell treats the typographic single quotes as quote characters too.
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def _powershell_str(text: str, where: str) -> str:
    # A single-quoted string is verbatim: no `$` interpolation, no backtick escapes; a quote is
    # written twice. Line breaks are kept as they are.
    _check_unicode(text, where)
    return "'" + "".join(c * 2 if c in _PS_QUOTES else c for c in text) + "'"


def _bash_str(text: str, where: str) -> str:
    if "\0" in text:
        raise ParameterError(
            f"parameter {where}: the string contains a NUL character, which bash cannot hold",
            name=_root(where),
        )
    _check_unicode(text, where)
    return shlex.quote(text)


def _matlab_pieces(text: str, where: str, quote: str) -> str:
    # MATLAB literals have no escapes: control characters are concatenated as char(N).
    _check_unicode(text, where)
    pieces: list[str] = []
    run: list[str] = []
    for char in text:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            if run or not pieces:
                pieces.append(quote + "".join(run) + quote)
                run = []
            pieces.append(f"char({ord(char)})")
        else:
            run.append(quote * 2 if char == quote else char)
    if run or not pieces:
        pieces.append(quote + "".join(run) + quote)
    if quote == "'" and len(pieces) > 1:
        return "[" + ", ".join(pieces) + "]"
    return " + ".join(pieces)


def _matlab_str(text: str, where: str) -> str:
    return _matlab_pieces(text, where, '"')


def _matlab_char_array(text: str, where: str) -> str:
    return _matlab_pieces(text, where, "'")


# --- the languages ---------------------------------------------------------------------------


_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_R_NAME = re.compile(r"(?:[^\W\d_]|\.(?!\d))[\w.]*\Z")


def _python_name(name: str) -> str | None:
    return name if name.isidentifier() and not keyword.iskeyword(name) else None


def _identifier(name: str) -> str | None:
    return name if name.isidentifier() else None


def _r_name(name: str) -> str | None:
    # papermill drops leading underscores: they cannot start an R name.
    stripped = name.lstrip("_")
    return stripped if _R_NAME.match(stripped) else None


def _bash_name(name: str) -> str | None:
    return name if _ASCII_NAME.match(name) else None


def _matlab_name(name: str) -> str | None:
    return name if _ASCII_NAME.match(name) and not name.startswith("_") else None


@attrs.frozen
class _Syntax:
    """How one language writes comments, assignments and each kind of value."""

    language: str
    comment: str  # "{}" is replaced by the comment text
    assign: str  # "{name}" and "{value}"
    name: Callable[[str], str | None]  # the name to assign, or None if it is not valid
    string: Callable[[str, str], str]
    none: str | None  # None: the language has no null value we can write
    true: str
    false: str
    nonfinite: tuple[str, str, str] | None  # nan, +inf, -inf; None: str(float)
    sequence: str | None  # "{}" is replaced by the items joined with item_separator
    mapping: str | None  # "{}" is replaced by the pairs joined with pair_separator
    pair: str = "{key}: {value}"
    key: Callable[[str, str], str] | None = None  # defaults to string
    item_separator: str = ", "
    pair_separator: str = ", "
    long_suffix: str = ""  # appended to integers outside the int32 range
    nested: bool = True  # containers may hold containers
    none_in_sequence: str | None = None  # how None is written inside a container


_PYTHON = _Syntax(
    language="python",
    comment="# {}",
    assign="{name} = {value}",
    name=_python_name,
    string=_python_str,
    none="None",
    true="True",
    false="False",
    nonfinite=("float('nan')", "float('inf')", "float('-inf')"),
    sequence="[{}]",
    mapping="{{{}}}",
)
_R = _Syntax(
    language="R",
    comment="# {}",
    assign="{name} = {value}",
    name=_r_name,
    string=_r_str,
    none="NULL",
    true="TRUE",
    false="FALSE",
    nonfinite=("NaN", "Inf", "-Inf"),
    sequence="list({})",
    mapping="list({})",
    pair="{key} = {value}",
)
_JULIA = _Syntax(
    language="julia",
    comment="# {}",
    assign="{name} = {value}",
    name=_identifier,
    string=_julia_str,
    none="nothing",
    true="true",
    false="false",
    nonfinite=("NaN", "Inf", "-Inf"),
    sequence="[{}]",
    mapping="Dict({})",
    pair="{key} => {value}",
)
_BASH = _Syntax(
    language="bash",
    comment="# {}",
    assign="{name}={value}",
    name=_bash_name,
    string=_bash_str,
    none="",
    true="true",
    false="false",
    nonfinite=None,
    sequence="({})",
    mapping=None,
    item_separator=" ",
    nested=False,
    none_in_sequence="''",
)
_SCALA = _Syntax(
    language="scala",
    comment="// {}",
    assign="val {name} = {value}",
    name=_identifier,
    string=_scala_str,
    none="None",
    true="true",
    false="false",
    nonfinite=("Double.NaN", "Double.PositiveInfinity", "Double.NegativeInfinity"),
    sequence="Seq({})",
    mapping="Map({})",
    pair="{key} -> {value}",
    long_suffix="L",
)
_MATLAB = _Syntax(
    language="matlab",
    comment="% {}",
    assign="{name} = {value};",
    name=_matlab_name,
    string=_matlab_str,
    none="NaN",
    true="true",
    false="false",
    nonfinite=("NaN", "Inf", "-Inf"),
    sequence="{{{}}}",
    mapping="containers.Map({})",  # special-cased: keys and values are two cell arrays
    key=_matlab_char_array,
)
_CSHARP = _Syntax(
    language="csharp",
    comment="// {}",
    assign="var {name} = {value};",
    name=_identifier,
    string=_dotnet_str,
    none=None,
    true="true",
    false="false",
    nonfinite=("double.NaN", "double.PositiveInfinity", "double.NegativeInfinity"),
    sequence="new [] {{ {} }}",
    mapping="new Dictionary<string,Object>{{ {} }}",
    pair="{{ {key} , {value} }}",
    long_suffix="L",
)
_FSHARP = _Syntax(
    language="fsharp",
    comment="(* {} *)",
    assign="let {name} = {value}",
    name=_identifier,
    string=_dotnet_str,
    none="None",
    true="true",
    false="false",
    nonfinite=("nan", "infinity", "-infinity"),
    sequence="[ {} ]",
    mapping="[ {} ] |> Map.ofList",
    pair="({key}, {value} :> IComparable)",
    item_separator="; ",
    pair_separator="; ",
    long_suffix="L",
)
_POWERSHELL = _Syntax(
    language="powershell",
    comment="# {}",
    assign="${name} = {value}",
    name=_identifier,
    string=_powershell_str,
    none="$Null",
    true="$True",
    false="$False",
    nonfinite=("[double]::NaN", "[double]::PositiveInfinity", "[double]::NegativeInfinity"),
    sequence="@({})",
    mapping="@{{{}}}",
    pair="{key} = {value}",
    pair_separator="\n ",
)

#: Language names (lower-cased) and the kernel names papermill keys its translators by.
_LANGUAGES: dict[str, _Syntax] = {
    "python": _PYTHON,
    "python3": _PYTHON,
    "pysparkkernel": _PYTHON,
    "r": _R,
    "sparkrkernel": _R,
    "julia": _JULIA,
    "bash": _BASH,
    "scala": _SCALA,
    "sparkkernel": _SCALA,
    "matlab": _MATLAB,
    "c#": _CSHARP,
    "csharp": _CSHARP,
    ".net-csharp": _CSHARP,
    "f#": _FSHARP,
    "fsharp": _FSHARP,
    ".net-fsharp": _FSHARP,
    "powershell": _POWERSHELL,
    "pwsh": _POWERSHELL,
    ".net-powershell": _POWERSHELL,
}


def supported_languages() -> list[str]:
    """The language names :func:`translate_parameters` accepts (case does not matter)."""
    return sorted(_LANGUAGES)


def _syntax(language: str) -> _Syntax:
    if not isinstance(language, str):
        raise TypeError(f"language must be a str, not {type(language).__name__}")
    try:
        return _LANGUAGES[language.lower()]
    except KeyError:
        raise ParameterError(
            f"cannot write parameters for the language {language!r}; supported: "
            + ", ".join(sorted({s.language for s in _LANGUAGES.values()}))
        ) from None


# --- translation -----------------------------------------------------------------------------


def _root(where: str) -> str:
    """The top-level parameter name in a path like ``cfg["a"][2]``."""
    return where.split("[", 1)[0]


def _float(syntax: _Syntax, value: float) -> str:
    if math.isfinite(value) or syntax.nonfinite is None:
        return repr(value)
    nan, inf, neg_inf = syntax.nonfinite
    if math.isnan(value):
        return nan
    return inf if value > 0 else neg_inf


def _key_text(key: object, where: str) -> str:
    # papermill writes str(key) for a non-string key (YAML allows 1: or true: as keys).
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return str(key)
    raise TypeError(
        f"parameter {where}: a mapping key must be a string or a number, not {type(key).__name__}"
    )


def _value(syntax: _Syntax, value: object, where: str, *, depth: int) -> str:
    if value is None:
        if syntax.none is None:
            raise ParameterError(
                f"parameter {where}: {syntax.language} has no null value to assign",
                name=_root(where),
            )
        if depth and syntax.none_in_sequence is not None:
            return syntax.none_in_sequence
        return syntax.none
    if isinstance(value, str):
        return syntax.string(str(value), where)
    if isinstance(value, bool):
        return syntax.true if value else syntax.false
    if isinstance(value, int):
        number = int(value)
        suffix = syntax.long_suffix if number not in _INT32 else ""
        try:
            return f"{number}{suffix}"
        except ValueError:  # more digits than Python converts (sys.set_int_max_str_digits)
            raise ParameterError(
                f"parameter {where}: the integer is too large to write", name=_root(where)
            ) from None
    if isinstance(value, float):
        return _float(syntax, float(value))
    if isinstance(value, (Mapping, list, tuple)):
        if depth and not syntax.nested:
            raise ParameterError(
                f"parameter {where}: {syntax.language} cannot hold nested containers",
                name=_root(where),
            )
        if isinstance(value, Mapping):
            return _mapping(syntax, value, where, depth=depth)
        if syntax.sequence is None:  # pragma: no cover - every language has sequences
            raise ParameterError(f"parameter {where}: {syntax.language} has no arrays")
        items = [
            _value(syntax, item, f"{where}[{index}]", depth=depth + 1)
            for index, item in enumerate(value)
        ]
        return syntax.sequence.format(syntax.item_separator.join(items))
    raise TypeError(
        f"parameter {where}: cannot write a {type(value).__name__} as a parameter; use "
        "None, bool, int, float, str, a list or a mapping of these"
    )


def _mapping(syntax: _Syntax, value: Mapping[Any, Any], where: str, *, depth: int) -> str:
    if syntax.mapping is None:
        raise ParameterError(
            f"parameter {where}: {syntax.language} cannot hold a mapping", name=_root(where)
        )
    key_writer = syntax.key or syntax.string
    keys: list[str] = []
    values: list[str] = []
    for key, item in value.items():
        text = _key_text(key, where)
        inner = f"{where}[{text!r}]"
        keys.append(key_writer(text, inner))
        values.append(_value(syntax, item, inner, depth=depth + 1))
    if syntax is _MATLAB:
        return f"containers.Map({{{', '.join(keys)}}}, {{{', '.join(values)}}})"
    pairs = [syntax.pair.format(key=k, value=v) for k, v in zip(keys, values, strict=True)]
    return syntax.mapping.format(syntax.pair_separator.join(pairs))


def translate_parameters(
    language: str, parameters: Mapping[str, Any], *, comment: str = "Parameters"
) -> str:
    """Source code in *language* that assigns each of *parameters*, after a comment line.

    The values may be ``None``, ``bool``, ``int``, ``float`` (NaN and infinities included),
    ``str``, and lists, tuples and mappings of these, nested. Each becomes the language's own
    literal, as papermill writes it: for example ``{"n": 3, "tags": ["a", "b"]}`` in R is
    ``n = 3`` and ``tags = list("a", "b")``.

    Args:
        language: the kernel's language (``"python"``, ``"R"``, ``"julia"``, ``"bash"``,
            ``"scala"``, ``"matlab"``, ``"powershell"``, ``"csharp"``, ``"fsharp"``; case does
            not matter), or one of the kernel names papermill uses for them.
        parameters: the names and values, assigned in this order.
        comment: the text of the first line's comment.

    Raises:
        ParameterError: the language is not supported; a name is not a valid variable name in
            it; a value cannot be written in it (a nested list in bash, ``None`` in C#, a NUL
            character in an R string). The error names the parameter.
        TypeError: a value is of another type than those above.
    """
    syntax = _syntax(language)
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping, not {type(parameters).__name__}")
    if not isinstance(comment, str):
        raise TypeError(f"comment must be a str, not {type(comment).__name__}")
    if "\n" in comment or "\r" in comment:
        raise ParameterError("the parameters comment must be a single line")
    lines = [syntax.comment.format(comment).strip()]
    for name, value in parameters.items():
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, not {type(name).__name__}")
        target = syntax.name(name)
        if target is None:
            raise ParameterError(
                f"parameter {name!r} is not a valid variable name in {syntax.language}",
                name=name,
            )
        try:
            code = _value(syntax, value, name, depth=0)
        except RecursionError:
            raise ParameterError(
                f"parameter {name!r} contains itself or is nested too deeply", name=name
            ) from None
        lines.append(syntax.assign.format(name=target, value=code))
    return "\n".join(lines) + "\n"


# --- the notebook ----------------------------------------------------------------------------


def parameters_language(
    nb: NotebookNode, *, kernel_name: str | None = None, kernel_language: str | None = None
) -> str:
    """The language to write *nb*'s parameters in, chosen as papermill chooses it.

    The first of these that :func:`translate_parameters` knows: the kernel's name (papermill
    keys some translators by kernel name, such as ``sparkkernel``), the notebook's
    ``metadata.language_info.name``, its ``metadata.kernelspec.language``, and
    *kernel_language* (the language of the kernelspec that will run it).

    Raises:
        ParameterError: none of them is a language parameters can be written in.
    """
    metadata = nb.get("metadata") or {}
    info = metadata.get("language_info") or {}
    spec = metadata.get("kernelspec") or {}
    candidates = [kernel_name, info.get("name"), spec.get("language"), kernel_language]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.lower() in _LANGUAGES:
            return candidate
    found = ", ".join(repr(c) for c in candidates if c) or "none"
    raise ParameterError(
        f"cannot tell which language to write the parameters in (found: {found}); supported: "
        + ", ".join(sorted({s.language for s in _LANGUAGES.values()}))
    )


def _tags(cell: Mapping[str, Any]) -> Sequence[str]:
    metadata = cell.get("metadata") or {}
    tags = metadata.get("tags") or ()
    return tags if isinstance(tags, (list, tuple)) else ()


def inject_parameters(
    nb: NotebookNode, parameters: Mapping[str, Any], *, language: str
) -> NotebookNode:
    """A copy of *nb* with *parameters* assigned in a cell tagged ``injected-parameters``.

    Placement follows papermill: the new cell replaces the first cell already tagged
    ``injected-parameters`` (a notebook papermill or we ran before); otherwise it goes right
    after the first cell tagged ``parameters``; otherwise at the top. The values are recorded
    in ``metadata.papermill.parameters``, where papermill and tools built on it (scrapbook,
    papermill's own ``--help-notebook``) look for them. *nb* itself is not changed.

    The new cell gets a fresh ``id`` only if the notebook's format has cell ids (nbformat 4.5
    and later); the notebook's format version is kept (papermill upgrades it to 4.5).

    Raises:
        ParameterError, TypeError: as :func:`translate_parameters`, before *nb* is copied.
    """
    source = translate_parameters(language, parameters)
    nbformat: Any = importlib.import_module("nbformat")
    result: NotebookNode = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(source=source)
    cell.metadata["tags"] = [INJECTED_TAG]
    cells = list(result.cells)
    if (result.get("nbformat"), result.get("nbformat_minor", 0)) < (4, 5):
        cell.pop("id", None)
    else:
        taken = {c.get("id") for c in cells}
        while cell.id in taken:  # pragma: no cover - a collision of random ids
            cell.id = nbformat.v4.new_code_cell().id
    injected = next((i for i, c in enumerate(cells) if INJECTED_TAG in _tags(c)), None)
    defaults = next((i for i, c in enumerate(cells) if PARAMETERS_TAG in _tags(c)), None)
    if injected is not None:
        cells[injected] = cell
    elif defaults is not None:
        cells.insert(defaults + 1, cell)
    else:
        cells.insert(0, cell)
    result.cells = cells
    papermill = result.metadata.setdefault("papermill", nbformat.NotebookNode())
    papermill["parameters"] = copy.deepcopy(dict(parameters))
    return result


# --- parsing the command line's forms --------------------------------------------------------


def _typed(text: str) -> Any:
    """papermill's typing of a ``-p`` value: True/False/None, then int, then float, else str."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _check_loaded(value: object, where: str, origin: str) -> None:
    """Refuse what YAML can build but no language can be given (bytes, sets, dates...)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_loaded(item, f"{where}[{index}]", origin)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key is not None and not isinstance(key, (str, bool, int, float)):
                raise ParameterError(
                    f"{origin}: parameter {where} has a key of type {type(key).__name__}; "
                    "keys must be strings or numbers",
                    name=_root(where),
                )
            _check_loaded(item, f"{where}[{str(key)!r}]", origin)
        return
    raise ParameterError(
        f"{origin}: parameter {where} is a {type(value).__name__}, which cannot be passed to "
        "a notebook (use null, booleans, numbers, strings, lists and mappings)",
        name=_root(where),
    )


@functools.cache
def _yaml_loader() -> Any:
    """papermill's YAML loader (a SafeLoader on which dates stay strings), or None."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        return None
    resolvers = {
        first: [r for r in found if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, found in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return type("NoDatesSafeLoader", (yaml.SafeLoader,), {"yaml_implicit_resolvers": resolvers})


def _load_yaml(text: str, origin: str) -> Any:
    loader = _yaml_loader()
    if loader is None:
        try:
            return json.loads(text)
        except RecursionError:
            raise ParameterError(f"{origin}: nested too deeply") from None
        except ValueError:
            raise ParameterError(
                f"{origin}: not JSON, and reading YAML needs PyYAML: "
                "python3 -m pip install 'trio-enchannel[notebook]'"
            ) from None
    yaml: Any = importlib.import_module("yaml")
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ParameterError(f"{origin}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ParameterError(f"{origin}: nested too deeply") from None


def _merge_document(result: dict[str, Any], document: Any, origin: str) -> None:
    if document is None:  # an empty file, as papermill allows
        return
    if not isinstance(document, dict):
        raise ParameterError(
            f"{origin}: parameters must be a mapping of names to values, "
            f"not a {type(document).__name__}"
        )
    for name, value in document.items():
        if not isinstance(name, str) or not name:
            raise ParameterError(
                f"{origin}: parameter name {name!r} is not a non-empty string",
                name=str(name),
            )
        try:
            _check_loaded(value, name, origin)
        except RecursionError:  # a YAML alias inside itself (a: &x [*x]), or very deep
            raise ParameterError(
                f"{origin}: parameter {name} refers to itself or is nested too deeply", name=name
            ) from None
        result[name] = value


def _check_name(name: object, flag: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{flag} parameter names must be str, not {type(name).__name__}")
    if not name or name != name.strip():
        raise ParameterError(f"{flag}: parameter name {name!r} is empty or padded", name=name)
    return name


def parse_parameters(
    pairs: Sequence[tuple[str, str]] = (),
    *,
    raw_pairs: Sequence[tuple[str, str]] = (),
    files: Sequence[Path] = (),
    yaml_text: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Merge papermill's command-line forms of parameters into one mapping.

    Later sources override earlier ones in papermill's order, whatever the order on the command
    line: *files* (``-f``, each in turn), then *yaml_text* (``-y``, one string or several in
    turn), then *pairs* (``-p``), then *raw_pairs* (``-r``).

    - A ``-p`` value is typed as papermill types it: ``True``, ``False`` and ``None`` exactly;
      else an ``int`` if Python's ``int()`` accepts it (``"7"``, ``"-3"``, ``"1_000"``); else a
      ``float`` if ``float()`` does (``"0.5"``, ``"1e3"``, ``"nan"``, ``"inf"``); else the
      string itself.
    - A ``-r`` value is always the string itself.
    - A file ending in ``.json`` is read as JSON; any other file, and *yaml_text*, as YAML
      (with papermill's loader: dates stay strings). Without PyYAML (the ``notebook`` extra
      installs it) only JSON is understood. An empty document gives no parameters.

    Raises:
        ParameterError: a file cannot be read or parsed, a document is not a mapping, a name is
            empty, or a value is of a type no kernel can be given (a YAML ``!!binary`` or
            ``!!set``). The message names the file and the parameter.
        TypeError: a name or value is not a ``str``.
    """
    result: dict[str, Any] = {}
    for file in files:
        path = Path(file)
        origin = f"parameters file {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ParameterError(f"{origin}: cannot be read: {reason}") from None
        if path.suffix.lower() == ".json":
            try:
                document = json.loads(text)
            except RecursionError:
                raise ParameterError(f"{origin}: nested too deeply") from None
            except ValueError as exc:
                raise ParameterError(f"{origin}: not valid JSON: {exc}") from None
        else:
            document = _load_yaml(text, origin)
        _merge_document(result, document, origin)
    texts = [yaml_text] if isinstance(yaml_text, str) else list(yaml_text or ())
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"yaml_text must be str, not {type(text).__name__}")
        _merge_document(result, _load_yaml(text, "-y"), "-y")
    for flag, items, convert in (("-p", pairs, _typed), ("-r", raw_pairs, str)):
        for name, value in items:
            _check_name(name, flag)
            if not isinstance(value, str):
                raise TypeError(
                    f"{flag} {name}: the value must be a str, not {type(value).__name__}"
                )
            result[name] = convert(value)
    return result
