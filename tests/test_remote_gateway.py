"""Kernels through Jupyter Enterprise Gateway (local process proxy), started on loopback.

Enterprise Gateway 3.x pins ``jupyter_server<2``, ``jupyter_client<7`` and ``pyzmq<25``, so it
cannot live in the development environment (jupyter_server 2, jupyter_client 8). It runs from
its own virtual environment instead, found in this order:

* the ``TRIO_ENCHANNEL_GATEWAY`` environment variable (path of ``jupyter-enterprisegateway``);
* ``.venv-gateway/bin/jupyter-enterprisegateway`` at the repository root, made with
  ``python -m venv .venv-gateway && .venv-gateway/bin/pip install
  "jupyter-enterprise-gateway>=3.2" "ipykernel<7"``;
* ``jupyter-enterprisegateway`` on ``PATH``, if it actually runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from trio_enchannel._wire._framing import V1_SUBPROTOCOL

pytest.importorskip("trio_websocket", reason="the remote extra")
pytest.importorskip("httpx", reason="the remote extra")
pytest.importorskip("jupyter_server", reason="starts a Jupyter Server")

from trio_enchannel._remote._kernel import open_remote_kernel
from trio_enchannel._remote._rest import open_remote_server
from trio_enchannel.testing._jupyter_server import LocalServer, start_local_server, wait_until_ready

pytestmark = [pytest.mark.remote, pytest.mark.kernel]

_ROOT = Path(__file__).resolve().parent.parent
# Enterprise Gateway refuses to start kernels for "root" by default; gateways learn the user
# from the KERNEL_USERNAME variable of the start request.
_KERNEL_ENV = {"KERNEL_USERNAME": "trio-enchannel-tests"}


def _gateway_command() -> tuple[str | None, str]:
    """The gateway executable, or None and why none was usable."""
    candidates = []
    env = os.environ.get("TRIO_ENCHANNEL_GATEWAY")
    if env:
        candidates.append(env)
    candidates.append(str(_ROOT / ".venv-gateway" / "bin" / "jupyter-enterprisegateway"))
    on_path = shutil.which("jupyter-enterprisegateway")
    if on_path:
        candidates.append(on_path)
    problems = []
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            problems.append(f"{candidate}: not found")
            continue
        probe = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        last = (probe.stderr.strip().splitlines() or [""])[-1]
        if probe.returncode == 0 and not last.endswith("Error") and "Error:" not in last:
            return candidate, ""
        problems.append(f"{candidate}: does not run ({last})")
    return None, "; ".join(problems)


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalServer]:
    command, why = _gateway_command()
    if command is None:
        pytest.skip(f"no runnable Jupyter Enterprise Gateway: {why}")
    server = start_local_server(
        "enterprise_gateway",
        command=[command],
        extra_args=["--EnterpriseGatewayApp.list_kernels=True"],
    )
    try:
        trio.run(wait_until_ready, server, 60.0)
        yield server
    finally:
        server.stop()


async def test_kernel_through_enterprise_gateway(gateway: LocalServer) -> None:
    with trio.fail_after(120):
        async with open_remote_server(gateway.url, token=gateway.token) as rest:
            default, specs = await rest.kernel_specs()
            assert default in specs
            assert "python3" in specs
            async with open_remote_kernel(
                rest, "python3", env=_KERNEL_ENV, startup_timeout=90
            ) as kernel:
                # EG 3 runs on jupyter_server 1.x: the legacy framing.
                assert kernel.channels.subprotocol in (None, V1_SUBPROTOCOL)
                assert kernel.kernel_id in [k.id for k in await rest.list_kernels()]
                result = await kernel.client.execute("import os; print(6 * 7); 'gateway'")
                assert result.status == "ok"
                assert result.stdout == "42\n"
                assert result.data == {"text/plain": "'gateway'"}
                answer = await kernel.client.execute(
                    "print(input('? '))", stdin=lambda request: "through the gateway"
                )
                assert answer.stdout == "through the gateway\n"
                kernel_id = kernel.kernel_id
            assert kernel_id not in [k.id for k in await rest.list_kernels()]


async def test_gateway_refuses_a_wrong_token(gateway: LocalServer) -> None:
    from trio_enchannel._errors import RemoteAuthenticationError

    with trio.fail_after(30):
        async with open_remote_server(gateway.url, token="wrong") as rest:
            with pytest.raises(RemoteAuthenticationError) as info:
                await rest.list_kernels()
    assert info.value.status_code in (401, 403)
