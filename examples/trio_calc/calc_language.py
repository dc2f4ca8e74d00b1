"""The calculator language of the trio-calc example kernel (no protocol code here).

A small, safe, Python-flavoured expression language: numbers, strings, variables,
``+ - * / // % **``, comparisons, and a few functions. Code is parsed with :mod:`ast` and
evaluated node by node; nothing is ever passed to ``eval``.

Functions that talk to the outside world (``print``, ``input``, ``display``, ``sleep``, ...)
go through an :class:`CalcIO` object, so the kernel decides what they do on the wire.
"""

from __future__ import annotations

import ast
import codeop
import math
import operator
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["FUNCTIONS", "CalcError", "CalcIO", "Interpreter", "is_complete"]

MAX_EXPONENT = 10_000
MAX_STRING = 1_000_000


class CalcError(Exception):
    """An error in the user's code, reported to the frontend as an ``error`` output."""

    def __init__(self, ename: str, evalue: str, line: int | None = None) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename = ename
        self.evalue = evalue
        self.line = line

    @property
    def traceback(self) -> list[str]:
        where = f"line {self.line}: " if self.line else ""
        return [f"{where}{self.ename}: {self.evalue}"]


class CalcIO(Protocol):
    """What the interpreter needs from the kernel."""

    async def write(self, stream: str, text: str) -> None: ...
    async def display(self, data: dict[str, str]) -> None: ...
    async def clear(self) -> None: ...
    async def input(self, prompt: str) -> str: ...
    async def sleep(self, seconds: float) -> None: ...
    def page(self, text: str) -> None: ...


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalcError("TypeError", f"expected a number, got {_type(value)}")
    return value


def _type(value: Any) -> str:
    return {int: "number", float: "number", str: "string", bool: "boolean"}.get(
        type(value), "nothing"
    )


def show(value: Any) -> str:
    """How a value is shown as a result (strings quoted, like Python's repr).

    Raises:
        CalcError: the value is too large to be written out.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return repr(value)
    except ValueError as exc:  # an integer with too many digits
        raise CalcError("OverflowError", str(exc)) from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else show(value)


_Impl = Callable[..., Awaitable[Any]]


class Function:
    """A built-in function: its implementation, arity and documentation."""

    def __init__(self, impl: _Impl, doc: str, min_args: int, max_args: int | None) -> None:
        self.impl = impl
        self.doc = doc
        self.min_args = min_args
        self.max_args = max_args


FUNCTIONS: dict[str, Function] = {}


def _function(
    name: str, doc: str, min_args: int = 1, max_args: int | None = 1
) -> Callable[[_Impl], _Impl]:
    def register(impl: _Impl) -> _Impl:
        FUNCTIONS[name] = Function(impl, doc, min_args, max_args)
        return impl

    return register


def _math(name: str, fn: Callable[[float], float], doc: str) -> None:
    async def impl(io: CalcIO, x: Any) -> Any:
        try:
            return fn(_number(x))
        except (ValueError, OverflowError) as exc:
            raise CalcError(type(exc).__name__, f"{name}({show(x)}): {exc}") from None

    FUNCTIONS[name] = Function(impl, doc, 1, 1)


_math("sqrt", math.sqrt, "sqrt(x): the square root of x.")
_math("sin", math.sin, "sin(x): the sine of x (radians).")
_math("cos", math.cos, "cos(x): the cosine of x (radians).")
_math("tan", math.tan, "tan(x): the tangent of x (radians).")
_math("exp", math.exp, "exp(x): e to the power x.")
_math("log", math.log, "log(x): the natural logarithm of x.")
_math("floor", math.floor, "floor(x): the largest integer <= x.")
_math("ceil", math.ceil, "ceil(x): the smallest integer >= x.")
_math("abs", abs, "abs(x): the absolute value of x.")


@_function("round", "round(x, digits=0): x rounded to a number of decimal digits.", 1, 2)
async def _round(io: CalcIO, x: Any, digits: Any = 0) -> Any:
    return round(_number(x), int(_number(digits)))


@_function("min", "min(a, b, ...): the smallest argument.", 1, None)
async def _min(io: CalcIO, *args: Any) -> Any:
    return min(_number(a) for a in args)


@_function("max", "max(a, b, ...): the largest argument.", 1, None)
async def _max(io: CalcIO, *args: Any) -> Any:
    return max(_number(a) for a in args)


@_function("print", "print(a, b, ...): write the values to standard output.", 0, None)
async def _print(io: CalcIO, *args: Any) -> None:
    await io.write("stdout", " ".join(_text(a) for a in args) + "\n")


@_function("eprint", "eprint(a, b, ...): write the values to standard error.", 0, None)
async def _eprint(io: CalcIO, *args: Any) -> None:
    await io.write("stderr", " ".join(_text(a) for a in args) + "\n")


@_function("display", "display(x): show x as a rich output (plain text and LaTeX).")
async def _display(io: CalcIO, x: Any) -> None:
    await io.display({"text/plain": show(x), "text/latex": f"${_text(x)}$"})


@_function("html", "html(text): show a piece of HTML.")
async def _html(io: CalcIO, text: Any) -> None:
    await io.display({"text/html": _text(text), "text/plain": _text(text)})


@_function("clear", "clear(): clear the output shown so far.", 0, 0)
async def _clear(io: CalcIO) -> None:
    await io.clear()


@_function("input", "input(prompt=''): ask the user for a line of text.", 0, 1)
async def _input(io: CalcIO, prompt: Any = "") -> str:
    return await io.input(_text(prompt))


@_function("number", "number(text): the number written in text.")
async def _to_number(io: CalcIO, text: Any) -> Any:
    if not isinstance(text, str):
        return _number(text)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise CalcError("ValueError", f"not a number: {text!r}") from None


@_function("sleep", "sleep(seconds): wait (interrupt the kernel to stop waiting).")
async def _sleep(io: CalcIO, seconds: Any) -> None:
    await io.sleep(float(_number(seconds)))


@_function("help", "help(name): show the documentation of a function in the pager.", 0, 1)
async def _help(io: CalcIO, name: Any = None) -> None:
    io.page(describe(name if isinstance(name, str) else None))


CONSTANTS: dict[str, Any] = {"pi": math.pi, "e": math.e, "true": True, "false": False}


def describe(name: str | None) -> str:
    """Documentation of a function or constant (or of everything when ``name`` is None)."""
    if name is None:
        lines = ["Functions:"] + [f"  {f.doc}" for f in FUNCTIONS.values()]
        return "\n".join(lines)
    if name in FUNCTIONS:
        return FUNCTIONS[name].doc
    if name in CONSTANTS:
        return f"{name} = {show(CONSTANTS[name])}"
    raise CalcError("NameError", f"no function or constant named {name!r}")


def _pow(a: Any, b: Any) -> Any:
    a, b = _number(a), _number(b)
    if isinstance(b, int) and abs(b) > MAX_EXPONENT and abs(a) > 1:
        raise CalcError("OverflowError", f"exponent {b} is too large")
    return a**b


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        text, times = (a, b) if isinstance(a, str) else (b, a)
        if not isinstance(times, int) or isinstance(times, bool):
            raise CalcError("TypeError", "a string can only be repeated a whole number of times")
        if len(text) * max(times, 0) > MAX_STRING:
            raise CalcError("MemoryError", "that string would be too long")
        return text * times
    return _number(a) * _number(b)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise CalcError("MemoryError", "that string would be too long")
        return a + b
    if isinstance(a, str) or isinstance(b, str):
        raise CalcError("TypeError", f"cannot add {_type(a)} and {_type(b)}")
    return _number(a) + _number(b)


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda a, b: op(_number(a), _number(b))


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _numeric(operator.sub),
    ast.Mult: _mul,
    ast.Div: _numeric(operator.truediv),
    ast.FloorDiv: _numeric(operator.floordiv),
    ast.Mod: _numeric(operator.mod),
    ast.Pow: _pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def parse(code: str) -> list[ast.stmt]:
    """Parse ``code`` into statements (expressions and ``name = expression``).

    Raises:
        CalcError: a syntax error, or Python syntax the calculator does not have.
    """
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        raise CalcError("SyntaxError", exc.msg or "invalid syntax", exc.lineno) from None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise CalcError("SyntaxError", "only 'name = expression' assignments", stmt.lineno)
        elif not isinstance(stmt, ast.Expr):
            raise CalcError(
                "SyntaxError",
                f"{type(stmt).__name__.lower()} is not calculator syntax",
                stmt.lineno,
            )
    return tree.body


def is_complete(code: str) -> tuple[str, str]:
    """``(status, indent)`` for an ``is_complete_request``: complete, incomplete or invalid."""
    if not code.strip():
        return "complete", ""
    try:
        compiled = codeop.compile_command(code, "<calc>", "exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid", ""
    if compiled is None:
        return "incomplete", ""
    try:
        parse(code)
    except CalcError:
        return "invalid", ""
    return "complete", ""


class Interpreter:
    """Runs calculator code; keeps the variables between executions."""

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}

    def names(self) -> list[str]:
        """Every name code can use: variables, constants and functions."""
        return sorted({*self.variables, *CONSTANTS, *FUNCTIONS})

    def describe(self, name: str) -> str | None:
        """Documentation or value of ``name``, or None when unknown."""
        if name in self.variables:
            return f"{name} = {show(self.variables[name])}"
        try:
            return describe(name)
        except CalcError:
            return None

    async def run(self, code: str, io: CalcIO) -> Any:
        """Run ``code``; return the value of its last statement if that is an expression.

        Raises:
            CalcError: the code failed.
        """
        result: Any = None
        for stmt in parse(code):
            try:
                if isinstance(stmt, ast.Assign):
                    target = stmt.targets[0]
                    assert isinstance(target, ast.Name)
                    if target.id in FUNCTIONS or target.id in CONSTANTS:
                        raise CalcError("NameError", f"{target.id!r} is built in")
                    self.variables[target.id] = await self._eval(stmt.value, io)
                    result = None
                else:
                    assert isinstance(stmt, ast.Expr)
                    result = await self._eval(stmt.value, io)
            except CalcError as exc:
                exc.line = exc.line or stmt.lineno
                raise
            except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
                raise CalcError(type(exc).__name__, str(exc), stmt.lineno) from None
        return result

    async def _eval(self, node: ast.expr, io: CalcIO) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool):
                return node.value
            raise CalcError("SyntaxError", f"unsupported literal {node.value!r}")
        if isinstance(node, ast.Name):
            if node.id in self.variables:
                return self.variables[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in FUNCTIONS:
                raise CalcError("TypeError", f"{node.id} is a function: call it, {node.id}(...)")
            raise CalcError("NameError", f"name {node.id!r} is not defined")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = await self._eval(node.left, io)
            right = await self._eval(node.right, io)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = _number(await self._eval(node.operand, io))
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Compare):
            left = await self._eval(node.left, io)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = await self._eval(right_node, io)
                if type(op) not in _COMPARE:
                    raise CalcError("SyntaxError", "unsupported comparison")
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else "that"
                raise CalcError("NameError", f"no function named {name!r}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise CalcError("SyntaxError", "functions take positional arguments only")
            function = FUNCTIONS[node.func.id]
            count = len(node.args)
            if count < function.min_args or (
                function.max_args is not None and count > function.max_args
            ):
                raise CalcError("TypeError", f"wrong number of arguments: {function.doc}")
            if node.func.id == "help" and node.args and isinstance(node.args[0], ast.Name):
                return await function.impl(io, node.args[0].id)  # help(sqrt): by name
            args = [await self._eval(a, io) for a in node.args]
            return await function.impl(io, *args)
        raise CalcError("SyntaxError", f"{type(node).__name__} is not calculator syntax")


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")
_TOKEN_START = re.compile(r"[A-Za-z_0-9]*")


def token_at(code: str, cursor: int) -> tuple[str, int]:
    """The identifier ending at ``cursor`` and where it starts."""
    match = _TOKEN.search(code[:cursor])
    if match is None:
        return "", cursor
    return match.group(0), match.start()


def word_at(code: str, cursor: int) -> str:
    """The whole identifier around ``cursor``."""
    before, _ = token_at(code, cursor)
    after = _TOKEN_START.match(code[cursor:])
    return before + (after.group(0) if after else "")
