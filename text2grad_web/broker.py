"""The app's kombu transports, chosen by ``CELERY_BROKER_TRANSPORT`` in settings from the broker URL.

**Redis** (``redis://``): kombu's, except that an acknowledgement the broker did not answer still frees
the worker's prefetch slot. Kombu's redis QoS removes the message from its unacked index first and only
then forgets the delivery; when the index removal times out (a frozen or restarting Redis), the delivery
stays counted against the prefetch limit for ever. A prefork worker with ``-c 2`` and a prefetch
multiplier of 1 may hold two deliveries: two failed acks during an outage, and it never asks the broker
for a message again while its process looks alive. Here the slot is freed at once and the index removal
is retried with the next acknowledgement; a worker that stops before then leaves the message to be
redelivered after ``visibility_timeout`` (tasks are idempotent).

A message the worker has already popped (its ``BRPOP`` answered) is written to the unacked index before
it is handed on. Kombu lets that write's timeout escape: a broker that froze between the two ends the
consumer's connection (a reconnect cycle of 10 s or more), and the message, off its queue and not handed
on, waits in the index for ``visibility_timeout`` (6 hours by default). Here the message is handed on
whatever the broker said: a frozen Redis still has the write in its socket and applies it when it
continues, before anything the worker sends later on a new connection, so the acknowledgement then
removes it as usual (Redis reads the connections that became readable first first:
tests/faults/test_broker_ack_order.py freezes a redis-server and checks that order). Were it otherwise,
the entry would stay and the message would run once more after ``visibility_timeout``.

**Filesystem** (``filesystem://``, the embedded default): kombu's filesystem transport writes a message
file in place, so a consumer listing the folder can pick up a file its writer has not finished, and
``_get`` fails with a ``JSONDecodeError`` that ends the worker; consumers also claim a file by moving it
to the system's temporary folder, which is a copy (not atomic) across filesystems. Here writers write a
hidden temporary file and rename it into place (readers see whole messages or none), a consumer claims a
message by renaming it inside the queue folder (exactly one consumer wins), an unreadable message is
set aside in ``bad/`` with a log line instead of ending the worker, and the exchange tables are replaced
atomically under a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import uuid
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem as kfs
from kombu.transport import redis as kredis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from redis import exceptions as redis_errors

logger = logging.getLogger(__name__)


# --- Redis ----------------------------------------------------------------------------------------


class RedisQoS(kredis.QoS):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unindexed: set[str] = set()  # acknowledged here, still in the broker's unacked index
        self._unindexed_lock = threading.Lock()

    def _drop_from_index(self, delivery_tag) -> None:
        with self._unindexed_lock:
            tags = {delivery_tag, *self._unindexed}
        try:
            with self.pipe_or_acquire() as pipe:
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except (*kredis.get_redis_error_classes()[0], OSError) as exc:
            with self._unindexed_lock:
                self._unindexed.add(delivery_tag)
                waiting = len(self._unindexed)
            logger.warning(
                "The broker did not confirm the acknowledgement of %s (%s: %s); the worker goes on and "
                "retries it with the next acknowledgement (%d waiting)",
                delivery_tag,
                type(exc).__name__,
                exc,
                waiting,
            )
            return
        with self._unindexed_lock:
            self._unindexed -= tags

    def append(self, message, delivery_tag):
        try:
            super().append(message, delivery_tag)  # the unacked index, then the in-memory delivery
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            virtual.QoS.append(self, message, delivery_tag)  # popped already: run it rather than strand it
            logger.warning(
                "The broker did not confirm that %s is in its unacked index (%s: %s); the worker runs it "
                "all the same",
                delivery_tag,
                type(exc).__name__,
                exc,
            )

    def ack(self, delivery_tag):
        try:
            self._drop_from_index(delivery_tag)
        finally:
            virtual.QoS.ack(self, delivery_tag)  # frees the prefetch slot whatever the broker said

    def reject(self, delivery_tag, requeue=False):
        try:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            else:
                self._drop_from_index(delivery_tag)
        except (*kredis.get_redis_error_classes()[0], OSError):
            # Still in the unacked index: the broker redelivers it after visibility_timeout.
            logger.warning("The broker did not answer the requeue of %s", delivery_tag, exc_info=True)
        finally:
            virtual.QoS.ack(self, delivery_tag)


class RedisChannel(kredis.Channel):
    QoS = RedisQoS


class RedisTransport(kredis.Transport):
    Channel = RedisChannel


# --- Filesystem -----------------------------------------------------------------------------------

BAD_FOLDER = "bad"
CLAIM_PREFIX = ".claimed-"
TEMP_PREFIX = ".writing-"


def _write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file, or the whole new one, never a part."""
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


class FilesystemChannel(kfs.Channel):
    @contextlib.contextmanager
    def _table_lock(self, exchange):
        """Serialises read-modify-write of one exchange table across processes."""
        self.control_folder.mkdir(exist_ok=True)
        lock_path = self._exchange_file(exchange).with_suffix(".lock")
        with open(lock_path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read_table(self, exchange) -> list:
        file = self._exchange_file(exchange)
        try:
            text = file.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        try:
            return [kfs.exchange_queue_t(*q) for q in loads(text)]
        except (ValueError, TypeError):
            # Only a table written in place by kombu's own transport can be seen half-written.
            logger.warning("Exchange table %s is unreadable; treating it as empty", file)
            return []

    def get_table(self, exchange):
        return self._read_table(exchange)

    def _write_table(self, exchange, queues) -> None:
        _write_atomically(str(self._exchange_file(exchange)), str_to_bytes(dumps(queues)))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = kfs.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            with self._table_lock(exchange):
                queues = self._read_table(exchange)
                if entry not in queues:
                    self._write_table(exchange, [entry, *queues])
        except OSError as exc:
            raise ChannelError(f"Cannot bind {queue!r} to {exchange!r}") from exc

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = kfs.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            queues = self._read_table(exchange)
            if entry in queues:
                self._write_table(exchange, [q for q in queues if q != entry])

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            _write_atomically(path, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(folder, f"{CLAIM_PREFIX}{uuid.uuid4().hex}-{name}")
            try:
                os.rename(os.path.join(folder, name), claimed)  # atomic: one consumer wins
            except OSError:
                continue  # another consumer took it
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
                message = loads(bytes_to_str(payload))
            except (OSError, ValueError) as exc:
                self._set_aside(claimed, name, exc)
                continue
            if self.store_processed:
                with contextlib.suppress(OSError):
                    os.replace(claimed, os.path.join(self.processed_folder, name))
            else:
                with contextlib.suppress(OSError):
                    os.remove(claimed)
            return message
        raise Empty()

    def _set_aside(self, claimed: str, name: str, exc: Exception) -> None:
        bad = os.path.join(self.data_folder_in, BAD_FOLDER)
        with contextlib.suppress(OSError):
            os.makedirs(bad, exist_ok=True)
            os.replace(claimed, os.path.join(bad, name))
        logger.error("Broker message %s is unreadable (%s); set aside in %s", name, exc, bad)


class FilesystemTransport(kfs.Transport):
    Channel = FilesystemChannel
    global_state = virtual.BrokerState()
