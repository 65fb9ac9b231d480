"""`reproml serve`: run a release with Seldon Core's `seldon-core-microservice`, on loopback by default.

seldon-core 1.17.1 binds its REST and metrics servers to 0.0.0.0 (hard-coded in
`seldon_core/microservice.py`) and its gRPC server too. The way around it without patching Seldon is
gunicorn's socket inheritance: this module binds the two listening sockets itself, on the host asked
for, and hands them over. The REST server, which gunicorn runs in the microservice's own process, takes
fd 3 by systemd socket activation (`LISTEN_FDS`/`LISTEN_PID`); the metrics server, a child process,
takes fd 4 through gunicorn's re-exec handover (`GUNICORN_FD`). gRPC is off (`--grpc-workers 0`).
The microservice runs in its own process group, so stopping it stops every child with it.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from reproml.errors import NotFound, ReproError
from reproml.serving import deployed

MODEL_CLASS = "reproml.serving.model.SegmentationModel"
# Concurrency of the REST server (Seldon Core's GUNICORN_WORKERS and GUNICORN_THREADS). Seldon's default,
# one worker with one thread, lets a single client that sends headers and no body hold the whole server.
# With threads, gunicorn runs its `gthread` worker: a stalled client holds one thread (for at most the
# model's body_timeout_s, see `SegmentationModel`), and the other threads keep answering. TensorFlow
# releases the GIL while it computes, so threads of one worker share one copy of the model; each extra
# worker loads another.
DEFAULT_WORKERS = 1
DEFAULT_THREADS = 16
SERVING_VENV = Path(__file__).resolve().parents[2] / ".venv-serving"
_FOLDER_PREFIX = "reproml-serve-"  # + commit[:8]-random: the release laid out for a server
_OWNER_FILE = ".reproml-serve-owner"  # in that folder: "<host> <pid>" of the process that laid it out
_SELDON_TYPES = {bool: "BOOL", int: "INT", float: "FLOAT", str: "STRING"}  # Seldon's parameter types
_HIGH_FD = 10  # sockets are moved above the fds that the handover targets (3 and 4)
_PARENT_ENV = "REPROML_SERVE_PARENT_PID"  # set when the microservice must end with the process that started it


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ReproError(f"cannot listen on {host}:{port} ({error.strerror})",
                         "choose another port with --port, or stop what is using it") from None
    sock.listen(2048)
    return sock


def find_release(store, release_ref: str) -> str:
    """The release commit to serve: a commit given by id must be a release; a branch gives its newest release."""
    from reproml.pfs import parse_ref
    from reproml.serving.release import RELEASE_FILE, find_current_release

    parsed = parse_ref(release_ref)
    if store.has_repo(parsed.repo) and store.branch_head(parsed.repo, parsed.ref.partition("^")[0]) is None:
        commit = store.inspect_commit(release_ref)
        record = json.loads(store.read_file(commit, RELEASE_FILE))
        if not record.get("released"):
            raise ReproError(f"{release_ref} did not release its model: {record.get('reason')}",
                             f"see `reproml list commit {parsed.repo}` for the releases")
        return commit.id
    current = find_current_release(release_ref, store)
    if current is None:
        raise NotFound(f"nothing is released in {release_ref}",
                       "run the pipeline (`reproml run`) until the release gate passes a model")
    return current.commit


class Server:
    """A running `seldon-core-microservice` serving one release of the local store.

    Args:
        release_ref: the release, e.g. `release@master` (its newest release) or `release@<commit>`.
        port: the REST port.
        host: the address to listen on; loopback unless asked otherwise.
        store: a `reproml.pfs.Store`; the default store when None.
        metrics_port: the Prometheus metrics port (0: any free port).
        workers: gunicorn workers (each loads the model).
        threads: threads per worker, each answering one request at a time.
        model_parameters: more `SegmentationModel` arguments (e.g. `body_timeout_s`), passed as Seldon
            parameters.
        die_with_parent: stop the microservice (SIGTERM, its graceful stop) when this process ends, even
            by SIGKILL (Linux only). `reproml serve` sets it; the server then also ends with the thread
            that started it, so a caller that starts it from a short-lived thread leaves it False.
        log: a file for the server's output; the terminal when None.
        venv: the serving environment.
    """

    def __init__(self, release_ref: str = "release@master", port: int = 9000, host: str = "127.0.0.1",
                 store=None, metrics_port: int = 0, workers: int = DEFAULT_WORKERS, threads: int = DEFAULT_THREADS,
                 log: Path | None = None, venv: Path = SERVING_VENV, model_parameters: dict | None = None,
                 die_with_parent: bool = False):
        from reproml.pfs import Store

        self.store = store if store is not None else Store.open()
        self.release_ref, self.host, self.port, self.workers = release_ref, host, port, workers
        self.threads = threads
        self.model_parameters = dict(model_parameters or {})
        self.die_with_parent = die_with_parent
        self.metrics_port, self.log, self.venv = metrics_port, log, Path(venv)
        self.process: subprocess.Popen | None = None
        self.folder: Path | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Server:
        """Lay the release out, bind the sockets and start the microservice (returns at once)."""
        executable = self.venv / "bin" / "seldon-core-microservice"
        if not executable.exists():
            raise ReproError(f"the serving environment {self.venv} has no seldon-core-microservice",
                             "create it with `make serving-env`")
        self.commit = find_release(self.store, self.release_ref)
        temporary = Path(tempfile.gettempdir())
        remove_orphaned_folders(temporary)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{self.commit[:8]}-", dir=temporary))
        (self.folder / _OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        self.store.materialize(f"{self.release_ref.partition('@')[0]}@{self.commit}", self.folder)
        rest, metrics = _listen(self.host, self.port), _listen(self.host, self.metrics_port)
        self.port, self.metrics_port = rest.getsockname()[1], metrics.getsockname()[1]
        fds = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, _HIGH_FD) for s in (rest, metrics)]
        parameters = [{"name": "model_dir", "type": "STRING", "value": str(self.folder)},
                      {"name": "release_commit", "type": "STRING", "value": self.commit},
                      {"name": "store", "type": "STRING", "value": str(self.store.root)}]
        parameters += [{"name": name, "type": _SELDON_TYPES[type(value)], "value": str(value)}
                       for name, value in self.model_parameters.items()]
        command = [str(self.venv / "bin" / "python"), "-m", "reproml.serving.server", *map(str, fds), str(executable),
                   MODEL_CLASS, "--service-type", "MODEL", "--http-port", str(self.port),
                   "--metrics-port", str(self.metrics_port), "--grpc-workers", "0",
                   "--workers", str(self.workers), "--threads", str(self.threads),
                   "--parameters", json.dumps(parameters)]
        env = {**os.environ, "REPROML_STORE": str(self.store.root), "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONUNBUFFERED": "1"}
        if self.die_with_parent:
            env[_PARENT_ENV] = str(os.getpid())
        output = open(self.log, "ab") if self.log else None  # noqa: SIM115 - the child keeps writing to it
        try:
            self.process = subprocess.Popen(command, pass_fds=fds, env=env, start_new_session=True,
                                            stdout=output, stderr=subprocess.STDOUT if output else None)
        finally:
            for fd in fds:
                os.close(fd)
            rest.close()
            metrics.close()
            if output:
                output.close()
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Block until /health/status answers 200 (the model is loaded and answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ReproError(f"the model server exited with status {self.process.returncode} before it "
                                 "was ready", f"read its output{f' in {self.log}' if self.log else ''}")
            try:
                with urllib.request.urlopen(self.url + "/health/status", timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, http.client.HTTPException):  # not listening yet, or loading: try again
                pass
            time.sleep(0.25)
        self.stop()
        raise ReproError(f"the model server was not ready after {timeout:.0f} s", "read its output")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the microservice and every process it started (SIGTERM to its group, then SIGKILL)."""
        code = None
        if self.process is not None:
            code = _stop_group(self.process, timeout)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        return code

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def remove_orphaned_folders(root: Path) -> list[Path]:
    """Remove the release copies in root whose server's process is gone; returns them.

    A `reproml serve` killed without a chance to stop (SIGKILL, the OOM killer) leaves its copy of the
    release behind; the next server started removes it. Each copy names its owner's host and pid: a copy
    from another host (a container sharing /tmp, whose pids are not ours) is left alone.
    """
    removed = []
    for owner_file in root.glob(f"{_FOLDER_PREFIX}*/{_OWNER_FILE}"):
        folder = owner_file.parent
        try:
            host, pid = owner_file.read_text().split()
            owner = int(pid)
        except (OSError, ValueError):
            continue  # not written by this module, or being written
        if host == socket.gethostname() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)  # another user's copy stays: /tmp is sticky
            if not folder.exists():
                removed.append(folder)
    return removed


def _alive(pid: int, group: bool = False) -> bool:
    """Whether the process (or, with group, any process of the group) pid exists."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _stop_group(process: subprocess.Popen, timeout: float) -> int:
    # The leader first: gunicorn's arbiter stops its workers and Seldon's process stops its metrics server
    # and metrics manager in order. Then whatever is left of the group, then SIGKILL.
    pgid = process.pid  # start_new_session made the microservice the leader of its own group
    steps = ((lambda sig: os.kill(pgid, sig), signal.SIGTERM), (lambda sig: os.killpg(pgid, sig), signal.SIGTERM),
             (lambda sig: os.killpg(pgid, sig), signal.SIGKILL))
    for send, sig in steps:
        try:
            send(sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout / 2
        while time.monotonic() < deadline:
            if process.poll() is not None and not _alive(pgid, group=True):
                return process.returncode
            time.sleep(0.1)
    process.wait()
    return process.returncode


def serve(release_ref: str | None = None, port: int = 9000, host: str = "127.0.0.1", store=None,
          say: Callable[[str], None] = lambda line: None) -> int:
    """Put a release into service (`reproml.serving.deployed`) and serve it until Ctrl-C or SIGTERM.

    Then stop the server and all its processes.

    Args:
        release_ref: `release@<commit>`, or None for the newest release on `release@master`.
        port: the REST port (POST /api/v1.0/predictions, /api/v1.0/feedback; GET /health/status).
        host: the listening address; 127.0.0.1 unless asked otherwise (0.0.0.0 exposes it).
        store: a `reproml.pfs.Store`; the default store when None.
        say: receives the lines a person watching wants (where it serves, what was put into service).

    Returns:
        The microservice's exit status.
    """
    server = Server(release_ref or "release@master", port=port, host=host, store=store, die_with_parent=True).start()
    stop = {"asked": False}

    def on_signal(signum, frame):
        stop["asked"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    say(f"serving {server.commit} on {server.url} (metrics on port {server.metrics_port}); Ctrl-C stops")
    try:
        server.wait_ready()
        # Answering is what puts a release into service locally: the next release is gated against it.
        recorded = deployed.put_in_service(server.store, server.commit, server.release_ref.partition("@")[0])
        if recorded:
            say(f"in service: recorded as deployed@{recorded}")
        while not stop["asked"] and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        code = server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop["asked"] else (code or 0)


def _handover(argv: list[str]) -> None:
    """In the serving environment: put the two sockets on fds 3 and 4, then exec the microservice.

    `exec` keeps the process id, so `LISTEN_PID` names the process whose gunicorn arbiter reads it.
    """
    rest, metrics, *command = argv
    parent = os.environ.pop(_PARENT_ENV, "")
    if parent:  # `reproml serve` may be killed without a chance to stop us: then SIGTERM stops gunicorn
        from reproml.stage.lifeline import signal_on_parent_death

        signal_on_parent_death(signal.SIGTERM)
        if os.getppid() != int(parent):  # it ended before the request took effect
            sys.exit(0)
    os.dup2(int(rest), 3)
    os.dup2(int(metrics), 4)
    os.close(int(rest))
    os.close(int(metrics))
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), GUNICORN_FD="4", GUNICORN_PID=str(os.getpid()))
    os.execv(command[0], command)


if __name__ == "__main__":
    _handover(sys.argv[1:])
