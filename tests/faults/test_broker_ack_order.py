"""The assumption under ``text2grad_web.broker.RedisQoS.append``: a message popped just before Redis froze
is handed on although its unacked-index write was not confirmed, because the frozen Redis still has that
write in its socket and applies it when it continues, *before* the acknowledgement the worker sends later
on a new connection. If the order were the other way round, the acknowledgement would remove nothing and
the index entry would stay: the message would run once more after ``visibility_timeout``.

Checked on the test's own redis-server (SIGSTOP/SIGCONT by pid), without a worker: once through the QoS
itself (the acknowledgement's new connection is opened while Redis is frozen, so its first command waits
for Redis to continue) and once with a second connection already open and the acknowledgement written
into it while Redis is still frozen (the strict case: both connections hold unread commands when Redis
continues, and it must take the older first)."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import redis
from kombu import Connection

from tests.conftest import wait_for
from text2grad_web.broker import RedisTransport

pytestmark = pytest.mark.faults
SOCKET_TIMEOUT_S = 2


def _command(*parts: str) -> bytes:
    """One command in the Redis protocol (RESP), as a client writes it."""
    encoded = [part.encode() for part in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


def test_the_qos_acknowledgement_after_an_unconfirmed_index_write_leaves_the_index_empty(own_redis):
    broker = redis.Redis.from_url(own_redis.url)
    options = {"socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": SOCKET_TIMEOUT_S}
    with Connection(own_redis.url, transport=RedisTransport, transport_options=options) as connection:
        queue = connection.SimpleQueue("order-check")
        queue.put({"n": 1})
        message = queue.get(timeout=5)  # appended to the index while Redis answers
        qos = message.channel.qos
        tag = message.delivery_tag
        assert broker.hexists("unacked", tag)
        qos._remove_from_indices(tag).execute()  # as if popped and not yet indexed

        own_redis.freeze()
        try:
            started = time.monotonic()
            qos.append(message, tag)  # the write times out; the message is handed on all the same
            assert time.monotonic() - started >= SOCKET_TIMEOUT_S * 0.9 and tag in qos._delivered
            acked = threading.Thread(target=qos.ack, args=(tag,))
            acked.start()  # on a new connection: the old one was closed by the timeout
            time.sleep(0.5)
        finally:
            own_redis.thaw()
        acked.join(timeout=SOCKET_TIMEOUT_S * 3)
        assert not acked.is_alive()
        assert tag not in qos._unindexed  # the acknowledgement was confirmed: nothing left to retry
        assert broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0
        queue.close()


def test_redis_applies_an_older_connections_write_before_a_newer_ones_when_it_continues(own_redis):
    broker = redis.Redis.from_url(own_redis.url)
    writer = socket.create_connection(("127.0.0.1", own_redis.port), timeout=5)
    acker = socket.create_connection(("127.0.0.1", own_redis.port), timeout=5)
    for sock in (writer, acker):  # both accepted and answering before the freeze
        sock.sendall(_command("PING"))
        assert sock.recv(64).startswith(b"+PONG")

    own_redis.freeze()
    try:
        # The worker's index write, then its timeout closes the connection (the write is in Redis's socket).
        writer.sendall(
            _command("MULTI") + _command("ZADD", "unacked_index", "1", "tag-1")
            + _command("HSET", "unacked", "tag-1", "payload") + _command("EXEC")
        )  # fmt: skip
        time.sleep(0.2)
        writer.close()
        # The acknowledgement, written while Redis is still frozen, on the other connection.
        acker.sendall(
            _command("MULTI") + _command("ZREM", "unacked_index", "tag-1")
            + _command("HDEL", "unacked", "tag-1") + _command("EXEC")
        )  # fmt: skip
        time.sleep(0.2)
    finally:
        own_redis.thaw()
    reply = b""
    while not re.search(rb"\*2\r\n:\d+\r\n:\d+\r\n$", reply):  # +OK, +QUEUED x2, then EXEC's two counts
        chunk = acker.recv(256)
        assert chunk, reply
        reply += chunk
    acker.close()
    # EXEC answered 1 and 1: the acknowledgement found the entry the older connection wrote.
    assert reply.endswith(b"*2\r\n:1\r\n:1\r\n"), reply
    wait_for(own_redis.answers, timeout=5, message="redis to answer")
    assert broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0
