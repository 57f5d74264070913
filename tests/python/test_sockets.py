"""Blocking sockets and DNS, against a real server on 127.0.0.1."""

from __future__ import annotations

import socket

from conftest import assert_record, run_monitored


def connect_blocking(address) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(address)
    return sock


def send_ping(sock: socket.socket) -> None:
    sock.sendall(b"ping")


def read_pong(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 4:
        data += sock.recv(4 - len(data))
    return data


def test_blocking_connect_is_reported(loop_kind, echo_server):
    async def body():
        connect_blocking(echo_server.address).close()

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, "socket.socket.connect", 50, "connect_blocking", entry=True)
    assert rec["event"].startswith("socket.socket.connect(")
    # (args, kwargs) pairs show only the args tuple; the address is the last argument
    assert rec["event"].endswith(f"{echo_server.address})"), rec["event"]
    evt = result.events_with("socket.socket.connect")[0]
    assert evt.severity_level == "high"


def test_blocking_sendall_and_recv_are_reported(loop_kind, echo_server):
    sock = socket.create_connection(echo_server.address)  # connected outside the loop
    try:

        async def body():
            send_ping(sock)
            return read_pong(sock)

        result = run_monitored(body, loop_kind)
    finally:
        sock.close()
    assert result.value == b"ping"
    assert_record(result, "socket.socket.sendall", 10, "send_ping", entry=True)
    assert_record(result, "socket.socket.recv", 10, "read_pong", entry=True)
    assert result.records("socket.socket.connect") == []


def test_create_connection_is_reported(loop_kind, echo_server):
    def open_client():
        socket.create_connection(echo_server.address, timeout=5).close()

    async def body():
        open_client()

    result = run_monitored(body, loop_kind)
    assert_record(result, "socket.socket.connect", 50, "open_client")


def resolve_localhost():
    return socket.getaddrinfo("localhost", 80)


def test_dns_lookup_is_reported(loop_kind):
    async def body():
        return resolve_localhost()

    result = run_monitored(body, loop_kind)
    assert result.value
    rec = assert_record(result, "socket.getaddrinfo", 50, "resolve_localhost")
    assert rec["event"].startswith("socket.getaddrinfo(localhost, 80"), rec["event"]
