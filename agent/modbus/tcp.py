"""Modbus TCP: one persistent connection per (host, port)."""

from __future__ import annotations

from pymodbus.client.base import ModbusBaseClient

from agent.modbus.backoff import Backoff
from agent.modbus.connection import ModbusLink
from agent.modbus.guard import ReadOnlyTcpClient


class TcpLink(ModbusLink):
    """One persistent Modbus TCP connection, shared by every unit id behind it.

    Many inverters accept a single Modbus TCP client at a time, and a gateway
    serves several unit ids over one connection, so terril never opens two.
    *pause* is an optional quiet time between requests, for devices that
    choke on back-to-back requests.
    """

    kind = "tcp"
    closed_reason = "connection closed (by the device or the network)"

    def __init__(
        self,
        host: str,
        port: int = 502,
        timeout: float = 3.0,
        pause: float = 0.0,
        backoff: Backoff | None = None,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"{host}:{port}: TCP port must be 1..65535")
        super().__init__(f"{host}:{port}", timeout, pause, backoff)
        self.host = host
        self.port = port

    def _new_client(self) -> ModbusBaseClient:
        return ReadOnlyTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout,
            retries=0,  # a silent unit costs one timeout, not (retries+1) of them
            reconnect_delay=0,  # reconnecting is ModbusLink's job (backoff, logging)
            name=self.name,
        )
