"""``huren serve --replica-of HUB --workers N``: one replica process per core on one port.

The parent process serves nothing itself. It

1. reserves the port: a socket bound with ``SO_REUSEPORT`` (never listening, so it takes no
   connection) to ``--listen``; with port 0 the kernel picks one here, and every worker is told
   that port. The socket stays bound while the parent lives, so the port is not lost to another
   program while a worker restarts;
2. starts worker 0, waits for its first line (it serves), then the others. Each worker is the
   same ``huren serve`` command with ``--workers 1``, the chosen ``--listen``, its own metrics
   port (``--metrics-listen`` port + its slot; port 0: each picks one) and, except worker 0, no
   web page. A worker binds with ``grpc.so_reuseport`` (the kernel spreads new connections over
   the workers), follows the hub on its own and holds its own snapshot;
3. prints the listening line once, with the workers' process ids, and relays each worker's
   other lines with its slot and process id;
4. starts a worker that died again after a backoff (:class:`RestartPolicy`), logging why it
   ended; a worker that dies more than ``RESTARTS_PER_MINUTE`` times within a minute stops them
   all, and the parent exits 1;
5. on SIGTERM or SIGINT sends SIGTERM to every worker (each stops gracefully), waits up to
   ``STOP_SECONDS``, then kills what is left; exits 0 when every worker ended cleanly. SIGHUP is
   passed on (certificates are read again).

A worker also ends when its parent does (``PR_SET_PDEATHSIG`` on Linux), so no worker outlives
a parent that was killed outright.

The hub is never run this way: its registry has one writer (docs/decisions.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.cli.common import EXIT_ERROR, EXIT_FAILED, EXIT_OK
from gateway.errors import RequestInvalid

log = logging.getLogger(__name__)

AUTO = "auto"
MAX_WORKERS = 256
RESTARTS_PER_MINUTE = 5
"""A worker that died more often than this within a minute is not started again."""
FIRST_BACKOFF = 0.5
LONGEST_BACKOFF = 8.0
STOP_SECONDS = 15.0
"""How long the workers have to stop after SIGTERM before they are killed."""
WORKER_VARIABLE = "_HUREN_WORKER"
"""Set by the parent in each worker's environment: ``SLOT:PARENT_PID`` (not an option)."""
MAX_PID = 2**22
"""The largest process id Linux gives (``PID_MAX_LIMIT`` on 64-bit)."""
_DIGITS = re.compile(r"[0-9]{1,7}")


def count(text: str) -> int | None:
    """``--workers``: a number from 1 to ``MAX_WORKERS``, or None for ``auto``."""
    if text.strip().lower() == AUTO:
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the number of worker processes, from 1 to {MAX_WORKERS}, or "
            f"'{AUTO}' (one per usable core)"
        )
    return number


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; not a container's CPU quota)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # where there is no affinity (macOS)


def worker_of(value: str) -> tuple[int, int]:
    """The slot and parent process id in ``_HUREN_WORKER``'s ``value`` (``SLOT:PARENT_PID``):
    a slot below ``MAX_WORKERS`` and a process id Linux could give (1 to 2**22), both written in
    ASCII digits.

    Raises:
        RequestInvalid: naming the variable and what it must be.
    """
    slot, colon, parent = value.partition(":")
    if colon and _DIGITS.fullmatch(slot) and _DIGITS.fullmatch(parent):
        number, pid = int(slot), int(parent)
        if number < MAX_WORKERS and 1 <= pid <= MAX_PID:
            return number, pid
    raise RequestInvalid(
        f"{WORKER_VARIABLE}={value[:40]!r}: give SLOT:PARENT_PID, a slot from 0 to "
        f"{MAX_WORKERS - 1} and a process id from 1 to {MAX_PID} (huren serve --workers sets "
        "it for its worker processes: do not set it yourself)"
    )


def as_worker() -> int | None:
    """The slot of this process if a supervisor started it (else None); it then ends when its
    parent does.

    Raises:
        RequestInvalid: ``_HUREN_WORKER`` is set but malformed or out of range (nothing is done).
    """
    value = os.environ.get(WORKER_VARIABLE)
    if value is None:
        return None
    slot, parent = worker_of(value)
    end_with_parent()
    if os.getppid() != parent:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)
    return slot


@dataclass
class RestartPolicy:
    """When a dead worker is started again: after ``first`` seconds, doubling with each death
    within the last minute up to ``longest``; never once it died more than ``per_minute``
    times within a minute."""

    per_minute: int = RESTARTS_PER_MINUTE
    first: float = FIRST_BACKOFF
    longest: float = LONGEST_BACKOFF
    _deaths: dict[int, deque[float]] = field(default_factory=dict)

    def died(self, slot: int, now: float) -> float | None:
        """Seconds to wait before starting ``slot`` again, or None: give up."""
        deaths = self._deaths.setdefault(slot, deque())
        deaths.append(now)
        while now - deaths[0] > 60.0:
            deaths.popleft()
        if len(deaths) > self.per_minute:
            return None
        return float(min(self.first * 2 ** (len(deaths) - 1), self.longest))

    def recent(self, slot: int) -> int:
        return len(self._deaths.get(slot, ()))


def end_with_parent() -> None:
    """This process gets SIGTERM when its parent ends, even killed outright (Linux's
    ``PR_SET_PDEATHSIG``, kept across exec; elsewhere nothing): a worker, or the front's nginx
    (called in its process before nginx runs), never outlives its supervisor."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def reserve(listen: str) -> tuple[socket.socket, str]:
    """A socket bound to ``listen`` with ``SO_REUSEPORT`` (not listening), and the address with
    the port it got.

    Raises:
        OSError: naming the address if it cannot be bound.
    """
    host, _, port = listen.rpartition(":")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError) as e:
        raise OSError(f"cannot listen on {listen}: {e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {listen}: {e.strerror or e}") from e
    return sock, f"{host}:{sock.getsockname()[1]}"


def metrics_addresses(listen: str | None, workers: int) -> list[str | None]:
    """Each worker's ``--metrics-listen``: the given port plus its slot (port 0: each picks).

    Raises:
        OSError: when the ports would run past 65535.
    """
    if not listen:
        return [None] * workers
    host, _, text = listen.rpartition(":")
    port = int(text) if text.isdigit() else -1
    if port < 0 or (port and port + workers - 1 > 65535):
        raise OSError(
            f"cannot serve metrics on {listen} for {workers} workers: they take the ports "
            f"from the one given to {workers - 1} above it"
        )
    return [f"{host}:{port + slot if port else 0}" for slot in range(workers)]


def supervise(
    argv: Sequence[str],
    listen: str,
    metrics_listen: str | None,
    web: bool,
    workers: int,
    health: bool = False,
) -> int:
    """Run ``huren ARGV`` as ``workers`` processes on ``listen`` (see the module docstring).
    The web page (``web``) and the plaintext health port (``health``) are served by worker 0
    alone: their addresses are not shared."""
    placeholder, shared = reserve(listen)
    metrics = metrics_addresses(metrics_listen, workers)

    def command(slot: int) -> list[str]:
        own = [*argv, "--workers", "1", "--listen", shared]
        if metrics[slot] is not None:
            own += ["--metrics-listen", str(metrics[slot])]
        if web and slot > 0:
            own += ["--web-listen", ""]  # one web page, served by worker 0
        if health and slot > 0:
            own += ["--health-listen", ""]  # one health port, served by worker 0
        return [sys.executable, "-m", "gateway", *own]

    with placeholder:
        return Supervisor(command, workers).run()


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen[str] | None = None
    ready: bool = False
    restart_at: float | None = None


class Supervisor:
    """Starts, watches, restarts and stops the worker processes (see the module docstring)."""

    def __init__(
        self,
        command: Callable[[int], list[str]],
        workers: int,
        policy: RestartPolicy | None = None,
    ) -> None:
        self._command = command
        self._workers = [_Worker(slot) for slot in range(workers)]
        self._policy = policy or RestartPolicy()
        self._lines: queue.Queue[tuple[int, int, str]] = queue.Queue()
        self._first: dict[int, str] = {}
        self._held: list[tuple[int, int, str]] = []
        self._announced = False
        self._stopping = False

    def run(self) -> int:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            failure = self._start()
            if failure is None:
                failure = self._supervise()
        finally:
            clean = self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure is not None:
            return failure
        return EXIT_OK if clean else EXIT_FAILED

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            for worker in self._workers:
                if worker.process is not None and worker.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.send_signal(signal.SIGHUP)
            return
        self._stopping = True

    # ------------------------------------------------------------------ starting

    def _spawn(self, worker: _Worker) -> None:
        environ = {**os.environ, WORKER_VARIABLE: f"{worker.slot}:{os.getpid()}"}
        process = subprocess.Popen(
            self._command(worker.slot),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            encoding="utf-8",
            env=environ,
            process_group=0,  # a terminal's Ctrl-C reaches the parent, which stops them
        )
        worker.process, worker.ready, worker.restart_at = process, False, None
        threading.Thread(target=self._read, args=(worker.slot, process), daemon=True).start()

    def _read(self, slot: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self._lines.put((slot, process.pid, line.rstrip("\n")))

    def _start(self) -> int | None:
        """Worker 0, then the others; None once all serve, else the exit status."""
        first, rest = self._workers[0], self._workers[1:]
        for group in ([first], rest):
            for worker in group:
                self._spawn(worker)
            while not self._stopping and not all(w.ready for w in group):
                self._pump()
                for worker in group:
                    assert worker.process is not None
                    status = worker.process.poll()
                    if status is not None and not worker.ready:
                        log.error(
                            "worker %d %s before it served: stopping",
                            worker.slot,
                            _ended(status),
                        )
                        return EXIT_ERROR if status <= 0 else status
        if self._stopping:
            return None
        self._announce()
        return None

    def _announce(self) -> None:
        pids = ", ".join(str(w.process.pid) for w in self._workers if w.process is not None)
        line = self._first[0]
        suffix = f"{len(self._workers)} workers, pids {pids}"
        line = f"{line[:-1]}; {suffix})" if line.endswith(")") else f"{line} ({suffix})"
        _say(line)
        self._announced = True
        for held in self._held:
            self._relay(*held)
        self._held.clear()

    # ------------------------------------------------------------------ running

    def _pump(self, timeout: float = 0.1) -> None:
        """Take the workers' lines that came (waiting up to ``timeout`` for one)."""
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._line(*item)
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                return

    def _line(self, slot: int, pid: int, line: str) -> None:
        worker = self._workers[slot]
        current = worker.process is not None and worker.process.pid == pid
        if current and not worker.ready:
            worker.ready = True
            if self._announced:
                log.warning("worker %d serves again (pid %d)", slot, pid)
            else:
                self._first[slot] = line
            return
        if self._announced:
            self._relay(slot, pid, line)
        else:
            self._held.append((slot, pid, line))

    @staticmethod
    def _relay(slot: int, pid: int, line: str) -> None:
        _say(f"{line} (worker {slot}, pid {pid})")

    def _supervise(self) -> int | None:
        while not self._stopping:
            self._pump(0.2)
            now = time.monotonic()
            for worker in self._workers:
                if worker.process is not None and (status := worker.process.poll()) is not None:
                    if self._stopping:
                        break
                    delay = self._policy.died(worker.slot, now)
                    if delay is None:
                        log.error(
                            "worker %d (pid %d) %s; it died %d times within a minute: "
                            "stopping every worker",
                            worker.slot,
                            worker.process.pid,
                            _ended(status),
                            self._policy.recent(worker.slot),
                        )
                        return EXIT_FAILED
                    log.error(
                        "worker %d (pid %d) %s; starting it again in %.1f s",
                        worker.slot,
                        worker.process.pid,
                        _ended(status),
                        delay,
                    )
                    worker.process, worker.restart_at = None, now + delay
                due = worker.restart_at
                if worker.process is None and due is not None and due <= now:
                    self._spawn(worker)
        return None

    # ------------------------------------------------------------------ stopping

    def _stop(self) -> bool:
        """SIGTERM to every worker; True if each ended cleanly within ``STOP_SECONDS``."""
        running = [
            w.process for w in self._workers if w.process is not None and w.process.poll() is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        clean = True
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %.0f s: killed", process.pid, STOP_SECONDS)
                process.kill()
                process.wait()
            if process.returncode not in (0, -signal.SIGTERM):
                ended = _ended(process.returncode)
                log.error("worker pid %d %s while stopping", process.pid, ended)
                clean = False
        return clean


def _ended(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
        return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _say(line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, flush=True)
