"""Run a stage script in a process that has imported torch already: how dvc.yaml runs every stage.

    python stages/run.py features r01 r00     # runs stages/features.py r01 r00

Importing torch takes about 1.7 s on a 2-core CPU and several seconds on a GPU machine, and
`dvc repro` starts five stage processes a round. So the first stage run this way starts a warm
process (`--serve`), which imports the libraries every stage needs (PRELOAD) and waits. For each
stage it is asked to run it forks a child, which takes over the caller's working directory,
environment, arguments and standard streams (the file descriptors themselves: a terminal stays a
terminal) and runs the script as `python stages/<name>.py` would. This launcher waits for the
child and exits with its status, passing Ctrl-C and termination signals on to it.

Every child starts from the same state, so no stage sees what an earlier one did. The warm process
imports nothing of this project (each child imports iics/ and stages/ afresh, so edited code is
what runs), never initialises CUDA (a forked child could not use it otherwise) and exits after
IDLE_SECONDS without a stage to run. One serves each user, Python interpreter, interpreter options,
module search path and environment (see warm_address), since any of these can change what an
import does.

Where no warm process can be used (not Linux; IICS_WARM=0, for a debugger or profiler; or the
warm process failed to start, which is reported in one line), the script runs in this process.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

STAGES = Path(__file__).resolve().parent
IDLE_SECONDS = 20.0
PRELOAD = ("numpy", "torch", "pandas", "yaml", "tqdm", "PIL.Image")
PER_STAGE_VARIABLES = ("DVC_STAGE",)  # the one variable dvc repro sets differently for each stage
FORWARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                          if hasattr(signal, name))
USAGE = "usage: python stages/run.py STAGE [ARGUMENT ...] (STAGE: a script in stages/, without .py)"


class WarmProcessUnavailable(Exception):
    """No warm process could take the stage; it runs in this process instead."""


# --- running a script as `python <script>` would --------------------------------------------


def run_script(script: Path, argv: list[str]) -> int:
    """Run `script` as the main module with `argv`; its exit status, an uncaught exception or a
    SystemExit reported on stderr as the interpreter would (the traceback from the script's own
    frames on)."""
    sys.argv = argv
    sys.path[0] = str(script.parent)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_request:
        return _exit_status(exit_request.code)
    except BaseException as error:  # noqa: BLE001 - reported and turned into a status, as `python` does
        trace = error.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_filename != str(script):
            trace = trace.tb_next
        if trace is not None:
            error.with_traceback(trace)
        sys.excepthook(type(error), error, error.__traceback__)
        return 130 if isinstance(error, KeyboardInterrupt) else 1
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_with(status: int) -> None:
    """End this process as the stage ended: with its exit status, or killed by the same signal."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        status = 128 - status
    sys.exit(status)


# --- the caller's side ------------------------------------------------------------------------


def warm_address() -> str:
    """The abstract socket name of the warm process that can serve this interpreter: one for each
    user, Python, set of interpreter options, module search path, environment (the stage's name
    aside) and set of process limits, CPUs and priority (which children inherit from it)."""
    import resource  # Linux only, as the warm process is

    environment = sorted(_shared_environment().items())
    limits = [resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource)) if name.startswith("RLIMIT_")]
    identity = json.dumps([
        sys.executable, sys.version, subprocess._args_from_interpreter_flags(), sys.path[1:], environment,
        limits, sorted(os.sched_getaffinity(0)), os.getpriority(os.PRIO_PROCESS, 0),
        hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),  # an edited launcher starts a new one
    ])
    return f"\0iics-warm-{os.getuid()}-{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


def _shared_environment() -> dict[str, str]:
    """This process's environment but for what differs from stage to stage: what a warm process
    is started with, and what it and its callers are matched by."""
    return {k: v for k, v in os.environ.items() if k not in PER_STAGE_VARIABLES}


def _send(connection: socket.socket, message: dict, fds: list[int] = ()) -> None:
    payload = json.dumps(message).encode()
    socket.send_fds(connection, [struct.pack("!Q", len(payload))], list(fds))
    connection.sendall(payload)


def _receive(connection: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message and the file descriptors sent with it; (None, []) when the peer closed first."""
    header, fds, _, _ = socket.recv_fds(connection, 8, max_fds)
    header = _read_to(connection, 8, header) if header else None
    payload = _read_to(connection, struct.unpack("!Q", header)[0]) if header is not None else None
    if payload is None:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(payload), fds


def _read_to(connection: socket.socket, size: int, data: bytes = b"") -> bytes | None:
    """`data` completed to `size` bytes from the connection; None when the peer closes first."""
    while len(data) < size:
        more = connection.recv(size - len(data))
        if not more:
            return None
        data += more
    return data


def _connect(address: str) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
    except OSError:
        connection.close()
        raise
    return connection


def start_warm_process(address: str) -> None:
    """Start a warm process listening on `address` and wait until it listens (or another one
    started at the same moment does)."""
    read_end, write_end = os.pipe()
    try:
        starter = subprocess.Popen(
            [sys.executable, *subprocess._args_from_interpreter_flags(), __file__, "--serve", address[1:],
             str(write_end)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_end,), start_new_session=True, env=_shared_environment(), cwd="/",
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reply = pipe.read().decode(errors="replace").strip()
    starter.wait()  # it leaves as soon as the server it forked listens
    if reply not in ("listening", "taken"):
        raise WarmProcessUnavailable(reply or f"the warm process exited at start (status {starter.returncode})")


def run_warm(script: Path, argv: list[str]) -> int:
    """Run the stage in a child of the warm process (started first where none listens); its exit
    status, negative for a signal. WarmProcessUnavailable before the stage began."""
    address = warm_address()
    request = {"script": str(script), "argv": argv, "cwd": os.getcwd(), "environment": dict(os.environ),
               "path": sys.path, "umask": _current_umask()}
    streams = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    for _ in range(3):
        try:
            connection = _connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            start_warm_process(address)
            continue
        with connection:
            try:
                _send(connection, request, streams)
                reply, _ = _receive(connection)
            except OSError:
                reply = None
            if reply is None:  # it was leaving, idle, as this connected: start another
                continue
            return _wait_for_stage(connection, reply["pid"], script)
    raise WarmProcessUnavailable("no warm process took the stage after three tries")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _wait_for_stage(connection: socket.socket, pid: int, script: Path) -> int:
    def pass_on(signal_number, _frame):
        try:
            os.kill(pid, signal_number)
        except ProcessLookupError:
            pass

    for signal_number in FORWARDED_SIGNALS:
        signal.signal(signal_number, pass_on)
    try:
        reply, _ = _receive(connection)
    except OSError:
        reply = None
    if reply is None:  # the warm process died: make sure its child does not run on unseen
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        print(f"stages/run.py: the warm process running {script.name} ended before the stage did", file=sys.stderr)
        return 1
    return reply["status"]


# --- the warm process -------------------------------------------------------------------------


def serve(name: str, ready_fd: int) -> None:
    """Import PRELOAD, listen on the abstract socket `name`, tell the starter on `ready_fd`, then
    run stages until IDLE_SECONDS pass without one."""
    with os.fdopen(ready_fd, "w") as ready:
        try:
            for module in PRELOAD:
                try:
                    __import__(module)
                except ImportError:  # a stage that needs it fails as it would in its own process
                    pass
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_initialized():
                raise WarmProcessUnavailable("importing the libraries initialised CUDA, which a forked child cannot use")
            if warm_address() != "\0" + name:
                raise WarmProcessUnavailable("its environment came out different from the caller's")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind("\0" + name)
            except OSError:
                ready.write("taken")  # another caller's warm process got there first
                return
            listener.listen(64)
        except WarmProcessUnavailable as error:
            ready.write(f"the warm process could not start: {error}")
            return
        except Exception as error:  # noqa: BLE001 - the caller reports it and runs the stage itself
            ready.write(f"the warm process could not start: {type(error).__name__}: {error}".splitlines()[0])
            return
        if os.fork():  # the starter leaves; the server lives on, no one's child
            os._exit(0)
        ready.write("listening")
    Server(listener).run()


class Server:
    """The warm process's loop: one child per request, each child's status back to its caller."""

    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.callers: dict[int, socket.socket] = {}  # child pid -> the connection of its caller
        self.watched: dict[socket.socket, int] = {}  # callers whose hanging up is watched -> pid
        self.wake_read, wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(wake_write, False)
        self.wake_write = wake_write
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select when a child ends

    def run(self) -> None:
        last_busy = time.monotonic()
        while True:
            self.reap()
            if self.callers:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > IDLE_SECONDS:
                return
            readable, _, _ = select.select([self.listener, self.wake_read, *self.watched], [], [], 1.0)
            for ready in readable:
                if ready is self.listener:
                    self.accept()
                    last_busy = time.monotonic()
                elif ready == self.wake_read:
                    while True:
                        try:
                            if not os.read(self.wake_read, 512):
                                break
                        except BlockingIOError:
                            break
                else:  # a caller hung up (killed outright): its stage must not run on
                    pid = self.watched.pop(ready)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def reap(self) -> None:
        while self.callers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            connection = self.callers.pop(pid, None)
            if connection is None:
                continue
            self.watched.pop(connection, None)
            try:
                _send(connection, {"status": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass
            connection.close()

    def accept(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:  # the caller left before it was accepted, or no descriptors are left
            return
        _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        if uid != os.getuid():  # only its own user's stages
            connection.close()
            return
        connection.settimeout(10.0)  # a caller that connects and says nothing cannot stall the rest
        try:
            request, fds = _receive(connection, max_fds=3)
        except (OSError, ValueError):
            request, fds = None, []
        connection.settimeout(None)
        if request is None or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        try:
            pid = os.fork()
        except OSError:
            pid = None
        if pid == 0:
            self.run_child(request, fds, connection)
        for fd in fds:
            os.close(fd)
        if pid is None:  # its caller sees the connection close before a pid and tries again
            connection.close()
            return
        try:
            _send(connection, {"pid": pid})
        except OSError:
            os.kill(pid, signal.SIGKILL)
        self.callers[pid] = connection
        self.watched[connection] = pid

    def run_child(self, request: dict, fds: list[int], connection: socket.socket) -> None:
        """In the forked child: become the caller's process and run its stage. Never returns."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signal_number in (signal.SIGCHLD, *FORWARDED_SIGNALS):
                signal.signal(signal_number, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for descriptor in (self.listener, connection, *self.callers.values()):
                descriptor.close()
            os.close(self.wake_read)
            os.close(self.wake_write)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["environment"])
            os.umask(request["umask"])
            sys.path[:] = request["path"]
            status = run_script(Path(request["script"]), request["argv"])
        except BaseException as error:  # noqa: BLE001 - the child must end here, never in the server's loop
            print(f"stages/run.py: {type(error).__name__}: {error}", file=sys.stderr)
        finally:
            try:
                atexit._run_exitfuncs()  # what the interpreter runs at exit (the stage's own handlers)
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(USAGE)
    name = sys.argv[1]
    script = STAGES / f"{name}.py"
    if "/" in name or name == "run" or not script.is_file():
        raise SystemExit(f"stages/run.py: no stage script stages/{name}.py ({USAGE})")
    argv = [str(script), *sys.argv[2:]]
    if sys.platform == "linux" and os.environ.get("IICS_WARM", "1") != "0":
        try:
            exit_with(run_warm(script, argv))
        except WarmProcessUnavailable as reason:
            print(f"stages/run.py: {reason}; running {script.name} in this process", file=sys.stderr)
    exit_with(run_script(script, argv))


if __name__ == "__main__":
    main()
