"""Blocking IO inside transport/protocol and reader callbacks (ours only).

These callbacks are not scheduled through ``call_soon``: asyncio's selector loop builds
their handles directly (``_add_reader`` / ``_add_writer``, which the transports and
``add_reader`` use) and uvloop has libuv call them. The monitor reaches them anyway
(asyncio: its loop class's ``_add_reader`` / ``_add_writer`` wrap the callback; uvloop: the
classes of the protocol factories' protocols get monitored callback methods, and ``add_reader`` /
``add_writer`` wrap the callback), with the same events as any monitored handle. Real
sockets on 127.0.0.1, real loops of both kinds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

import aiocop

from conftest import (
    assert_record,
    busy_wait,
    close_loop,
    check_event_invariants,
    entry_function,
    new_loop,
    run_monitored,
)


def identity(result, function: str) -> set[tuple]:
    """The (task_name, coroutine) of the events with a record from ``function``."""
    return {
        (e.task_name, e.coroutine)
        for e in result.events
        if any(entry_function(r) == function for r in e.blocking_events)
    }


def protocol_identity(loop_kind: str, protocol: type, method: str) -> tuple:
    """What a protocol callback's event is attributed to: on uvloop the protocol's method
    itself; on asyncio the transport's reader handle that called it."""
    if loop_kind == "uvloop":
        return (None, f"{protocol.__qualname__}.{method}")
    return (None, "_SelectorSocketTransport._read_ready")


async def echo_once(protocol_factory, payload: bytes = b"ping", *, eof: bool = False) -> bytes:
    """Serve ``protocol_factory`` on 127.0.0.1, send ``payload`` (then EOF when ``eof``) from a
    stream client and read back as many bytes."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol_factory, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    async with server:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        if eof:
            writer.write_eof()
        await writer.drain()
        reply = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
    return reply


# --------------------------------------------------------------------------- stream protocols


class StatProtocol(asyncio.Protocol):
    """Echoes, with a blocking call in ``data_received``."""

    stat_path = "/"

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        os.stat(self.stat_path)  # blocking call in a reader callback
        self.transport.write(data)


def test_blocking_in_data_received_is_reported(loop_kind, tmp_path):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    host, port = lsock.getsockname()

    class Protocol(StatProtocol):
        stat_path = tmp_path

    async def body():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Protocol, sock=lsock)
        async with server:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping")
            await writer.drain()
            reply = await reader.readexactly(4)
            writer.close()
            await writer.wait_closed()
            return reply

    result = run_monitored(body, loop_kind)
    assert result.value == b"ping"
    assert_record(result, "os.stat", 1, "data_received", entry=True)


def test_data_received_event_names_the_callback(loop_kind):
    result = run_monitored(lambda: echo_once(StatProtocol), loop_kind)
    assert result.value == b"ping"
    assert identity(result, "data_received") == {
        protocol_identity(loop_kind, StatProtocol, "data_received")
    }
    [evt] = [e for e in result.io_events
             if any(entry_function(r) == "data_received" for r in e.blocking_events)]
    check_event_invariants(evt)
    assert evt.reason == "io_blocking"
    assert evt.severity_score == 1 and evt.severity_level == "low"


class LifecycleProtocol(asyncio.Protocol):
    """Blocks in ``connection_made``, ``eof_received`` and ``connection_lost``."""

    lost = None

    def connection_made(self, transport):
        os.stat("/")
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        os.listdir("/")
        return False  # close the transport

    def connection_lost(self, exc):
        os.getcwd()
        LifecycleProtocol.lost = asyncio.get_running_loop().create_future()
        LifecycleProtocol.lost.set_result(exc)


def test_connection_made_eof_received_and_connection_lost(loop_kind):
    async def body():
        reply = await echo_once(LifecycleProtocol, eof=True)
        for _ in range(5):  # connection_lost follows the close on the next iterations
            await asyncio.sleep(0.01)
        return reply

    result = run_monitored(body, loop_kind)
    assert result.value == b"ping"
    assert_record(result, "os.stat", 1, "connection_made", entry=True)
    assert_record(result, "os.listdir", 10, "eof_received", entry=True)
    assert_record(result, "os.getcwd", 0, "connection_lost", entry=True)
    if loop_kind == "uvloop":
        for method in ("connection_made", "eof_received", "connection_lost"):
            assert identity(result, method) == {
                (None, f"LifecycleProtocol.{method}")
            }, method


class BufferedStat(asyncio.BufferedProtocol):
    """A buffered protocol blocking in ``get_buffer`` and ``buffer_updated``."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(64)

    def get_buffer(self, sizehint):
        os.stat("/")
        return self.buffer

    def buffer_updated(self, nbytes):
        os.listdir("/")
        self.transport.write(bytes(self.buffer[:nbytes]))


def test_buffered_protocol(loop_kind):
    result = run_monitored(lambda: echo_once(BufferedStat), loop_kind)
    assert result.value == b"ping"
    assert_record(result, "os.stat", 1, "get_buffer", entry=True)
    assert_record(result, "os.listdir", 10, "buffer_updated", entry=True)
    if loop_kind == "uvloop":
        assert identity(result, "get_buffer") == {(None, "BufferedStat.get_buffer")}
        assert identity(result, "buffer_updated") == {(None, "BufferedStat.buffer_updated")}


class SlowProtocol(StatProtocol):
    """CPU-bound ``data_received``: over the threshold without a blocking call."""

    def data_received(self, data):
        busy_wait(0.03)
        self.transport.write(data)


def test_slow_data_received_is_a_cpu_blocking_event(loop_kind):
    result = run_monitored(lambda: echo_once(SlowProtocol), loop_kind)
    assert result.value == b"ping"
    expected = protocol_identity(loop_kind, SlowProtocol, "data_received")
    slow = [e for e in result.cpu_events if (e.task_name, e.coroutine) == expected]
    assert slow, [(e.reason, e.coroutine, e.elapsed_ms) for e in result.events]
    for evt in slow:
        check_event_invariants(evt)
        assert evt.exceeded_threshold and evt.elapsed_ms >= 30


def test_client_protocol_of_create_connection(loop_kind):
    """The protocol of ``create_connection`` (the client side) is monitored too."""
    received = []

    class Client(asyncio.Protocol):
        def data_received(self, data):
            os.stat("/")
            received.append(data)

    async def body():
        loop = asyncio.get_running_loop()

        async def serve(reader, writer):
            writer.write(b"hello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        async with server:
            transport, _ = await loop.create_connection(Client, host, port)
            for _ in range(50):
                if b"".join(received) == b"hello":
                    break
                await asyncio.sleep(0.01)
            transport.close()
        return b"".join(received)

    result = run_monitored(body, loop_kind)
    assert result.value == b"hello"
    assert_record(result, "os.stat", 1, "data_received", entry=True)


# --------------------------------------------------------------------------- datagrams


def test_datagram_received(loop_kind):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            os.stat("/")
            self.transport.sendto(data, addr)

    async def body():
        loop = asyncio.get_running_loop()
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        replies = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if not replies.done():
                    replies.set_result(data)

        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=address)
        client.sendto(b"dgram")
        try:
            return await asyncio.wait_for(replies, 5)
        finally:
            client.close()
            server.close()

    result = run_monitored(body, loop_kind)
    assert result.value == b"dgram"
    assert_record(result, "os.stat", 1, "datagram_received", entry=True)
    if loop_kind == "uvloop":
        assert identity(result, "datagram_received") == {
            (None, "test_datagram_received.<locals>.Echo.datagram_received")
        }
    else:
        assert identity(result, "datagram_received") == {
            (None, "_SelectorDatagramTransport._read_ready")
        }


# --------------------------------------------------------------------------- pipes


def test_read_pipe_protocol(loop_kind):
    class PipeReader(asyncio.Protocol):
        def __init__(self):
            self.chunks = []
            self.done = asyncio.get_running_loop().create_future()

        def data_received(self, data):
            os.stat("/")
            self.chunks.append(data)

        def eof_received(self):
            self.done.set_result(b"".join(self.chunks))

    async def body():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, protocol = await loop.connect_read_pipe(PipeReader, os.fdopen(rfd, "rb", 0))
        os.write(wfd, b"piped")
        os.close(wfd)
        try:
            return await asyncio.wait_for(protocol.done, 5)
        finally:
            transport.close()

    result = run_monitored(body, loop_kind)
    assert result.value == b"piped"
    assert_record(result, "os.stat", 1, "data_received", entry=True)


# --------------------------------------------------------------------------- add_reader / add_writer


def test_add_reader_callback(loop_kind):
    def on_readable(sock, done):
        os.stat("/")
        done.set_result(sock.recv(16))

    async def body():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        done = loop.create_future()
        try:
            loop.add_reader(left.fileno(), on_readable, left, done)
            right.send(b"ready")
            value = await asyncio.wait_for(done, 5)
            loop.remove_reader(left.fileno())
            return value
        finally:
            left.close()
            right.close()

    result = run_monitored(body, loop_kind)
    assert result.value == b"ready"
    assert_record(result, "os.stat", 1, "on_readable", entry=True)
    assert identity(result, "on_readable") == {
        (None, "test_add_reader_callback.<locals>.on_readable")
    }


def test_add_writer_callback(loop_kind):
    def on_writable(sock, done):
        os.listdir("/")
        sock.send(b"w")
        asyncio.get_running_loop().remove_writer(sock.fileno())
        done.set_result(True)

    async def body():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        done = loop.create_future()
        try:
            loop.add_writer(left.fileno(), on_writable, left, done)
            await asyncio.wait_for(done, 5)
            return right.recv(1)
        finally:
            left.close()
            right.close()

    result = run_monitored(body, loop_kind)
    assert result.value == b"w"
    assert_record(result, "os.listdir", 10, "on_writable", entry=True)


def test_unmonitored_loop_reader_is_left_alone(loop_kind):
    """A loop that is not activated runs its reader callbacks as they are: nothing reported."""
    def on_readable(sock, done):
        os.stat("/")
        done.set_result(sock.recv(16))

    async def body():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        done = loop.create_future()
        try:
            loop.add_reader(left.fileno(), on_readable, left, done)
            right.send(b"plain")
            value = await asyncio.wait_for(done, 5)
            loop.remove_reader(left.fileno())
            return value
        finally:
            left.close()
            right.close()

    result = run_monitored(body, loop_kind, activate=False)
    assert result.value == b"plain"
    assert result.records("os.stat") == []


# --------------------------------------------------------------------------- nesting


def test_protocol_method_called_from_a_task_counts_once(loop_kind):
    """A protocol's method called by user code inside a task is left to the task's handle:
    one record, attributed to the task."""
    protocols = []

    def factory():
        protocols.append(StatProtocol())
        return protocols[-1]

    async def body():
        reply = await echo_once(factory)
        protocol = protocols[0]

        class Sink:
            def write(self, data):
                pass

        protocol.transport = Sink()
        protocol.stat_path = "/tmp"
        protocol.data_received(b"direct")  # from the body's own handle
        return reply

    result = run_monitored(body, loop_kind)
    direct = [r for r in result.records("os.stat") if r["event"] == "os.stat(/tmp)"]
    assert len(direct) == 1, result.records("os.stat")
    [evt] = [e for e in result.events if any(r["event"] == "os.stat(/tmp)" for r in e.blocking_events)]
    assert evt.task_name.startswith("Task-")
    assert evt.coroutine == "run_monitored.<locals>.main"


# --------------------------------------------------------------------------- enforcement


def test_raise_at_the_call_inside_data_received(loop_kind):
    caught = []

    class Strict(StatProtocol):
        def data_received(self, data):
            try:
                with aiocop.raise_on_violations(at_call=True):
                    os.listdir("/")
            except aiocop.BlockingCallError as exc:
                caught.append(exc)
            self.transport.write(data)

    result = run_monitored(lambda: echo_once(Strict), loop_kind)
    assert result.value == b"ping"
    assert len(caught) == 1
    assert caught[0].event_name == "os.listdir"
    assert caught[0].event == "os.listdir(/)"


def test_allow_rule_applies_inside_data_received(loop_kind):
    aiocop.clear_allow_rules()
    rule = aiocop.allow("event=os.stat")
    try:
        result = run_monitored(lambda: echo_once(StatProtocol), loop_kind)
    finally:
        aiocop.disallow(rule)
    assert result.value == b"ping"
    assert result.records("os.stat") == []
    assert rule.hits >= 1


def test_deactivated_monitor_reports_nothing_from_protocols(loop_kind):
    async def body():
        aiocop.deactivate()
        return await echo_once(StatProtocol)

    result = run_monitored(body, loop_kind)
    assert result.value == b"ping"
    assert result.records("os.stat") == []


# --------------------------------------------------------------------------- transparency


def test_the_protocol_stays_the_users_object(loop_kind):
    """Class, isinstance, own attributes, ``transport.get_protocol()``: unchanged for user
    code; the instance dict holds only the user's attributes, while connected and after."""
    made = []

    class Tracked(asyncio.Protocol):
        def __init__(self):
            self.tag = "mine"
            made.append(self)

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.seen = data
            self.same = self.transport.get_protocol() is self
            self.connected_dict = sorted(vars(self))
            self.transport.write(data)

        def connection_lost(self, exc):
            self.closed = True

    async def body():
        reply = await echo_once(Tracked)
        for _ in range(50):
            if getattr(made[0], "closed", False):
                break
            await asyncio.sleep(0.01)
        return reply

    checks = {}

    async def checked_body():
        reply = await body()
        protocol = made[0]
        checks["type"] = type(protocol) is Tracked
        checks["isinstance"] = isinstance(protocol, (Tracked, asyncio.Protocol))
        checks["attributes"] = (protocol.tag, protocol.seen, protocol.same, protocol.closed)
        checks["connected_dict"] = protocol.connected_dict
        checks["dict"] = sorted(vars(protocol))
        return reply

    result = run_monitored(checked_body, loop_kind)
    assert result.value == b"ping"
    assert checks == {
        "type": True,
        "isinstance": True,
        "attributes": ("mine", b"ping", True, True),
        "connected_dict": ["same", "seen", "tag", "transport"],
        "dict": ["closed", "connected_dict", "same", "seen", "tag", "transport"],
    }


def test_a_protocol_with_slots_is_monitored_too(loop_kind):
    """A protocol without an instance dict works as before, and its callbacks are monitored
    (on uvloop through its class)."""

    class Slotted(asyncio.Protocol):
        __slots__ = ("transport",)

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            os.stat("/")
            self.transport.write(data)

    result = run_monitored(lambda: echo_once(Slotted), loop_kind)
    assert result.value == b"ping"
    assert_record(result, "os.stat", 1, "data_received", entry=True)


def test_a_monitored_protocol_class_on_an_unmonitored_loop_is_plain(loop_kind):
    """Once a monitored uvloop loop made its class's callbacks monitored, the same class
    served by an unmonitored loop (another thread) runs them as plain bound methods: nothing
    is reported from there, and the protocol works."""
    import threading

    class Shared(StatProtocol):
        pass

    first = run_monitored(lambda: echo_once(Shared), loop_kind)
    assert first.value == b"ping"
    assert_record(first, "os.stat", 1, "data_received", entry=True)

    seen = []
    aiocop.register_slow_task_callback(seen.append)
    try:
        replies = []

        def serve_unmonitored():
            loop = new_loop(loop_kind)
            try:
                replies.append(loop.run_until_complete(echo_once(Shared)))
                bound = Shared().data_received
                replies.append(type(bound).__name__)
            finally:
                close_loop(loop)

        thread = threading.Thread(target=serve_unmonitored)
        thread.start()
        thread.join(10)
        aiocop.flush()
    finally:
        aiocop.unregister_slow_task_callback(seen.append)
    assert replies == [b"ping", "method"]
    from_unmonitored = [
        e for e in seen if any(entry_function(r) == "data_received" for r in e.blocking_events)
    ]
    assert from_unmonitored == []


def test_get_protocol_while_connected(loop_kind):
    seen = {}

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            seen["same"] = self.transport.get_protocol() is self
            seen["instance"] = isinstance(self.transport.get_protocol(), Probe)
            self.transport.write(data)

    result = run_monitored(lambda: echo_once(Probe), loop_kind)
    assert result.value == b"ping"
    assert seen == {"same": True, "instance": True}


def test_a_protocol_callback_that_raises_still_reaches_the_loop(loop_kind):
    """An exception in ``data_received`` goes where the loop sends it (its exception handler),
    untouched."""
    contexts = []

    class Failing(StatProtocol):
        def data_received(self, data):
            raise ValueError("boom")

    async def body():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        server = await loop.create_server(Failing, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        async with server:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"x")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(10), 5)  # the server closes: b""
            writer.close()
        return data

    result = run_monitored(body, loop_kind)
    assert result.value == b""
    errors = [c.get("exception") for c in contexts]
    assert any(isinstance(e, ValueError) and str(e) == "boom" for e in errors), contexts


def test_time_sleep_in_data_received_is_high(loop_kind):
    class Sleepy(StatProtocol):
        def data_received(self, data):
            time.sleep(0.001)
            self.transport.write(data)

    result = run_monitored(lambda: echo_once(Sleepy), loop_kind)
    assert result.value == b"ping"
    assert_record(result, "time.sleep", 50, "data_received", entry=True)
