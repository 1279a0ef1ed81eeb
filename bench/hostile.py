"""Hostile requests against a running pingproxy: how long each takes to get its fault.

``python -m bench.hostile`` (part of ``make bench``) starts pingproxy on 127.0.0.1, sends
each kind of hostile body ROUNDS times on fresh connections, and prints the fault code and
the median and slowest round trip of each. Issue 3 asks for every one "well under 100 ms".
The bodies are the ones tests/test_hostile_input_functional.py checks for correctness.
"""

import statistics
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Sequence
from pathlib import Path

from bench.hostile_bodies import hostile_bodies, nested
from bench.processes import Server, free_port, post
from bench.stats import text_table

ROUNDS = 20
# Big enough that the 100 000-level nesting reaches the parser instead of the size limit.
MAX_BODY_BYTES = 8 * 1024 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each hostile body's round trip; a closed loopback port plays the fetch target."""
    port, unused_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as work:
        secret = Path(work) / "secret.txt"
        secret.write_text("TOP-SECRET-CONTENT")
        bodies = hostile_bodies(f"http://127.0.0.1:{unused_port}", str(secret))
        bodies["nested-arrays-100000"] = (nested(100_000), {-32600})
        server = Server.start("pingproxy-hostile", [
            sys.executable, "-m", "pingproxy", "--port", str(port), "--allow-private",
            "--max-body", str(MAX_BODY_BYTES), "--log-level", "warning"], port, Path(work))
        try:
            server.wait_until_answering(lambda status, _: status == 200,
                                        ("/", b"<methodCall/>", "text/xml"))
            rows = [measure(port, name, body, codes) for name, (body, codes) in bodies.items()]
        finally:
            server.stop()
    print(text_table(["body", "bytes", "HTTP", "fault", "median ms", "slowest ms", "verdict"],
                     rows))
    return 0 if all(row[-1] == "ok" for row in rows) else 1


def measure(port: int, name: str, body: bytes, codes: set[int]) -> list[str]:
    """One table row: the body's answer and its round trips over ROUNDS fresh connections."""
    path = f"/http://127.0.0.1:{port}/webmention"
    times_ms, answers = [], set()
    for _ in range(ROUNDS):
        started = time.perf_counter()
        status, answer = post(port, path, body, "text/xml")
        times_ms.append((time.perf_counter() - started) * 1000)
        answers.add((status, _fault_code(answer)))
    [(status, code)] = answers if len(answers) == 1 else [(0, None)]
    slowest = max(times_ms)
    verdict = "ok" if code in codes and slowest < 100 else "MISSED"
    return [name, f"{len(body):,}", str(status), str(code), f"{statistics.median(times_ms):.2f}",
            f"{slowest:.2f}", verdict]


def _fault_code(answer: bytes) -> int | None:
    try:
        xmlrpc.client.loads(answer)
    except xmlrpc.client.Fault as fault:
        return fault.faultCode
    except Exception:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
