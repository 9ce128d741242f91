"""A tiny TCP load balancer in front of the cluster's nodes: what HAProxy or a Kubernetes Service
is in production.

Why one: every CBS process takes one broker URL (`CBS_AMQP_URL`), and neither aio-pika's robust
connection nor FastStream's broker knows a list of hosts: each reconnects to the URL it was given.
Behind this, a process's URL names the balancer; each new connection goes to the next node in
turn (so the processes' connections spread over the nodes, as a balancer spreads them), or to
the one after it when that node does not answer. When a node dies its connections close, the
clients' robust connections reconnect, and the balancer sends them to a node that is alive.

    python -m tests.cluster.proxy LISTEN_PORT HOST:PORT [HOST:PORT ...]

It prints `listening <port>` once it accepts connections (LISTEN_PORT 0: a free port), and a
line per connection it places (`to 127.0.0.1:5702`), so a test can tell where clients went.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

CONNECT_TIMEOUT_S = 1.0  # a dead node on loopback refuses at once; a hung one is skipped after this
CHUNK_BYTES = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()  # one side gone: the other is closed too, so the client sees its node die


class Balancer:
    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self._turn = itertools.cycle(range(len(upstreams)))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, tuple[str, int]] | None:
        first = next(self._turn)
        for i in range(len(self.upstreams)):
            host, port = self.upstreams[(first + i) % len(self.upstreams)]
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                continue
            return reader, writer, (host, port)
        return None

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            print("no node answers", flush=True)
            client_writer.close()
            return
        reader, writer, (host, port) = upstream
        print(f"to {host}:{port}", flush=True)
        await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))


async def serve(listen_port: int, upstreams: list[tuple[str, int]]) -> None:
    balancer = Balancer(upstreams)
    server = await asyncio.start_server(balancer.handle, "127.0.0.1", listen_port)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    listen_port, *targets = argv
    upstreams = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets]
    asyncio.run(serve(int(listen_port), upstreams))


if __name__ == "__main__":
    main(sys.argv[1:])
