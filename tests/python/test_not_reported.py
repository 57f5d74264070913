"""Work that does not block the loop is not reported."""

from __future__ import annotations

import asyncio
import socket
import time

import aiocop

from conftest import run_monitored


def blocking_work(path) -> str:
    with open(path) as f:
        data = f.read()
    time.sleep(0.02)
    return data


def test_run_in_executor_is_not_reported(loop_kind, tmp_path):
    path = tmp_path / "exec.txt"
    path.write_text("payload")

    async def body():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, blocking_work, path)

    result = run_monitored(body, loop_kind)
    assert result.value == "payload"
    assert result.io_events == [], [e.blocking_events for e in result.io_events]


def test_to_thread_is_not_reported(loop_kind, tmp_path):
    path = tmp_path / "thread.txt"
    path.write_text("payload")

    async def body():
        return await asyncio.to_thread(blocking_work, path)

    result = run_monitored(body, loop_kind)
    assert result.value == "payload"
    assert result.io_events == [], [e.blocking_events for e in result.io_events]


def test_asyncio_streams_are_not_reported(loop_kind):
    # The listening socket is made outside the loop (its bind is a blocking
    # socket call); everything else goes through the loop's transports.
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    host, port = lsock.getsockname()

    async def handle(reader, writer):
        data = await reader.readexactly(5)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    async def body():
        server = await asyncio.start_server(handle, sock=lsock)
        async with server:
            replies = []
            for _ in range(3):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"hello")
                await writer.drain()
                replies.append(await reader.readexactly(5))
                writer.close()
                await writer.wait_closed()
            return replies

    result = run_monitored(body, loop_kind)
    assert result.value == [b"HELLO"] * 3
    assert result.io_events == [], [e.blocking_events for e in result.io_events]


def test_non_blocking_socket_via_loop_is_not_reported(loop_kind, echo_server):
    async def body():
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, echo_server.address)
            await loop.sock_sendall(sock, b"ping")
            data = b""
            while len(data) < 4:
                data += await loop.sock_recv(sock, 4 - len(data))
            return data
        finally:
            sock.close()

    result = run_monitored(body, loop_kind)
    assert result.value == b"ping"
    assert result.io_events == [], [e.blocking_events for e in result.io_events]


def test_timeout_zero_socket_calls_are_not_reported(loop_kind, echo_server):
    """A socket with timeout 0.0 is never reported, even called directly."""

    async def body():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(0.0)
        try:
            sock.connect_ex(echo_server.address)
            for _ in range(100):
                await asyncio.sleep(0.001)
                try:
                    sock.send(b"x")
                    break
                except OSError:
                    continue
            try:
                sock.recv(1)
            except OSError:
                pass
        finally:
            sock.close()

    result = run_monitored(body, loop_kind)
    names = {r["event"].split("(", 1)[0] for r in result.records()}
    assert not names & {
        "socket.socket.connect_ex",
        "socket.socket.send",
        "socket.socket.recv",
    }, names


def test_nothing_reported_while_deactivated(loop_kind, tmp_path):
    path = tmp_path / "quiet.txt"
    path.write_text("x")

    async def body():
        aiocop.deactivate()
        assert aiocop.is_monitoring_active() is False
        await asyncio.sleep(0)
        with open(path) as f:
            f.read()
        time.sleep(0.03)  # blocking IO and over the threshold: still nothing
        await asyncio.sleep(0)

    result = run_monitored(body, loop_kind)
    assert result.events == []


def test_reactivation_resumes_reporting(loop_kind, tmp_path):
    path = tmp_path / "again.txt"
    path.write_text("x")

    def reopen():
        with open(path) as f:
            f.read()

    async def body():
        aiocop.deactivate()
        await asyncio.sleep(0)
        reopen()
        await asyncio.sleep(0)
        aiocop.activate()
        assert aiocop.is_monitoring_active() is True
        await asyncio.sleep(0)
        reopen()

    result = run_monitored(body, loop_kind)
    assert len(result.records("open")) == 1


def test_handles_without_blocking_under_threshold_are_not_reported(loop_kind):
    async def body():
        total = 0
        for i in range(50):
            total += i
            await asyncio.sleep(0)
        return total

    result = run_monitored(body, loop_kind)
    assert result.io_events == []
