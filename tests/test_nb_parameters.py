"""Notebook parameters: papermill's translation, injection and command-line forms.

Differential tests run papermill (installed for the tests) on the same values wherever
papermill's output is correct for the language; round-trip tests execute the Python and bash
translations and read the values back.
"""

from __future__ import annotations

import copy
import json
import keyword
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_enchannel._errors import EnchannelError, ParameterError
from trio_enchannel._notebook._parameters import (
    inject_parameters,
    parameters_language,
    parse_parameters,
    supported_languages,
    translate_parameters,
)

nbformat: Any = pytest.importorskip("nbformat")

papermill_translators = pytest.importorskip("papermill.translators")
papermill_parameterize = pytest.importorskip("papermill.parameterize")
papermill_cli = pytest.importorskip("papermill.cli")
papermill_iorw = pytest.importorskip("papermill.iorw")
yaml = pytest.importorskip("yaml")


# --- strategies ------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n)
)
any_text = st.text(max_size=12)  # surrogates included: Python can hold them
unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
any_float = st.floats()
ints = st.integers(-(2**70), 2**70)


def values(
    text: st.SearchStrategy[str],
    floats: st.SearchStrategy[float],
    *,
    none: bool = True,
    containers: bool = True,
) -> st.SearchStrategy[Any]:
    scalars: st.SearchStrategy[Any] = st.booleans() | ints | floats | text
    if none:
        scalars = scalars | st.none()
    if not containers:
        return scalars
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


def params(value_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(names, value_strategy, max_size=5)


def papermill_codify(language: str, parameters: dict[str, Any]) -> str:
    translator = papermill_translators.papermill_translators.find_translator(language, language)
    # papermill formats Python with black when black is installed; compare with its own code.
    base: Any = papermill_translators.Translator.codify.__func__
    codify: Any = base if translator is papermill_translators.PythonTranslator else None
    if codify is not None:
        return str(codify(translator, parameters, "Parameters"))
    return str(translator.codify(parameters, "Parameters"))


# --- the same code as papermill, where papermill's is right ----------------------------------

# Where papermill's code does not parse or does not give the value back, ours differs: those
# cases are left out of each language's strategy here and checked one by one further down.
_BACKSLASH_SAFE = st.text(
    st.sampled_from([*map(chr, range(0x20, 0x7F)), "\n", "\t", "\r"]), max_size=12
)
_DIFFERENTIAL: dict[str, st.SearchStrategy[Any]] = {
    "python": values(any_text, any_float),
    "R": values(ascii_text | _BACKSLASH_SAFE, finite),
    "julia": values((ascii_text | _BACKSLASH_SAFE).filter(lambda s: "$" not in s), finite),
    "scala": values(_BACKSLASH_SAFE, finite),
    ".net-csharp": values(_BACKSLASH_SAFE, finite, none=False),
    ".net-fsharp": values(_BACKSLASH_SAFE, finite),
    "matlab": values(ascii_text.filter(lambda s: "\\" not in s), finite),
    # PowerShell: papermill's double-quoted strings interpolate `$`; ours are single-quoted.
    ".net-powershell": values(st.nothing(), any_float, containers=False)
    | st.lists(values(st.nothing(), any_float, containers=False), max_size=4),
    "bash": values(unicode_text.filter(lambda s: "\0" not in s), any_float, containers=False)
    | st.lists(
        values(
            unicode_text.filter(lambda s: "\0" not in s), any_float, none=False, containers=False
        ),
        max_size=4,
    ),
}


@pytest.mark.parametrize("language", sorted(_DIFFERENTIAL))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_translation_matches_papermill(language: str, data: st.DataObject) -> None:
    parameters = data.draw(params(_DIFFERENTIAL[language]))
    assert translate_parameters(language, parameters) == papermill_codify(language, parameters)


def test_every_papermill_language_is_supported() -> None:
    registered = set(papermill_translators.papermill_translators._translators)
    assert {name.lower() for name in registered} <= set(supported_languages())


@pytest.mark.parametrize(
    ("language", "value", "ours", "papermills"),
    [
        # R and Julia read "\xe9" as one byte, not as the character.
        ("R", "é", '"\\u00e9"', '"\\xe9"'),
        ("julia", "é", '"\\u00e9"', '"\\xe9"'),
        # Julia interpolates $name in a double-quoted string.
        ("julia", "$HOME", '"\\$HOME"', '"$HOME"'),
        # inf is not a name in R or Julia.
        ("R", math.inf, "Inf", "inf"),
        ("julia", -math.inf, "-Inf", "-inf"),
        ("julia", math.nan, "NaN", "nan"),
        # bash: an empty word inside an array is no element at all.
        ("bash", ["a", None], "(a '')", "(a )"),
        # MATLAB has no backslash escapes in string literals.
        ("matlab", "a\\b\n", '"a\\b" + char(10)', '"a\\\\b\\n"'),
        # PowerShell: "$x" interpolates; a single-quoted string is verbatim.
        (".net-powershell", "$x", "'$x'", '"$x"'),
        # Scala has no \x escapes.
        ("scala", "\x01", '"\\u0001"', '"\\x01"'),
    ],
)
def test_where_papermills_code_is_wrong_ours_differs(
    language: str, value: Any, ours: str, papermills: str
) -> None:
    assign = {"bash": "x={}", "scala": "val x = {}", "matlab": "x = {};"}.get(language, "x = {}")
    if language == ".net-powershell":
        assign = "$x = {}"
    assert translate_parameters(language, {"x": value}).splitlines()[1] == assign.format(ours)
    assert papermill_codify(language, {"x": value}).splitlines()[1] == assign.format(papermills)


# --- the values come back --------------------------------------------------------------------


@settings(max_examples=200)
@given(params(values(any_text, any_float)))
def test_python_translation_round_trips(parameters: dict[str, Any]) -> None:
    namespace: dict[str, Any] = {}
    exec(translate_parameters("python", parameters), namespace)
    for name, value in parameters.items():
        assert repr(namespace[name]) == repr(value)


def test_python_translation_of_tuples_is_a_list() -> None:
    namespace: dict[str, Any] = {}
    exec(translate_parameters("python", {"t": (1, "a")}), namespace)
    assert namespace["t"] == [1, "a"]


def _bash_words(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    words = []
    for item in items:
        if item is None:
            words.append("")
        elif isinstance(item, bool):
            words.append("true" if item else "false")
        elif isinstance(item, float):
            words.append(repr(item))
        else:
            words.append(str(item))
    return words


_bash_text = unicode_text.filter(lambda s: "\0" not in s)
_bash_scalars = values(_bash_text, any_float, containers=False)
bash_params = st.dictionaries(
    names.map(lambda n: f"p_{n}"), _bash_scalars | st.lists(_bash_scalars, max_size=4), max_size=5
)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@settings(max_examples=60, deadline=None)
@given(bash_params)
def test_bash_translation_round_trips(parameters: dict[str, Any]) -> None:
    script = translate_parameters("bash", parameters)
    for name in parameters:
        script += f'printf "%s\\0" "${{#{name}[@]}}"; for w in "${{{name}[@]}}"; do '
        script += 'printf "%s\\0" "$w"; done\n'
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-e", "-c", script],
        capture_output=True,
        check=True,
        timeout=60,
    )
    fields = done.stdout.decode("utf-8").split("\0")
    for name, value in parameters.items():
        count = int(fields.pop(0))
        assert [fields.pop(0) for _ in range(count)] == _bash_words(value), name
    assert fields == [""]


# --- what a language cannot hold is refused --------------------------------------------------


@pytest.mark.parametrize(
    ("language", "parameters", "culprit"),
    [
        ("python", {"class": 1}, "class"),
        ("python", {"a b": 1}, "a b"),
        ("python", {"": 1}, ""),
        ("bash", {"é": 1}, "é"),
        ("R", {"__": 1}, "__"),
        ("matlab", {"_x": 1}, "_x"),
        ("bash", {"cfg": {"a": 1}}, "cfg"),
        ("bash", {"rows": [[1]]}, "rows"),
        ("csharp", {"n": None}, "n"),
        ("csharp", {"n": [1, None]}, "n"),
        ("R", {"s": "a\0b"}, "s"),
        ("bash", {"s": "a\0b"}, "s"),
        ("julia", {"s": ["ok", {"k": "\ud800"}]}, "s"),
    ],
)
def test_untranslatable_parameters_are_refused_by_name(
    language: str, parameters: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        translate_parameters(language, parameters)
    assert caught.value.name == culprit
    assert repr(culprit)[1:-1] in str(caught.value) or culprit in str(caught.value)
    assert isinstance(caught.value, EnchannelError)
    assert isinstance(caught.value, ValueError)


def test_r_drops_leading_underscores_as_papermill_does() -> None:
    assert translate_parameters("R", {"_x": 1}) == "# Parameters\nx = 1\n"


def test_unknown_language_and_types() -> None:
    with pytest.raises(ParameterError, match="cobol"):
        translate_parameters("cobol", {"x": 1})
    with pytest.raises(TypeError, match=r"cfg\['a'\].*object"):
        translate_parameters("python", {"cfg": {"a": object()}})
    with pytest.raises(TypeError, match="names must be str"):
        translate_parameters("python", {1: 1})  # type: ignore[dict-item]
    with pytest.raises(ParameterError, match="single line"):
        translate_parameters("python", {}, comment="a\nb")
    with pytest.raises(TypeError, match="mapping"):
        translate_parameters("python", [("x", 1)])  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="too large") as caught:
        translate_parameters("python", {"big": [10**5000]})
    assert caught.value.name == "big"


def test_language_names_are_case_insensitive() -> None:
    assert translate_parameters("Python", {"x": 1}) == translate_parameters("python", {"x": 1})
    assert translate_parameters("C#", {"x": 1}) == "// Parameters\nvar x = 1;\n"


# --- injection -------------------------------------------------------------------------------


def _notebook(kinds: list[str], parameters_at: int | None, injected_at: int | None) -> Any:
    nb = nbformat.v4.new_notebook()
    for index, kind in enumerate(kinds):
        if kind == "code":
            cell = nbformat.v4.new_code_cell(source=f"cell_{index} = {index}")
        else:
            cell = nbformat.v4.new_markdown_cell(source=f"text {index}")
        tags: list[str] = []
        if index == parameters_at:
            tags.append("parameters")
        if index == injected_at:
            tags.append("injected-parameters")
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def _normalised(nb: Any) -> Any:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.pop("id", None)
        cell.metadata.pop("papermill", None)
    return {"cells": nb.cells, "parameters": nb.metadata["papermill"]["parameters"]}


@st.composite
def notebooks(draw: st.DrawFn) -> Any:
    kinds = draw(st.lists(st.sampled_from(["code", "markdown"]), max_size=6))
    positions = st.none() | st.integers(0, max(len(kinds) - 1, 0)) if kinds else st.none()
    return _notebook(kinds, draw(positions), draw(positions))


@settings(max_examples=100, deadline=None)
@given(notebooks(), params(values(any_text, any_float)))
def test_injection_matches_papermill(nb: Any, parameters: dict[str, Any]) -> None:
    theirs_in = copy.deepcopy(nb)
    theirs_in.metadata["papermill"] = {}
    try:
        base: Any = papermill_translators.Translator.codify.__func__
        python = papermill_translators.PythonTranslator
        original = python.__dict__["codify"]
        python.codify = classmethod(base)  # papermill would use black if it were installed
        theirs = papermill_parameterize.parameterize_notebook(
            theirs_in, parameters, kernel_name="python3", language="python"
        )
    finally:
        python.codify = original
    before = copy.deepcopy(nb)
    ours = inject_parameters(nb, parameters, language="python")
    assert nb == before  # the input is not changed
    assert _normalised(ours) == _normalised(theirs)
    ids = [cell.id for cell in ours.cells]
    assert len(set(ids)) == len(ids)
    nbformat.validate(ours)


def test_injection_without_tags_metadata_and_in_an_old_format() -> None:
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    nb.cells = [nbformat.v4.new_code_cell(source="a = 1"), nbformat.v4.new_code_cell("b = 2")]
    for cell in nb.cells:
        del cell["id"]
    ours = inject_parameters(nb, {"a": 5}, language="R")
    assert [cell.source for cell in ours.cells] == ["# Parameters\na = 5\n", "a = 1", "b = 2"]
    assert ours.cells[0].metadata.tags == ["injected-parameters"]
    assert "id" not in ours.cells[0]
    assert ours.nbformat_minor == 4
    assert ours.metadata.papermill.parameters == {"a": 5}
    nbformat.validate(ours)


def test_injection_refuses_before_copying() -> None:
    nb = _notebook(["code"], 0, None)
    with pytest.raises(ParameterError):
        inject_parameters(nb, {"x y": 1}, language="python")


# --- the command line's forms ----------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=10) | st.sampled_from(["True", "False", "None", "1_0", " 7 ", "nan"]))
def test_p_values_are_typed_as_papermill_types_them(text: str) -> None:
    ours = parse_parameters([("x", text)])["x"]
    theirs = papermill_cli._resolve_type(text)
    assert type(ours) is type(theirs)
    assert repr(ours) == repr(theirs)


def test_precedence_files_then_yaml_then_p_then_r(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("a: 1\nb: 1\nc: 1\nd: 1\ne: 1\n")
    second = tmp_path / "b.json"
    second.write_text(json.dumps({"b": 2, "c": 2, "d": 2, "e": 2}))
    result = parse_parameters(
        [("d", "4"), ("e", "4")],
        raw_pairs=[("e", "5")],
        files=[first, second],
        yaml_text="c: 3\nd: 3\ne: 3",
    )
    assert result == {"a": 1, "b": 2, "c": 3, "d": 4, "e": "5"}


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8).filter(
            lambda s: s == s.strip()
        ),
        values(unicode_text, finite),
        max_size=4,
    )
)
def test_yaml_is_read_as_papermill_reads_it(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    expected = yaml.load(text, Loader=papermill_iorw.NoDatesSafeLoader) or {}
    assert parse_parameters(yaml_text=text) == expected


def test_yaml_dates_stay_strings_and_empty_documents_give_nothing(tmp_path: Path) -> None:
    assert parse_parameters(yaml_text="day: 2024-01-02") == {"day": "2024-01-02"}
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert parse_parameters(files=[empty], yaml_text="") == {}


@pytest.mark.parametrize(
    ("content", "suffix", "message", "culprit"),
    [
        ("a: [1", ".yaml", "not valid YAML", None),
        ("{'a': 1}", ".json", "not valid JSON", None),
        ("- 1\n- 2\n", ".yaml", "must be a mapping", None),
        ("data: !!binary aGk=\n", ".yaml", "data is a bytes", "data"),
        ("s: !!set {a: null}\n", ".yaml", "s is a set", "s"),
        ("cfg: {!!binary aGk=: x}\n", ".yaml", "key of type", "cfg"),
        ("1: x\n", ".yaml", "name 1 is not", "1"),
    ],
)
def test_malformed_parameter_files_are_refused(
    tmp_path: Path, content: str, suffix: str, message: str, culprit: str | None
) -> None:
    path = tmp_path / f"params{suffix}"
    path.write_text(content)
    with pytest.raises(ParameterError, match=message) as caught:
        parse_parameters(files=[path])
    assert str(path) in str(caught.value)
    assert caught.value.name == culprit


def test_missing_file_and_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot be read"):
        parse_parameters(files=[tmp_path / "nope.yaml"])
    with pytest.raises(ParameterError, match="-p") as caught:
        parse_parameters([("", "1")])
    assert caught.value.name == ""
    with pytest.raises(ParameterError, match="-r"):
        parse_parameters(raw_pairs=[(" x", "1")])


def test_several_yaml_strings_apply_in_turn() -> None:
    assert parse_parameters(yaml_text=["a: 1\nb: 1", "b: 2"]) == {"a": 1, "b": 2}


def test_the_language_is_chosen_as_papermill_chooses_it() -> None:
    nb = _notebook(["code"], None, None)
    nb.metadata["kernelspec"] = {"name": "ir", "language": "R", "display_name": "R"}
    assert parameters_language(nb) == "R"
    nb.metadata["language_info"] = {"name": "python"}
    assert parameters_language(nb) == "python"
    assert parameters_language(nb, kernel_name="sparkkernel") == "sparkkernel"
    assert parameters_language(_notebook([], None, None), kernel_language="bash") == "bash"
    with pytest.raises(ParameterError, match="'cobol'"):
        parameters_language(_notebook([], None, None), kernel_language="cobol")


@settings(max_examples=300)
@given(st.text(max_size=60) | st.from_regex(r"[a-z]{1,3}: ?[\[\{!&*|>%@`'\"0-9a-z:, -]{0,20}"))
def test_any_yaml_text_gives_parameters_or_a_parameter_error(text: str) -> None:
    try:
        result = parse_parameters(yaml_text=text)
    except ParameterError:
        return
    assert isinstance(result, dict)
    assert all(isinstance(name, str) and name for name in result)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=60), st.sampled_from([".json", ".yaml"]))
def test_any_file_gives_parameters_or_a_parameter_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("params") / f"p{suffix}"
    path.write_bytes(content)
    try:
        result = parse_parameters(files=[path])
    except ParameterError:
        return
    assert isinstance(result, dict)


@pytest.mark.parametrize(
    "text",
    ["a: &x [*x]", "a: " + "[" * 5000 + "]" * 5000, "a: " + "{b: " * 3000 + "1" + "}" * 3000],
)
def test_self_referring_and_too_deep_yaml_is_refused(text: str) -> None:
    with pytest.raises(ParameterError, match=r"itself|too deeply"):
        parse_parameters(yaml_text=text)


def test_too_deep_json_and_self_containing_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ParameterError, match="too deeply"):
        parse_parameters(files=[path])
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ParameterError, match="itself") as caught:
        translate_parameters("python", {"loop": loop})
    assert caught.value.name == "loop"
