"""A JupyterLab server for one browser test, and the few page actions the tests share.

Each server gets a free port, a random token and its own Jupyter config, data, runtime,
settings and workspaces directories (and IPython directory), so tests never share saved
layouts, trusted-notebook keys or kernels with each other or with the user's own Jupyter.
It is stopped by its PID. `window.jupyterapp` is exposed (as JupyterLab's own Playwright
tests do) only to *wait* on the app's state: a cell's execution, the kernel's status;
every action goes through the page as a person would do it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# JupyterLab asks on first start whether to fetch Jupyter news; answer it in the settings.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
START_TIMEOUT = 60  # s; a cold start on 2 busy cores takes ~4 s


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def page_url(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_dirs(state: Path) -> dict[str, str]:
    for rel, settings in USER_SETTINGS.items():
        path = state / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return {
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
    }


@contextmanager
def jupyter_lab(directory: Path, state: Path, *, cwd: Path | None = None):
    """`jupyter lab DIRECTORY` (as the README says), run from `cwd`, until the block ends."""
    state.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **_private_dirs(state), "PATH": os.pathsep.join([str(BIN), os.environ["PATH"]])}
    cmd = [
        str(BIN / "jupyter"),
        "lab",
        str(directory),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # fail rather than serve on a port the test does not know
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = state / "jupyter-lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        _wait_until_serving(lab)
        yield lab
    finally:
        _stop(process)


def _wait_until_serving(lab: Lab) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(lab.page_url("api/status"), timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT} s:\n{lab.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; SIGKILL if it does not within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
