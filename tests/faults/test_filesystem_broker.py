"""The embedded default broker (the filesystem transport under ``var/celery``) under concurrent use.

Kombu's filesystem transport wrote a message file in place, so a consumer could pick up a file its writer
had created but not yet written, and ``_get`` failed with a JSONDecodeError that ended the interactive
worker (issue seen with one annotator submitting while another edited a draft). The app's transport
(text2grad_web/broker.py) writes a hidden temporary file and renames it into place, claims a message by a
rename inside the queue folder, and sets an unreadable message aside instead of ending the worker."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from queue import Empty

import pytest
from kombu import Connection

from tests.conftest import REPO, wait_for

PRODUCERS = 4
PER_PRODUCER = 25


def _options(folder) -> dict:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def _queue_name() -> str:
    """A name of the test's own: the transport's exchange and binding state is per process, not per folder."""
    return f"work{uuid.uuid4().hex}"


def _connection(folder) -> Connection:
    return Connection("filesystem://", transport="text2grad_web.broker:FilesystemTransport",
                      transport_options=_options(folder))  # fmt: skip


def test_a_message_being_written_is_never_read_half_written(tmp_path):
    """A writer paused mid-message (descheduled on a busy machine) has only a hidden temporary file: the
    consumer does not see it until the writer renames it into place."""
    with _connection(tmp_path) as conn:
        name = _queue_name()
        queue = conn.SimpleQueue(name)
        channel = queue.channel
        folder = tmp_path / "queue"
        final = folder / f"1_{uuid.uuid4()}.{name}.msg"
        temp = folder / f".writing-0-{final.name}"
        temp.write_bytes(b'{"body": "half')  # as far as the writer got
        with pytest.raises(Empty):
            channel._get(name)
        queue.put({"n": 1})  # a whole message written meanwhile is taken
        assert queue.get(timeout=2).payload == {"n": 1}
        temp.write_bytes(temp.read_bytes() + b' written"}')
        os.replace(temp, final)
        assert channel._get(name) == {"body": "half written"}


def test_an_unreadable_message_is_set_aside_and_the_consumer_goes_on(tmp_path, caplog):
    with _connection(tmp_path) as conn:
        name = _queue_name()
        queue = conn.SimpleQueue(name)
        folder = tmp_path / "queue"
        (folder / f"0_{uuid.uuid4()}.{name}.msg").write_bytes(b"")  # what kombu's writer left, half done
        queue.put({"n": 2})
        with caplog.at_level(logging.ERROR, logger="text2grad_web.broker"):
            assert queue.get(timeout=2).payload == {"n": 2}
        assert len(list((folder / "bad").iterdir())) == 1
        assert "is unreadable" in caplog.text
        assert [p.name for p in folder.iterdir() if p.name != "bad"] == []


@pytest.mark.faults
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_concurrent_producers_and_a_prefork_worker_lose_nothing(fault_env, deployed_worker, tmp_path):
    """Producers in processes of their own publish at once while a worker (run.sh's pool and options)
    consumes, all on the filesystem broker: every message is taken and finished once, none is lost."""
    var = tmp_path / "fs-var"
    var.mkdir()
    # No liveness probes of the worker's own: every task in its log is one of the producers'.
    env = {
        **fault_env,
        "CELERY_BROKER_URL": "filesystem://",
        "T2G_VAR_DIR": str(var),
        "T2G_PROBE_EVERY_S": "0",
    }
    worker = deployed_worker("fs", "interactive", concurrency=2, **env)
    producer = (
        "import sys; from text2grad_web.celery import app\n"
        "for n in range(int(sys.argv[2])):\n"
        "    app.send_task('jobs.probe', args=['interactive', f'{sys.argv[1]}-{n}'], queue='interactive')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", producer, str(i), str(PER_PRODUCER)], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for i in range(PRODUCERS)
    ]  # fmt: skip
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out.decode()[-2000:]
    expected = {f"{i}-{n}" for i in range(PRODUCERS) for n in range(PER_PRODUCER)}

    def finished() -> list[str]:
        lines = worker.log_path.read_text().splitlines()
        return [line for line in lines if "jobs.probe[" in line and " succeeded in " in line]

    wait_for(lambda: len(finished()) >= len(expected), timeout=300, message="every message to be finished")
    log = worker.log_path.read_text()
    received = [line for line in log.splitlines() if "jobs.probe[" in line and " received" in line]
    assert len(received) == len(expected) == len(finished())  # each once
    assert worker.poll() is None and "JSONDecodeError" not in log and "Unrecoverable" not in log
    queue_folder = var / "celery" / "queue"
    assert [p.name for p in queue_folder.iterdir()] == []  # nothing left behind, nothing set aside
