"""A TCP proxy in front of PostgreSQL that can stop answering or close its port, mid-run.

``stop_answering`` keeps every connection open and reads what the client sends without passing
it on or replying: to the client it looks like a network partition (the peer accepted and went
silent). ``close`` shuts the port and drops the connections: a server that went away.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

from tests.support.live_server import free_port

CHUNK = 65536


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._answering = threading.Event()
        self._answering.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def stop_answering(self) -> None:
        self._answering.clear()

    def close(self) -> None:
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for each in sockets:
            with suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def _track(self, connection: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(connection)
        return connection

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if not self._answering.is_set():
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            server = self._track(socket.create_connection(self.upstream))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(CHUNK):
                if not self._answering.is_set():
                    self._swallow(source)
                    return
                target.sendall(data)

    @staticmethod
    def _swallow(source: socket.socket) -> None:
        with suppress(OSError):
            while source.recv(CHUNK):
                pass
