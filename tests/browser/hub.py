"""A JupyterHub with one course, made from deploy/jupyterhub/ as README's "A course on
JupyterHub" says, for tests/browser/test_jupyterhub_class.py; everything it makes is undone
when the block ends, on failure too.

Made, in this order (and undone in the reverse one): Unix accounts for an instructor and two
students (`useradd -m -K HOME_MODE=0700`, passwords by `chpasswd`), a folder under /srv with
the shared exchange (mode 1777), the students' environment and the global nbgrader config, the
course directory (`llmlabs course init`, as the instructor), and the hub (with its
configurable-http-proxy and the servers it spawns) on free ports. Left-over processes of the
accounts are ended by PID before the accounts are deleted.

Both environments are venvs on a Python the accounts may run (this one may live in root's home)
with this environment's libraries (torch, JupyterLab, nbgrader, jupyterhub...) rather than
downloading them again: the instructors' holds hard-linked copies of them and llm-labs (this
clone, installed editable; the grading sandbox binds its prefix back, so the libraries must be
inside it); the students' reaches them through a .pth file and has the student wheel installed,
as the README says.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "jupyterhub"
BIN = Path(sys.executable).parent
PREFIX = Path(sys.prefix)
COURSE_ID = "ml101"  # as deploy/jupyterhub/courses.toml
START_TIMEOUT = 90  # s


def skip_reason() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: the hub spawns each user's server as their own Unix account"
    for tool in ("useradd", "userdel", "chpasswd", "runuser"):
        if not shutil.which(tool):
            return f"no {tool} on this machine"
    if not shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy is not installed (npm install -g configurable-http-proxy)"
    if not (BIN / "jupyterhub").exists():
        return "jupyterhub is not installed (pip install -e '.[dev]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 300)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def as_user(user: str, *cmd, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """CMD as USER (runuser: their uid and groups), in their home directory."""
    kw.setdefault("cwd", f"/home/{user}")  # not the clone: `python -c` would import its graders/
    full = ["runuser", "-u", user, "--", "env", f"HOME=/home/{user}", "HF_HUB_OFFLINE=1", *cmd]
    if check:
        return run(full, **kw)
    kw.setdefault("timeout", 300)
    return subprocess.run([str(c) for c in full], capture_output=True, text=True, **kw)


@dataclass
class Account:
    name: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def home(self) -> Path:
        return Path("/home") / self.name


@dataclass
class Hub:
    url: str
    process: subprocess.Popen
    log: Path
    srv: Path
    instructor: Account
    students: list[Account]
    instructor_env: Path
    student_env: Path

    @property
    def exchange(self) -> Path:
        return self.srv / "exchange"

    @property
    def course(self) -> Path:
        return self.instructor.home / COURSE_ID

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _add_account(account: Account) -> None:
    run(["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash", account.name])
    run(["chpasswd"], input=f"{account.name}:{account.password}\n")
    # JupyterLab asks on first start whether to fetch Jupyter news: answered, as tests.browser.lab does.
    settings = account.home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    as_user(account.name, "mkdir", "-p", settings)
    as_user(
        account.name,
        "sh",
        "-c",
        f"cat > {settings}/notification.jupyterlab-settings",
        input=json.dumps({"fetchNews": "false", "checkForUpdates": False}),
    )


def _remove_account(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True)
    shutil.rmtree(f"/home/{name}", ignore_errors=True)


def _end_processes_of(names: list[str]) -> None:
    """SIGTERM, then SIGKILL, every process still running as one of these accounts (by PID)."""
    import psutil

    uids = set()
    for name in names:
        try:
            uids.add(int(run(["id", "-u", name]).stdout))
        except RuntimeError:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids]
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)


class HubUnavailable(Exception):
    """This machine cannot run the hub test; the message says why."""


def _runs_for_others(python: Path) -> bool:
    """PYTHON runs for another account, with this environment's libraries (a copy of them will)."""
    probe = f"import sys; sys.path.insert(0, {sysconfig.get_path('purelib')!r}); import jupyterhub, nbgrader"
    proc = subprocess.run(["runuser", "-u", "nobody", "--", str(python), "-c", probe], capture_output=True)
    return proc.returncode == 0


def python_for_accounts(folder: Path) -> Path:
    """This Python, for the hub's accounts. Where they cannot run it (pyenv's in root's home),
    a copy of its installation in FOLDER: hard links, but for the interpreter itself, whose
    library path (RUNPATH) is rewritten to its own folder's lib/. The pinned libraries need
    this patch release (soupsieve: Python >= 3.11.5), so the system's Python may not do."""
    python = Path(sys.executable).resolve()
    if _runs_for_others(python):
        return python
    base = Path(sys.base_prefix).resolve()
    if not python.is_relative_to(base):
        raise HubUnavailable(f"{python} is not inside {base}; other accounts cannot run it")
    # Hard links of the installation, less its own site-packages (a venv does not use them).
    own_site = Path(sysconfig.get_path("purelib", vars={"base": str(base)}))
    folder.mkdir(mode=0o755)
    todo = [base]
    while todo:
        src = todo.pop()
        for item in src.iterdir():
            if own_site.is_relative_to(item) and item != own_site:
                (folder / item.relative_to(base)).mkdir(mode=0o755)
                todo.append(item)
            elif item != own_site:
                run(["cp", "-al", item, folder / item.relative_to(base)])
    os.chmod(folder, 0o755)
    copy = folder / python.relative_to(base)
    data = python.read_bytes()
    old = f"{base}/lib".encode()
    if data.count(old + b"\0") == 1:  # the RUNPATH of a shared-library build
        data = data.replace(old + b"\0", b"$ORIGIN/../lib".ljust(len(old), b"\0") + b"\0")
    copy.unlink()
    copy.write_bytes(data)
    copy.chmod(0o755)
    if not _runs_for_others(copy):
        raise HubUnavailable(
            f"other accounts cannot run {python} with this environment's libraries "
            f"({sysconfig.get_path('purelib')}), nor a copy of the interpreter: put the clone where "
            "other accounts can read it (not in root's home)"
        )
    return copy


def make_env(env: Path, python: Path, *, wheel: Path | None = None) -> Path:
    """A venv on PYTHON with this environment's libraries and its console scripts. The
    instructors' (no WHEEL): hard-linked copies of the libraries (seconds, no disk) and llm-labs
    (the editable install of this clone). The students': WHEEL installed, as pip would."""
    run([python, "-m", "venv", "--without-pip", env])
    env_python = env / "bin" / "python"
    purelib = Path(
        run([env_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    if wheel is None:
        purelib.rmdir()
        run(["cp", "-al", sysconfig.get_path("purelib"), purelib])
    else:
        # The libraries through a .pth (as tests/test_student_env.py: the editable install's own
        # .pth is not processed there, so `graders` is the wheel's), then the wheel.
        (purelib / "_libraries.pth").write_text(sysconfig.get_path("purelib") + "\n")
        run([env_python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile", wheel])
    for script in sorted(BIN.iterdir()):
        target = env / "bin" / script.name
        if target.exists() or not script.is_file() or script.is_symlink():
            continue
        head = script.read_bytes()[:200]
        if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
            text = script.read_text()
            target.write_text(f"#!{env_python}\n" + text.split("\n", 1)[1])
            target.chmod(0o755)
    for part in ("share/jupyter", "etc/jupyter"):
        (env / part).parent.mkdir(parents=True, exist_ok=True)
        run(["cp", "-al", PREFIX / part, env / part])
    os.chmod(env, 0o755)  # the copies keep their files' modes (a chmod would change the originals')
    return env


def _timed(what: str, fn, *args) -> None:
    started = time.monotonic()
    try:
        fn(*args)
    finally:
        print(f"hub test clean-up: {what} {time.monotonic() - started:.1f} s")


def _stop(process: subprocess.Popen, seconds: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the hub stops the servers it spawned and its proxy
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _stop_proxy(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


@contextmanager
def course_hub(state: Path, wheel: Path, *, server_args: list[str] = ()):
    """The hub of deploy/jupyterhub/ with one course, ml101 (linear_algebra), until the block ends."""
    if not os.path.isdir("/srv"):
        raise HubUnavailable("no /srv folder (the exchange and the environments go there, as in README)")
    if os.stat("/srv").st_dev != os.stat(sysconfig.get_path("purelib")).st_dev:
        raise HubUnavailable(
            "the instructors' environment is made of hard links to this one's libraries: "
            f"/srv and {sysconfig.get_path('purelib')} must be on one file system"
        )
    tag = secrets.token_hex(3)
    instructor = Account(f"lt{tag}i")
    students = [Account(f"lt{tag}s1"), Account(f"lt{tag}s2")]
    accounts = [instructor, *students]
    srv = Path("/srv") / f"llmlabs-hub-test-{tag}"
    state.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for account in accounts:
            stack.callback(_timed, f"account {account.name}", _remove_account, account.name)
            _add_account(account)
        stack.callback(_timed, "left-over processes", _end_processes_of, [a.name for a in accounts])

        stack.callback(_timed, str(srv), subprocess.run, ["rm", "-rf", str(srv)])
        srv.mkdir(mode=0o755)
        os.chmod(srv, 0o755)
        (srv / "exchange").mkdir()
        os.chmod(srv / "exchange", 0o1777)  # as README: everyone writes, the sticky bit keeps files theirs
        (srv / "jupyter").mkdir()
        for config in ("nbgrader_config.py", "jupyter_server_config.py"):
            shutil.copyfile(DEPLOY / config, srv / "jupyter" / config)
            os.chmod(srv / "jupyter" / config, 0o644)
        python = python_for_accounts(srv / "python")
        instructor_env = make_env(srv / "instructor-env", python)
        student_env = make_env(srv / "student-env", python, wheel=wheel)

        courses = state / "courses.toml"
        courses.write_text(
            f'instructor_env = "{instructor_env}"\n'
            f'student_env = "{student_env}"\n'
            f'exchange = "{srv / "exchange"}"\n'
            f'jupyter_config_dir = "{srv / "jupyter"}"\n'
            f"[courses.{COURSE_ID}]\n"
            f'instructor = "{instructor.name}"\n'
            f"students = {[s.name for s in students]!r}\n".replace("'", '"')
        )

        # The instructor's nbgrader config and course directory, made as the instructor.
        as_user(
            instructor.name,
            "install",
            "-D",
            DEPLOY / "instructor_nbgrader_config.py",
            instructor.home / ".jupyter" / "nbgrader_config.py",
        )
        as_user(
            instructor.name,
            instructor_env / "bin" / "llmlabs",
            "course",
            "init",
            instructor.home / COURSE_ID,
            "--course-id",
            COURSE_ID,
            "--units",
            "linear_algebra",
            "--exchange",
            srv / "exchange",
        )

        port, hub_port, api_port = free_port(), free_port(), free_port()
        cmd = [
            BIN / "jupyterhub",
            "-f",
            DEPLOY / "jupyterhub_config.py",
            f"--JupyterHub.bind_url=http://127.0.0.1:{port}",
            f"--JupyterHub.hub_port={hub_port}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}",
            f"--JupyterHub.db_url=sqlite:///{state / 'jupyterhub.sqlite'}",
            f"--JupyterHub.cookie_secret_file={state / 'jupyterhub_cookie_secret'}",
            f"--ConfigurableHTTPProxy.pid_file={state / 'proxy.pid'}",
        ]
        if server_args:
            cmd.append(f"--Spawner.args={list(server_args)!r}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
        env.update(
            HUB_COURSES=str(courses), PATH=os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")])
        )
        log = state / "jupyterhub.log"
        stack.callback(_stop_proxy, state / "proxy.pid")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(c) for c in cmd], cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        stack.callback(_timed, "the hub", _stop, process)
        hub = Hub(
            f"http://127.0.0.1:{port}", process, log, srv, instructor, students, instructor_env, student_env
        )
        _wait_until_serving(hub)
        yield hub


def _wait_until_serving(hub: Hub) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"jupyterhub exited with {hub.process.returncode}:\n{hub.log_tail()}")
        try:
            with urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyterhub did not answer within {START_TIMEOUT} s:\n{hub.log_tail()}")
