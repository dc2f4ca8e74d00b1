"""The example kernel (examples/trio_calc), checked by the ecosystem's own kernel test suite.

jupyter_kernel_test drives the kernel with jupyter_client's KernelManager and validates every
message against its message-spec schemas: an independent check that the kernel side speaks
the protocol. The kernelspec is installed into a temporary JUPYTER_PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import pytest
import trio

pytest.importorskip("jupyter_kernel_test", reason="its message schemas validate what kernels send")

import jupyter_kernel_test
from jupyter_kernel_test.msgspec_v5 import validate_message

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "trio_calc"
KERNEL_NAME = "trio_calc_test"
TIMEOUT = 30


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


calc = _load("calc_language")


class _InstalledKernel:
    """Installs the example kernelspec into a fresh JUPYTER_PATH for a test class."""

    directory: ClassVar[str]
    saved: ClassVar[str | None]

    @classmethod
    def install(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="trio-calc-kernels-")
        shutil.copytree(
            EXAMPLE,
            Path(cls.directory) / "kernels" / KERNEL_NAME,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        cls.saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = cls.directory

    @classmethod
    def uninstall(cls) -> None:
        if cls.saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = cls.saved
        shutil.rmtree(cls.directory, ignore_errors=True)


@pytest.mark.kernel
@pytest.mark.slow
class TestTrioCalcKernel(_InstalledKernel, jupyter_kernel_test.KernelTests):  # type: ignore[misc]
    kernel_name = KERNEL_NAME
    language_name = "calc"
    file_extension = ".calc"

    code_hello_world = 'print("hello, world")'
    code_stderr = 'eprint("something went wrong")'
    completion_samples: ClassVar[list[dict[str, Any]]] = [
        {"text": "sq", "matches": {"sqrt"}},
        {"text": "pri", "matches": {"print"}},
    ]
    complete_code_samples: ClassVar[list[str]] = ["1 + 2", "x = 3", "print(1)\n2"]
    incomplete_code_samples: ClassVar[list[str]] = ["(1 + ", "max(1,\n"]
    invalid_code_samples: ClassVar[list[str]] = ["1 +* 2", "import os", "(]"]
    code_page_something = "help(sqrt)"
    code_generate_error = "1 / 0"
    code_execute_result: ClassVar[list[dict[str, str]]] = [
        {"code": "6 * 7", "result": "42"},
        {"code": "y = 2\ny ** 10", "result": "1024"},
        {"code": '"ab" * 2', "result": "'abab'"},
    ]
    code_display_data: ClassVar[list[dict[str, str]]] = [
        {"code": "display(1 + 1)", "mime": "text/plain"},
        {"code": "display(pi)", "mime": "text/latex"},
        {"code": 'html("<b>bold</b>")', "mime": "text/html"},
    ]
    code_history_pattern = "6 *"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "sqrt"
    code_clear_output = "clear()"

    @classmethod
    def setUpClass(cls) -> None:
        cls.install()
        try:
            super().setUpClass()
        except BaseException:
            cls.uninstall()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            cls.uninstall()


@pytest.mark.kernel
class TestTrioCalcWelcome(_InstalledKernel, jupyter_kernel_test.IopubWelcomeTests):  # type: ignore[misc]
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True

    @classmethod
    def setUpClass(cls) -> None:
        cls.install()
        try:
            super().setUpClass()
        except BaseException:
            cls.uninstall()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            cls.uninstall()


# -- every message the kernel sends, against the message-spec schemas ----------------------


@pytest.fixture
def installed_kernel() -> Iterator[str]:
    _InstalledKernel.install()
    try:
        yield KERNEL_NAME
    finally:
        _InstalledKernel.uninstall()


def _drive(kernel_name: str) -> list[dict[str, Any]]:
    """Exercise every feature through jupyter_client; return every message received."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=kernel_name, startup_timeout=TIMEOUT)
    received: list[dict[str, Any]] = []

    def answer(msg: dict[str, Any]) -> None:
        received.append(msg)
        client.input("ada")

    try:
        for code in (
            "x = 2",
            "print(x, 'apples')\neprint('careful')\ndisplay(x)\nclear()\nx * 21",
            'name = input("who? ")\nprint("hi", name)',
            "help(max)",
            "1 / 0",
            "undefined + 1",
            "sqrt(-1)",
            "9 ** 100000",
            "import os",
        ):
            reply = client.execute_interactive(
                code,
                timeout=TIMEOUT,
                output_hook=received.append,
                stdin_hook=answer,
                user_expressions={"double": "x * 2", "bad": "nope"},
            )
            received.append(reply)
        silent = client.execute_interactive("x", silent=True, timeout=TIMEOUT)
        received.append(silent)
        for request in (
            lambda: client.complete("ma", 2),
            lambda: client.inspect("max", 3),
            lambda: client.inspect("unknown_thing", 3),
            lambda: client.is_complete("(1 +"),
            lambda: client.history(hist_access_type="tail", n=3, output=True, raw=True),
            lambda: client.comm_info(),
            lambda: client.kernel_info(),
        ):
            msg_id = request()
            while True:
                reply = client.get_shell_msg(timeout=TIMEOUT)
                received.append(reply)
                if reply["parent_header"]["msg_id"] == msg_id:
                    break
        # Interrupt a running execution (interrupt_mode "message": interrupt_request).
        interrupted = _interrupt_sleep(manager, client, received)
        assert interrupted["content"]["ename"] == "KeyboardInterrupt"
        while True:
            try:
                received.append(client.get_iopub_msg(timeout=0.5))
            except Exception:
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    return received


def _interrupt_sleep(manager: Any, client: Any, received: list[dict[str, Any]]) -> Any:
    """Start ``sleep(60)``, interrupt it once it runs, return its execute_reply."""
    msg_id = client.execute("sleep(60)")
    while True:
        msg = client.get_iopub_msg(timeout=TIMEOUT)
        received.append(msg)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            break
    manager.interrupt_kernel()
    while True:
        reply = client.get_shell_msg(timeout=TIMEOUT)
        received.append(reply)
        if reply["parent_header"]["msg_id"] == msg_id:
            return reply


def _interrupt_by_signal(kernel_name: str) -> Any:
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=kernel_name, startup_timeout=TIMEOUT)
    try:
        assert manager.kernel_spec is not None
        assert manager.kernel_spec.interrupt_mode == "signal"
        return _interrupt_sleep(manager, client, [])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)


@pytest.mark.kernel
@pytest.mark.slow
async def test_sigint_interrupts_too(installed_kernel: str) -> None:
    spec_file = Path(_InstalledKernel.directory) / "kernels" / installed_kernel / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["interrupt_mode"] = "signal"
    spec_file.write_text(json.dumps(spec))
    with trio.fail_after(TIMEOUT * 2):
        reply = await trio.to_thread.run_sync(_interrupt_by_signal, installed_kernel)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"


@pytest.mark.kernel
@pytest.mark.slow
async def test_every_message_matches_the_message_spec(installed_kernel: str) -> None:
    with trio.fail_after(TIMEOUT * 4):
        messages = await trio.to_thread.run_sync(_drive, installed_kernel)
    kinds = {m["msg_type"] for m in messages}
    for kind in (
        "status",
        "execute_input",
        "stream",
        "display_data",
        "clear_output",
        "execute_result",
        "error",
        "execute_reply",
        "input_request",
        "complete_reply",
        "inspect_reply",
        "is_complete_reply",
        "history_reply",
        "comm_info_reply",
        "kernel_info_reply",
    ):
        assert kind in kinds
    for message in messages:
        if message["msg_type"] == "input_request":
            # msgspec_v5 types ``password`` as a number, but the protocol (and ipykernel)
            # sends a boolean: check that, then validate the rest with the schema.
            assert isinstance(message["content"]["password"], bool)
            content = {**message["content"], "password": int(message["content"]["password"])}
            message = {**message, "content": content}
        validate_message(message)
    replies = [m for m in messages if m["msg_type"] == "execute_reply"]
    ok = [r["content"] for r in replies if r["content"]["status"] == "ok"]
    assert ok[0]["user_expressions"]["double"]["data"] == {"text/plain": "4"}
    assert ok[0]["user_expressions"]["bad"]["ename"] == "NameError"
    assert {r["content"].get("ename") for r in replies} >= {
        "ZeroDivisionError",
        "NameError",
        "ValueError",
        "OverflowError",
        "SyntaxError",
    }
    streams = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
    assert "hi ada\n" in streams
    assert "2 'apples'\n" not in streams and "2 apples\n" in streams


# -- the calculator language, without a kernel ---------------------------------------------


class RecordingIO:
    def __init__(self, answers: list[str] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.answers = answers or []

    async def write(self, stream: str, text: str) -> None:
        self.events.append((stream, text))

    async def display(self, data: dict[str, str]) -> None:
        self.events.append(("display", data))

    async def clear(self) -> None:
        self.events.append(("clear", None))

    async def input(self, prompt: str) -> str:
        self.events.append(("input", prompt))
        return self.answers.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))

    def page(self, text: str) -> None:
        self.events.append(("page", text))


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("1 + 2 * 3", 7),
        ("2 ** 10", 1024),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("-3 + +1", -2),
        ("x = 4\nx * x", 16),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("max(1, 5, 3)", 5),
        ("round(2.567, 2)", 2.57),
        ("sqrt(16)", 4.0),
        ('"a" + "b"', "ab"),
        ('number("12") + 1', 13),
        ("x = 1", None),
    ],
)
async def test_calculator_values(code: str, value: Any) -> None:
    assert await calc.Interpreter().run(code, RecordingIO()) == value


@pytest.mark.parametrize(
    ("code", "ename"),
    [
        ("1 / 0", "ZeroDivisionError"),
        ("nope", "NameError"),
        ("sqrt(-1)", "ValueError"),
        ("9 ** 100000", "OverflowError"),
        ('"a" * 10000000', "MemoryError"),
        ('"a" + 1', "TypeError"),
        ("sqrt", "TypeError"),
        ("sqrt(1, 2)", "TypeError"),
        ("import os", "SyntaxError"),
        ("__import__('os')", "NameError"),
        ("(1).real", "SyntaxError"),
        ("[1, 2]", "SyntaxError"),
        ("x = y = 1", "SyntaxError"),
        ("pi = 3", "NameError"),
        ("max(*[1])", "SyntaxError"),
        ("1 +", "SyntaxError"),
        ("True", "SyntaxError"),
    ],
)
async def test_calculator_errors(code: str, ename: str) -> None:
    with pytest.raises(calc.CalcError) as caught:
        await calc.Interpreter().run(code, RecordingIO())
    assert caught.value.ename == ename
    assert caught.value.traceback[-1].endswith(f"{ename}: {caught.value.evalue}")


async def test_calculator_io() -> None:
    io = RecordingIO(answers=["ada"])
    interpreter = calc.Interpreter()
    code = 'print("x", 1)\neprint("e")\ndisplay(2)\nclear()\nn = input("who? ")\nsleep(0.5)\nhelp()'
    assert await interpreter.run(code, io) is None
    assert interpreter.variables["n"] == "ada"
    kinds = [kind for kind, _ in io.events]
    assert kinds == ["stdout", "stderr", "display", "clear", "input", "sleep", "page"]
    assert io.events[0] == ("stdout", "x 1\n")
    assert io.events[2] == ("display", {"text/plain": "2", "text/latex": "$2$"})
    assert "sqrt(x)" in io.events[-1][1]


def test_calculator_is_complete_and_completion() -> None:
    assert calc.is_complete("1 + 2") == ("complete", "")
    assert calc.is_complete("(1 +")[0] == "incomplete"
    assert calc.is_complete("1 +* 2")[0] == "invalid"
    assert calc.is_complete("import os")[0] == "invalid"
    assert calc.token_at("x = sq", 6) == ("sq", 4)
    assert calc.word_at("sqrt(2)", 2) == "sqrt"


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_our_launcher_and_client_with_encryption(
    installed_kernel: str, transport: Literal["tcp", "ipc"]
) -> None:
    """trio-enchannel on both ends: our launcher and client, our kernel side, CurveZMQ on."""
    from trio_enchannel._io._zmq import has_curve
    from trio_enchannel._launch._open import open_kernel

    if not has_curve():
        pytest.skip("libzmq without CurveZMQ")
    kernels = Path(_InstalledKernel.directory) / "kernels"
    with trio.fail_after(TIMEOUT * 2):
        async with open_kernel(
            installed_kernel,
            kernel_dirs=[kernels],
            encryption="required",
            transport=transport,
            startup_timeout=8,
            client_options={"stdin": lambda request: "21"},
        ) as kernel:
            assert kernel.client is not None
            result = await kernel.client.execute('n = number(input("n? "))\nprint(n * 2)\nn')
            assert result.status == "ok"
            assert result.stdout == "42\n"
            assert result.outputs[-1]["data"] == {"text/plain": "21"}
            info = await kernel.client.kernel_info()
            assert info.reply.content["implementation"] == "trio_calc"


# -- command-line arguments the kernel does not know -----------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["script.calc"],
        ["--unknown-flag"],
        ["--Session.key=b''", "-x", "value", "a b"],
    ],
)
def test_unknown_arguments_are_ignored(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = _load("trio_calc_kernel")
    assert kernel.parse_args(["-f", "conn.json", *extra]) == "conn.json"
    assert kernel.parse_args([*extra, "--connection-file=conn.json"]) == "conn.json"
    warnings = capsys.readouterr().err
    assert ("ignoring unknown arguments" in warnings) == bool(extra)


def test_the_connection_file_is_still_required(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = _load("trio_calc_kernel")
    with pytest.raises(SystemExit) as exit_info:
        kernel.parse_args(["script.calc"])
    assert exit_info.value.code == 2
    assert "--connection-file" in capsys.readouterr().err


@pytest.mark.kernel
@pytest.mark.slow
async def test_jupyter_run_passes_the_script_name(installed_kernel: str, tmp_path: Path) -> None:
    # ``jupyter run --kernel=NAME FILE`` appends FILE to the kernel's command line.
    script = tmp_path / "script.calc"
    script.write_text("print(6 * 7)\n")
    command = [
        sys.executable,
        "-c",
        "from jupyter_client.runapp import main; main()",
        f"--kernel={installed_kernel}",
        str(script),
    ]
    with trio.fail_after(TIMEOUT * 2):
        done = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path
        )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    assert "42" in done.stdout.decode(), output


# -- two clients of one jupyter_client manager ------------------------------------------------


def _second_client_of_the_manager(kernel_name: str) -> dict[str, Any]:
    """start_new_kernel's client, then ``manager.client()``: both copy the manager's session,
    whose id is the routing identity of their sockets. Returns the second client's reply."""
    from jupyter_client.manager import start_new_kernel

    manager, first = start_new_kernel(kernel_name=kernel_name, startup_timeout=TIMEOUT)
    second = manager.client()
    try:
        assert second.session.bsession == first.session.bsession  # the sockets' identity
        first.execute_interactive("x = 6", timeout=TIMEOUT)
        second.start_channels()
        second.wait_for_ready(timeout=TIMEOUT)
        outputs: list[dict[str, Any]] = []
        reply: dict[str, Any] = second.execute_interactive(
            "print(x * 7)", timeout=TIMEOUT, output_hook=outputs.append
        )
        reply["streams"] = [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"]
        return reply
    finally:
        second.stop_channels()
        first.stop_channels()
        manager.shutdown_kernel(now=False)


@pytest.mark.kernel
@pytest.mark.slow
async def test_a_second_client_of_the_manager_gets_replies(installed_kernel: str) -> None:
    with trio.fail_after(TIMEOUT * 3):
        reply = await trio.to_thread.run_sync(_second_client_of_the_manager, installed_kernel)
    assert reply["content"]["status"] == "ok"
    assert reply["streams"] == ["42\n"]


# -- the kernel's parent dies -----------------------------------------------------------------

_PARENT = """
import os, subprocess, sys
kernel = subprocess.Popen(
    [sys.executable, sys.argv[1], "-f", sys.argv[2]],
    env={**os.environ, "JPY_PARENT_PID": str(os.getpid())},
)
print(kernel.pid, flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.kernel
@pytest.mark.slow
async def test_the_kernel_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """jupyter_client tells a kernel its parent's pid (``JPY_PARENT_PID``); like ipykernel, the
    example kernel exits when that process dies, so a frontend killed outright (SIGKILL)
    leaves no orphaned kernel behind."""
    import psutil

    from trio_enchannel import ConnectionInfo, open_client, write_connection_file

    info = ConnectionInfo.allocate()
    connection_file = write_connection_file(info, tmp_path / "kernel.json")
    kernel_script = str(EXAMPLE / "trio_calc_kernel.py")
    command = [sys.executable, "-c", _PARENT, kernel_script, str(connection_file)]
    kernel: psutil.Process | None = None
    async with trio.open_nursery() as nursery:
        parent: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        try:
            with trio.fail_after(TIMEOUT):
                assert parent.stdout is not None
                line = b""
                while not line.endswith(b"\n"):
                    chunk = await parent.stdout.receive_some()
                    if not chunk:
                        pytest.fail("the parent exited before starting the kernel")
                    line += chunk
                kernel = psutil.Process(int(line))
                async with open_client(info) as client:
                    await client.wait_ready()  # it runs, watching its parent
                parent.kill()
            try:
                # It exits by itself (a bounded wait: psutil cannot be cancelled).
                await trio.to_thread.run_sync(kernel.wait, TIMEOUT)
            except psutil.TimeoutExpired:
                pytest.fail(f"the kernel outlived its parent by {TIMEOUT} s")
        finally:
            parent.kill()
            if kernel is not None and kernel.is_running():
                kernel.kill()
