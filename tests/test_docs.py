"""Every code example in the documentation runs, so the docs cannot rot.

The convention (documented in docs/contributing.rst): in ``docs/**/*.rst`` and ``README.md``,
every ``python`` block is a complete program that must exit with status 0, every ``console``
block's ``$`` commands must succeed and print what the block shows; a block that cannot run
is marked ``.. not-runnable: REASON``. Other languages are data (text, json, ...). Anything
else (``bash``, ``pycon``, ``::`` literal blocks, ``testcode``) is refused, so no example can
escape the check. ``>>>`` examples in public docstrings run as doctests, and literal code in
docstrings must at least compile and import only names that exist.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.metadata
import inspect
import os
import re
import shlex
import subprocess
import sys
import textwrap
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import trio_enchannel

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

EXAMPLE_TIMEOUT = 120.0
RUNNABLE = frozenset({"python", "console"})
DATA = frozenset({"text", "json", "toml", "ini", "yaml", "rst", "none"})
MARKERS = ("not-runnable", "example-file", "example-output", "example-status")


@dataclass
class Block:
    """One code block of a page, with the markers that precede it."""

    page: Path
    line: int  # 1-based line of the directive / fence
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)
    expected_output: str | None = None  # from a following example-output block

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        return {
            b.markers["example-file"]: b.text for b in self.blocks if "example-file" in b.markers
        }


# --------------------------------------------------------------------------- parsing

_RST_MARKER = re.compile(r"^\s*\.\. (" + "|".join(MARKERS) + r"):(.*)$")
_RST_CODE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_RST_FORBIDDEN = re.compile(r"^\s*\.\. (testcode|testoutput|doctest|testsetup|literalinclude)::")
_RST_DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")
_MD_MARKER = re.compile(r"^\s*<!--\s*(" + "|".join(MARKERS) + r"):(.*?)-->\s*$")
_MD_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _add_marker(page: Page, pending: dict[str, str], name: str, arg: str, lineno: int) -> None:
    arg = arg.strip()
    if name == "not-runnable" and not arg:
        page.problems.append(f"{page.path.name}:{lineno}: not-runnable needs a reason")
    if name == "example-file" and not re.fullmatch(r"[\w.-]+", arg):
        page.problems.append(f"{page.path.name}:{lineno}: example-file needs a plain file name")
    if name == "example-status" and not arg.isdigit():
        page.problems.append(f"{page.path.name}:{lineno}: example-status needs a number")
    pending[name] = arg


def parse_rst(path: Path) -> Page:
    page = Page(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        if m := _RST_MARKER.match(line):
            _add_marker(page, pending, m.group(1), m.group(2), lineno)
            i += 1
            continue
        if _RST_FORBIDDEN.match(line):
            page.problems.append(
                f"{path.name}:{lineno}: use '.. code-block:: python' instead of {line.strip()!r}"
            )
        if m := _RST_CODE.match(line):
            base = len(m.group(1))
            language = m.group(2) or "none"
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(":") and _indent(lines[j]) > base:
                j += 1  # directive options (:caption:, :emphasize-lines:, ...)
            body: list[str] = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                body.append(lines[j])
                j += 1
            page.blocks.append(
                Block(
                    path,
                    lineno,
                    language,
                    textwrap.dedent("\n".join(body)).strip("\n") + "\n",
                    pending,
                )
            )
            pending = {}
            i = j
            continue
        stripped = line.rstrip()
        if (
            stripped.endswith("::")
            and not _RST_DIRECTIVE.match(line)
            and not stripped.startswith("..")
        ):
            # A literal block (its language would default to Python, unchecked).
            k = i + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and _indent(lines[k]) > _indent(line):
                page.problems.append(
                    f"{path.name}:{lineno}: '::' literal block; use '.. code-block:: LANGUAGE'"
                )
        if line.lstrip().startswith(">>> "):
            page.problems.append(f"{path.name}:{lineno}: '>>>' block; use a python code-block")
        i += 1
    if pending:
        page.problems.append(f"{path.name}: marker(s) {sorted(pending)} not followed by a block")
    return page


def parse_markdown(path: Path) -> Page:
    page = Page(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _MD_MARKER.match(line):
            _add_marker(page, pending, m.group(1), m.group(2), i + 1)
        elif line.startswith("    ") and line.strip() and i > 0 and not lines[i - 1].strip():
            previous = next((x for x in reversed(lines[:i]) if x.strip()), "")
            if not re.match(r"^\s*([-*+]|\d+[.)])\s", previous) and not previous.startswith("    "):
                page.problems.append(
                    f"{path.name}:{i + 1}: indented code block; use a fenced block with a "
                    "language (```console, ```python)"
                )
        elif m := _MD_FENCE.match(line):
            fence = m.group(2)
            language = m.group(3) or "none"
            j = i + 1
            body: list[str] = []
            while j < len(lines) and not lines[j].strip().startswith(fence):
                body.append(lines[j])
                j += 1
            page.blocks.append(
                Block(
                    path,
                    i + 1,
                    language,
                    textwrap.dedent("\n".join(body)).strip("\n") + "\n",
                    pending,
                )
            )
            pending = {}
            i = j
        i += 1
    if pending:
        page.problems.append(f"{path.name}: marker(s) {sorted(pending)} not followed by a block")
    return page


def _link_outputs(page: Page) -> None:
    """Attach each example-output block to the python example before it."""
    last_python: Block | None = None
    for block in page.blocks:
        if "example-output" in block.markers:
            if last_python is None:
                page.problems.append(f"{block.where}: example-output without a python example")
            else:
                last_python.expected_output = block.text
            continue
        if block.language == "python" and not (
            {"not-runnable", "example-file"} & set(block.markers)
        ):
            last_python = block


def _classify(page: Page) -> None:
    for block in page.blocks:
        kinds = {"not-runnable", "example-file", "example-output"} & set(block.markers)
        if len(kinds) > 1:
            page.problems.append(f"{block.where}: conflicting markers {sorted(kinds)}")
        if block.language in RUNNABLE or kinds:
            continue
        if block.language not in DATA:
            page.problems.append(
                f"{block.where}: code block in language {block.language!r}: use 'python' or "
                f"'console' (executed) or a data language ({', '.join(sorted(DATA))})"
            )
        if "example-status" in block.markers and block.language != "console":
            page.problems.append(f"{block.where}: example-status applies to console blocks only")


def doc_pages() -> list[Path]:
    pages = sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)
    readme = ROOT / "README.md"
    if readme.exists():
        pages.append(readme)
    return pages


def load_pages() -> list[Page]:
    result = []
    for path in doc_pages():
        page = parse_markdown(path) if path.suffix == ".md" else parse_rst(path)
        _link_outputs(page)
        _classify(page)
        result.append(page)
    return result


PAGES = load_pages()


def runnable_blocks() -> Iterator[tuple[Page, Block]]:
    for page in PAGES:
        for block in page.blocks:
            if block.language in RUNNABLE and not (
                {"not-runnable", "example-file", "example-output"} & set(block.markers)
            ):
                yield page, block


# --------------------------------------------------------------------------- output matching


def _line_matches(expected: str, actual: str) -> bool:
    expected, actual = expected.rstrip(), actual.rstrip()
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def output_matches(expected: str, actual: str) -> bool:
    """Whether *actual* fits *expected*; a '...' line matches any number of lines."""
    exp = expected.rstrip("\n").splitlines()
    act = actual.rstrip("\n").splitlines()
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(exp):
            result = j == len(act)
        elif exp[i].strip() == "...":
            result = match(i + 1, j) or (j < len(act) and match(i, j + 1))
        else:
            result = j < len(act) and _line_matches(exp[i], act[j]) and match(i + 1, j + 1)
        memo[i, j] = result
        return result

    return match(0, 0)


def test_output_matching() -> None:
    assert output_matches("42\n", "42\n")
    assert not output_matches("42\n", "43\n")
    assert output_matches("a\n...\nz\n", "a\nb\nc\nz\n")
    assert output_matches("a\n...\nz\n", "a\nz\n")
    assert not output_matches("a\n...\nz\n", "a\nb\n")
    assert output_matches("path: .../kernel.json\n", "path: /tmp/x/kernel.json\n")
    assert not output_matches("x\n", "x\ny\n")


# --------------------------------------------------------------------------- running


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / ".runtime")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


PROJECT = "trio-enchannel"


def _check_installed(requirement: str, where: str, extra: str = "") -> None:
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": extra}):
        return
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{where}: the example installs {requirement!r}, which is not installed here")
    assert req.specifier.contains(version, prereleases=True), (
        f"{where}: {req.name} {version} is installed but the example asks for {requirement!r}"
    )


def _check_install_command(words: list[str], where: str) -> None:
    """Verify (rather than run) `python3 -m pip install ...` against the installed project.

    The project's metadata (its extras and their requirements) comes from the installed
    distribution, which the test environment installs from this checkout.
    """
    extras = importlib.metadata.metadata(PROJECT).get_all("Provides-Extra") or []
    requirements = importlib.metadata.requires(PROJECT) or []
    for word in words[4:]:
        if word.startswith("-"):
            continue
        if m := re.fullmatch(r"\.(?:\[([\w,-]+)\])?", word):
            wanted = [e for e in (m.group(1) or "").split(",") if e]
            for extra in wanted:
                assert extra in extras, f"{where}: extra {extra!r} is not declared by {PROJECT}"
            for requirement in requirements:
                for extra in ["", *wanted]:
                    _check_installed(requirement, where, extra)
        else:
            _check_installed(word, where)


def _is_install(words: list[str]) -> bool:
    return (
        len(words) >= 4
        and words[0] in ("python", "python3", "pip", "pip3")
        and words[1:4] == ["-m", "pip", "install"]
    )


def parse_console(text: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    commands: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + "\n" + lines[i]
            commands.append((command, []))
        elif commands:
            commands[-1][1].append(line)
        else:
            raise AssertionError(f"console block does not start with a '$ ' command: {line!r}")
        i += 1
    return [(cmd, "\n".join(out).strip("\n")) for cmd, out in commands]


def _run(argv: list[str], workdir: Path, where: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            cwd=workdir,
            env=_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=EXAMPLE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{where}: the example did not finish within {EXAMPLE_TIMEOUT:g} s:\n{exc.output}"
        )


def _check(
    where: str, code: str, proc: subprocess.CompletedProcess[str], expected: str | None, status: int
) -> None:
    report = f"{where}: example\n{textwrap.indent(code, '    ')}\n"
    assert proc.returncode == status, (
        f"{report}exited with status {proc.returncode} (expected {status}); output:\n{proc.stdout}"
    )
    if expected:
        assert output_matches(expected, proc.stdout), (
            f"{report}printed:\n{proc.stdout}\nexpected:\n{expected}"
        )


def _prepare(page: Page, tmp_path: Path) -> None:
    for name, text in page.files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")


def test_every_block_is_classified() -> None:
    problems = [problem for page in PAGES for problem in page.problems]
    assert not problems, "\n".join(problems)


def test_docs_have_examples() -> None:
    # The harness must find something, or it could pass by finding nothing.
    assert any(b.language == "python" for _, b in runnable_blocks())
    assert any(b.language == "console" for _, b in runnable_blocks())


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("page", "block"), list(runnable_blocks()), ids=[b.where for _, b in runnable_blocks()]
)
def test_example(page: Page, block: Block, tmp_path: Path) -> None:
    _prepare(page, tmp_path)
    if block.language == "python":
        script = tmp_path / "example.py"
        script.write_text(block.text, encoding="utf-8")
        proc = _run([sys.executable, str(script)], tmp_path, block.where)
        _check(block.where, block.text, proc, block.expected_output, 0)
        return
    commands = parse_console(block.text)
    assert commands, f"{block.where}: empty console block"
    for index, (command, expected) in enumerate(commands):
        parts = [p.strip() for p in command.split("&&")]
        to_run = []
        for part in parts:
            words = shlex.split(part)
            if _is_install(words):
                _check_install_command(words, block.where)
            else:
                to_run.append(part)
        if not to_run:
            continue
        last = index == len(commands) - 1
        status = int(block.markers.get("example-status", "0")) if last else 0
        proc = _run(["bash", "-c", " && ".join(to_run)], tmp_path, block.where)
        _check(block.where, command, proc, expected, status)


# --------------------------------------------------------------------------- API coverage


def _public_modules() -> list[object]:
    names = ["trio_enchannel", "trio_enchannel.testing"]
    return [importlib.import_module(name) for name in names]


def test_every_public_name_is_in_the_api_reference() -> None:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    # autodoc directives, and plain `.. data::` for constants whose value has no docstring.
    documented = set(re.findall(r"^\.\. (?:auto\w+|data):: ([\w.]+)", api, re.MULTILINE))
    missing = []
    for module in _public_modules():
        prefix = "" if module is trio_enchannel else module.__name__ + "."  # type: ignore[attr-defined]
        for name in getattr(module, "__all__", []):
            if name not in documented and prefix + name not in documented:
                missing.append(prefix + name)
    assert not missing, f"public names missing from docs/api.rst: {missing}"


def _public_objects() -> Iterator[tuple[str, object]]:
    for module in _public_modules():
        yield module.__name__, module  # type: ignore[attr-defined]
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            yield f"{module.__name__}.{name}", obj  # type: ignore[attr-defined]
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") or attr == "__init__":
                        yield f"{module.__name__}.{name}.{attr}", member  # type: ignore[attr-defined]


def _docstring_code(doc: str) -> Iterator[str]:
    """Literal code blocks ('::' paragraphs and python code-blocks) in a docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines):
        stripped = line.rstrip()
        is_python_block = re.match(r"^\s*\.\. code-block:: python\s*$", line)
        if not (is_python_block or (stripped.endswith("::") and not _RST_DIRECTIVE.match(line))):
            continue
        base = _indent(line)
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and _indent(following) <= base:
                break
            body.append(following)
        code = textwrap.dedent("\n".join(body)).strip()
        if code and not code.startswith(">>>"):
            yield code


def test_docstring_code_compiles_and_imports_real_names() -> None:
    problems = []
    for qualname, obj in _public_objects():
        doc = getattr(obj, "__doc__", None)
        if not isinstance(doc, str) or (
            inspect.getmodule(obj) is None and not inspect.ismodule(obj)
        ):
            continue
        for code in _docstring_code(doc):
            try:
                tree = compile(
                    code, qualname, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                )
            except SyntaxError as exc:
                problems.append(f"{qualname}: example does not compile: {exc}\n{code}")
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "trio_enchannel"
                ):
                    module = importlib.import_module(node.module or "")
                    for alias in node.names:
                        if not hasattr(module, alias.name):
                            problems.append(
                                f"{qualname}: example imports missing {node.module}.{alias.name}"
                            )
    assert not problems, "\n\n".join(problems)


def test_docstring_doctests() -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    seen: set[int] = set()
    for qualname, obj in _public_objects():
        if id(obj) in seen or not (
            inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj)
        ):
            continue
        seen.add(id(obj))
        for test in finder.find(obj, qualname, globs={"trio_enchannel": trio_enchannel}):
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed (see output)"


# --------------------------------------------------------------------------- public signatures


def _not_constructed_by_users() -> set[str]:
    """Classes that api.rst documents without a constructor (``.. autoclass:: Name()``): the
    library makes them (``open_channels`` returns a ``Channels``), so their ``__init__`` is not
    public and may take private helpers."""
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    return set(re.findall(r"^\.\. autoclass:: ([\w.]+)\(\)\s*$", api, re.MULTILINE))


def _exported() -> dict[int, str]:
    """id() of every object a public module exports, with its public name."""
    names: dict[int, str] = {}
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            names.setdefault(id(getattr(module, name)), f"{module.__name__}.{name}")  # type: ignore[attr-defined]
    return names


def _signature_owners() -> Iterator[tuple[str, object]]:
    """(public name, callable or class) whose annotations the API reference shows."""
    bare = _not_constructed_by_users()
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            qualname = f"{module.__name__}.{name}"  # type: ignore[attr-defined]
            if inspect.isfunction(obj):
                yield qualname, obj
            if not inspect.isclass(obj) or issubclass(obj, BaseException):
                continue
            short = qualname.removeprefix("trio_enchannel.")
            if short not in bare and qualname not in bare:
                yield f"{qualname}.__init__", obj.__init__
            yield f"{qualname} (attributes)", obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{qualname}.{attr}", member


def _private_parts(hint: object, exported: dict[int, str]) -> Iterator[str]:
    """The private names a resolved annotation would show."""
    if isinstance(hint, (str, typing.ForwardRef)):
        yield f"unresolved {hint!r}"
        return
    if isinstance(hint, typing.TypeVar):
        return
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return
    for arg in args:
        if arg is not Ellipsis and not isinstance(arg, list):
            yield from _private_parts(arg, exported)
        elif isinstance(arg, list):  # Callable[[A, B], R]
            for item in arg:
                yield from _private_parts(item, exported)
    target = origin if origin is not None else hint
    if not isinstance(target, type):
        return
    module = getattr(target, "__module__", "")
    name = f"{module}.{target.__qualname__}"
    if module.split(".")[0] == "trio_enchannel":
        if id(target) not in exported:
            yield name
    elif any(part.startswith("_") for part in target.__qualname__.split(".")):
        yield name


def _public_namespace() -> dict[str, object]:
    namespace: dict[str, object] = {}
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            namespace.setdefault(name, getattr(module, name))
    return namespace


def _hints(obj: object, public: dict[str, object]) -> dict[str, object]:
    """The resolved annotations of *obj*, as Sphinx shows them.

    Names imported only for type checkers resolve when the package exports them (the API
    reference links them); any other unresolved name fails, as the docs would show it as text.
    """
    if inspect.isclass(obj):
        module_globals = vars(sys.modules[obj.__module__])
        own = _documented_attributes(obj)
    else:
        module_globals = getattr(obj, "__globals__", {})
        own = None
    localns = {k: v for k, v in public.items() if k not in module_globals}
    hints = typing.get_type_hints(obj, localns=localns)
    return {k: v for k, v in hints.items() if own is None or k in own}


# Private types that public signatures still show, each waiting for a public name (issue 14):
# delete an entry when its type is exported or spelled with a public type.
AWAITING_A_PUBLIC_NAME: set[str] = set()  # private types allowed in public signatures: none


def test_public_signatures_show_only_public_names() -> None:
    exported = _exported()
    public = _public_namespace()
    problems = []
    for qualname, obj in _signature_owners():
        try:
            hints = _hints(obj, public)
        except NameError as exc:  # the docs would show the annotation as unlinked text
            problems.append(f"{qualname}: annotations do not resolve: {exc}")
            continue
        if callable(obj) and not inspect.isclass(obj):
            for parameter in inspect.signature(obj).parameters:
                if parameter.startswith("_"):
                    problems.append(f"{qualname}: private parameter {parameter!r}")
        for key, hint in hints.items():
            for private in _private_parts(hint, exported):
                if private not in AWAITING_A_PUBLIC_NAME:
                    problems.append(f"{qualname}: {key}: {private}")
        if inspect.isclass(obj):
            for key, hint in _instance_attribute_hints(obj, public):
                for private in _private_parts(hint, exported):
                    if private not in AWAITING_A_PUBLIC_NAME:
                        problems.append(f"{qualname}: {key}: {private}")
    assert not problems, "private names in public signatures:\n" + "\n".join(problems)


def _documented_attributes(cls: type) -> set[str]:
    """Annotated attributes that the API reference lists (public ones, of this class)."""
    own = set(vars(cls).get("__annotations__", {}))
    fields = getattr(cls, "__attrs_attrs__", ())
    own |= {f.name for f in fields}
    return {name for name in own if not name.startswith("_")}


def _instance_attribute_hints(cls: type, public: dict[str, object]) -> Iterator[tuple[str, object]]:
    """``self.name: T = ...`` in the class's own methods, as autodoc documents them."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return
    module_globals = vars(sys.modules[cls.__module__])
    namespace = {**public, **module_globals}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Attribute)
            and isinstance(node.target.value, ast.Name)
            and node.target.value.id == "self"
            and not node.target.attr.startswith("_")
        ):
            text = ast.unparse(node.annotation)
            try:
                hint = eval(text, namespace)
            except NameError as exc:
                yield node.target.attr, f"{text} ({exc})"
            else:
                yield node.target.attr, hint
