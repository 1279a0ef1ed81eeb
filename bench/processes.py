"""The processes a benchmark run starts, and what /proc says about them.

Peak memory is the kernel's own high-water mark (VmHWM in /proc/PID/status), summed over the
server and its children, reset before each measurement by writing 5 to /proc/PID/clear_refs:
nothing is sampled, so no short peak is missed. CPU time is user plus system time of the
same processes, read when the load generator opens and closes its measured window.
"""

import http.client
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.stats import BYTES_PER_MEGABYTE

REPOSITORY_DIRECTORY = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 20.0
READY_POLL_SECONDS = 0.005
STOP_TIMEOUT_SECONDS = 10.0
# One client socket, one proxy socket each way and one endpoint socket per slow pingback.
WANTED_OPEN_FILES = 16384
KILOBYTES = 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit (children inherit it); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_OPEN_FILES)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def post(port: int, path: str, body: bytes, content_type: str, *,
         timeout_seconds: float = 5.0) -> tuple[int, bytes]:
    """One POST to 127.0.0.1 on a new connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_seconds)
    try:
        connection.request("POST", path, body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    """A server process under measurement, with its children (pingproxy's workers)."""

    name: str
    process: subprocess.Popen
    port: int
    started_at: float

    @classmethod
    def start(cls, name: str, command: Sequence[str], port: int, log_directory: Path) -> "Server":
        """Start command, its output going to a log file (a full pipe would stall it)."""
        log = open(log_directory / f"{name.replace(' ', '-')}.log", "ab")
        started_at = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        log.close()
        return cls(name, process, port, started_at)

    def wait_until_answering(self, is_answer: Callable[[int, bytes], bool],
                             probe: tuple[str, bytes, str]) -> float:
        """Poll with the probe request until is_answer; seconds since the process started."""
        path, body, content_type = probe
        deadline = time.perf_counter() + READY_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")
            try:
                if is_answer(*post(self.port, path, body, content_type)):
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(READY_POLL_SECONDS)
        raise RuntimeError(f"{self.name} did not answer within {READY_TIMEOUT_SECONDS:g} s")

    def _tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server and its children so far."""
        total = 0.0
        for member in self._tree():
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def reset_peak_memory(self) -> None:
        """Start a new high-water mark for every process of the server (Linux 4.0 and later)."""
        for member in self._tree():
            try:
                Path(f"/proc/{member.pid}/clear_refs").write_text("5")
            except OSError:
                pass  # the peak then counts from start-up, still an upper bound

    def peak_memory_megabytes(self) -> float:
        """Sum of each process's peak resident memory since the last reset."""
        return self._status_sum("VmHWM") / BYTES_PER_MEGABYTE

    def memory_megabytes(self) -> float:
        """Resident memory of the server and its children now."""
        return self._status_sum("VmRSS") / BYTES_PER_MEGABYTE

    def _status_sum(self, field: str) -> float:
        total = 0
        for member in self._tree():
            try:
                status = Path(f"/proc/{member.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) * KILOBYTES
        return total

    def stop(self) -> None:
        """Terminate the server, then any child it left behind, by process id."""
        children = self._tree()[1:]
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def run_load(spec: dict, work_directory: Path, *, on_window_open: Callable[[], None] = lambda: None,
             on_window_close: Callable[[], None] = lambda: None) -> dict:
    """Run the load generator as its own process on spec; its result."""
    spec_path = work_directory / "loadgen-spec.json"
    spec_path.write_text(json.dumps(spec))
    generator = subprocess.Popen([sys.executable, "-m", "bench.loadgen", str(spec_path)],
                                 stdout=subprocess.PIPE, text=True, cwd=REPOSITORY_DIRECTORY)
    result = None
    for line in generator.stdout:
        record = json.loads(line)
        event = record.pop("event")
        if event == "measuring":
            on_window_open()
        elif event == "stopped":
            on_window_close()
        elif event == "result":
            result = record
    if generator.wait() != 0 or result is None:
        raise RuntimeError(f"the load generator failed (exit status {generator.returncode})")
    return result
