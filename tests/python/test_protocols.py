"""Blocking IO inside transport/protocol callbacks (ours only).

Reader callbacks (``Protocol.data_received``) are not scheduled through
``call_soon``: asyncio's selector loop builds their handles directly and
uvloop has libuv call them, so the incumbent never sees blocking done there.
DESIGN.md lists this as a known gap of wrapping call_soon alone; these tests
pin down that gap (strict xfail) until reader callbacks are monitored too.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from conftest import assert_record, run_monitored


@pytest.mark.xfail(
    strict=True,
    reason="reader callbacks are not scheduled through call_soon; monitoring them is a "
    "follow-up (asyncio builds their handles directly, uvloop has libuv call them)",
)
def test_blocking_in_data_received_is_reported(loop_kind, tmp_path):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    host, port = lsock.getsockname()

    class StatProtocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            os.stat(tmp_path)  # blocking call in a reader callback
            self.transport.write(data)

    async def body():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(StatProtocol, sock=lsock)
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
