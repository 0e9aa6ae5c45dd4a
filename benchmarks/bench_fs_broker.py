"""The embedded default broker under concurrent writers: kombu's filesystem transport against the app's
(text2grad_web/broker.py: atomic writes, claims by rename, unreadable messages set aside).

Producer processes publish at once (as gunicorn threads and the outbox relays of several workers do) while
consumers poll in a tight loop, all on one queue folder. Per transport: messages received, lost and
received twice, consumer errors (kombu's `_get` raises JSONDecodeError when it picks up a file its writer
has created but not yet written; in a worker that error ends the process), and the wall time. Payloads
are about the size of a reward task's message; a writer that is descheduled between creating the file
and writing it (a busy machine) is what opens the window, so the counts depend on the machine's load.

    .venv/bin/python benchmarks/bench_fs_broker.py      # --producers 8 --messages 300 --consumers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRANSPORTS = {
    "kombu": "kombu.transport.filesystem:Transport",
    "app": "text2grad_web.broker:FilesystemTransport",
}


def _options(folder: str) -> dict:
    for sub in ("queue", "processed", "control"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    return {
        "data_folder_in": f"{folder}/queue",
        "data_folder_out": f"{folder}/queue",
        "processed_folder": f"{folder}/processed",
        "control_folder": f"{folder}/control",
        "store_processed": False,
    }


def _connection(transport: str, folder: str):
    from kombu import Connection

    return Connection("filesystem://", transport=transport, transport_options=_options(folder))


def _produce(transport: str, folder: str, producer: int, count: int) -> None:
    with _connection(transport, folder) as conn:
        queue = conn.SimpleQueue("bench")
        for n in range(count):
            queue.put({"producer": producer, "n": n, "critique": "x" * 1500})


def _consume(transport: str, folder: str, deadline_s: float, out) -> None:
    got, errors, kinds = [], 0, {}
    with _connection(transport, folder) as conn:
        queue = conn.SimpleQueue("bench")
        deadline = time.monotonic() + deadline_s
        idle_since = None
        while time.monotonic() < deadline:
            try:
                message = queue.get(timeout=0.05)
            except queue.Empty:
                # Done once nothing arrived for a while after every producer finished (told by a marker).
                if os.path.exists(os.path.join(folder, "producers-done")):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        break
                continue
            except Exception as exc:  # what ends a worker
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                continue
            idle_since = None
            got.append((message.payload["producer"], message.payload["n"]))
            message.ack()
    out.put({"got": got, "errors": errors, "kinds": kinds})


def run(name: str, producers: int, messages: int, consumers: int) -> dict:
    transport = TRANSPORTS[name]
    folder = tempfile.mkdtemp(prefix=f"t2g-fsbench-{name}-")
    results = mp.Queue()
    started = time.monotonic()
    readers = [mp.Process(target=_consume, args=(transport, folder, 300, results)) for _ in range(consumers)]
    writers = [mp.Process(target=_produce, args=(transport, folder, i, messages)) for i in range(producers)]
    for proc in readers + writers:
        proc.start()
    for proc in writers:
        proc.join()
    Path(folder, "producers-done").touch()
    outcomes = [results.get(timeout=330) for _ in readers]
    for proc in readers:
        proc.join()
    wall = time.monotonic() - started
    got = [tuple(item) for outcome in outcomes for item in outcome["got"]]
    expected = {(p, n) for p in range(producers) for n in range(messages)}
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        for kind, count in outcome["kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    return {
        "transport": name,
        "sent": len(expected),
        "received": len(set(got) & expected),
        "lost": len(expected - set(got)),
        "twice": len(got) - len(set(got)),
        "consumer_errors": sum(outcome["errors"] for outcome in outcomes),
        "error_kinds": kinds,
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--messages", type=int, default=300, help="per producer")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print(f"load: {os.getloadavg()}, cores: {os.cpu_count()}")
    for _ in range(args.rounds):
        for name in TRANSPORTS:
            print(json.dumps(run(name, args.producers, args.messages, args.consumers)))


if __name__ == "__main__":
    main()
