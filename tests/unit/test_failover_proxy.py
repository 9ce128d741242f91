"""The cluster tests' balancer (tests/cluster/proxy.py) on loopback sockets: it skips a node that
does not answer, and a node's end of a connection closing closes the client's (what makes a
client's robust connection reconnect, and find a live node)."""

from __future__ import annotations

import asyncio
import socket

from tests.cluster.proxy import Balancer


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_a_dead_node_is_skipped_and_its_peer_closing_closes_the_client() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.write(b"hello from the live node")
        await writer.drain()

    live = await asyncio.start_server(node, "127.0.0.1", 0)
    live_port = live.sockets[0].getsockname()[1]
    balancer = Balancer([("127.0.0.1", _dead_port()), ("127.0.0.1", live_port)])
    front = await asyncio.start_server(balancer.handle, "127.0.0.1", 0)
    try:
        for _ in range(2):  # whichever node its turn starts at, the client lands on the live one
            reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
            assert await asyncio.wait_for(reader.read(100), 5) == b"hello from the live node"
            accepted[-1].close()  # the node's side goes away (as when it is killed)
            assert await asyncio.wait_for(reader.read(100), 5) == b""  # the client sees its connection end
            writer.close()
        assert len(accepted) == 2
    finally:
        front.close()
        live.close()
