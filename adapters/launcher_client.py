"""How the CLI reaches a running stack: commands through the broker, admin requests direct.

`StackClient` finds the stack from the configuration (bus endpoints, keys) and
the run directory (run.json, admin sockets), sends commands to services
(`positions.I`, `risk`, `gateway.ACCOUNT`) through the broker and admin
commands to one worker's admin socket. Owned by the CLI's main thread (it
holds ZeroMQ sockets, which are not thread-safe).

A command that changes state is sent once: a timeout is reported as an
unknown outcome and never re-sent. Only a request that could not even be
queued (the connection to the broker is still being made) is tried again,
since it was not sent.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from posbus.actors.model.symbol_names import unknown_account_message
from posbus.actors.sharding import Shard, shard_of
from posbus.adapters import launcher_bus
from posbus.adapters.cli.command import EXIT_USAGE, CommandError, UsageError
from posbus.adapters.cli.stack_options import run_dir_of
from posbus.adapters.config import Config, load_config
from posbus.adapters.launcher_layout import RunDir, pid_alive
from posbus.bus.admin import AdminClient
from posbus.bus.client import CommandClient
from posbus.bus.errors import BrokerUnavailable, CommandFailed
from posbus.bus.messages import CommandArg, Reply

CONNECT_WAIT_S = 3.0


class NoStack(CommandError):
    """No stack is running in this run directory: nothing was done (exit code 2, as before)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class StackClient:
    """Commands and admin requests to the stack of `config` (main thread)."""

    def __init__(self, config_path: str | None = None, run_dir: str | None = None) -> None:
        self.config: Config = load_config(config_path)
        self.run_dir = RunDir(run_dir_of(run_dir, self.config))
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._client: CommandClient | None = None

    # -- run directory ---------------------------------------------------------------------

    def run_info(self) -> dict[str, Any]:
        """run.json of the running stack; NoStack when there is none."""
        data = self.run_dir.read_run()
        if data is None or not pid_alive(int(data.get("launcher_pid", 0))):
            raise NoStack(f"no stack is running in {self.run_dir.root}; start one with 'posbus up'")
        return data

    def accounts(self) -> list[str]:
        """The stack's accounts, its default (first) one first.

        Those the running stack here was started with (run.json: a demo's
        accounts are not the embedded defaults'), else the configuration's.
        """
        data = self.run_dir.read_run() or {}
        listed = data.get("accounts")
        if isinstance(listed, list) and listed and pid_alive(int(data.get("launcher_pid", 0))):
            return [str(name) for name in listed]
        return list(self.config.accounts())

    def account(self, name: str | None) -> str:
        """`name` (default: the first account) when the stack has it; UsageError if not.

        Refused before anything is sent, naming the account meant.
        """
        accounts = self.accounts()
        if name is None:
            return accounts[0]
        if name not in accounts:
            raise UsageError(unknown_account_message(name, accounts))
        return name

    def require_stack(self) -> None:
        """On one machine (ipc), fail fast with a hint when no stack runs here.

        Over tcp the workers may run on other hosts without a launcher here:
        an absent broker shows as BrokerUnavailable or UnknownOutcome instead.
        """
        if self.config.bus.transport == "ipc":
            self.run_info()

    # -- commands --------------------------------------------------------------------------

    def _command_client(self) -> CommandClient:
        if self._client is None:
            endpoints = launcher_bus.endpoints(self.config.bus, self.run_dir.root)
            self._client = CommandClient(
                self._context,
                endpoints.commands,
                sender="cli",
                options=launcher_bus.socket_options(self.config.bus),
                curve=launcher_bus.curve_client(self.config.bus),
            )
        return self._client

    def call(
        self,
        service: str,
        name: str,
        args: dict[str, CommandArg] | None = None,
        *,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Run command `name` on `service`; its result (CommandFailed, UnknownOutcome if not)."""
        client = self._command_client()
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                return client.call(service, name, args, timeout=timeout)
            except BrokerUnavailable:
                # Not queued, so not sent: trying again re-sends nothing.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def shard_service(self, account: str, symbol: str) -> str:
        """The service of the positions shard owning account+symbol."""
        count = self.config.workers.position_shards
        return Shard(shard_of(account, symbol, count), count).service

    def position_services(self) -> list[str]:
        """Every positions shard's service."""
        count = self.config.workers.position_shards
        return [Shard(i, count).service for i in range(count)]

    def shard_positions(self, service: str, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every position of positions shard `service`, page by page (positions.list)."""
        out: list[dict[str, Any]] = []
        args: dict[str, CommandArg] = {}
        while True:
            result = self.call(service, "positions.list", args, timeout=timeout)
            out.extend(result.get("positions", []))
            after = result.get("next")
            if not isinstance(after, str):
                return out
            args = {"after": after}

    def positions(self, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every position of every shard (see `shard_positions`)."""
        out: list[dict[str, Any]] = []
        for service in self.position_services():
            out.extend(self.shard_positions(service, timeout=timeout))
        return out

    def call_all_shards(
        self,
        name: str,
        key: str,
        args: dict[str, CommandArg] | None = None,
        *,
        timeout: float = 5.0,
    ) -> list[Any]:
        """Run `name` on every positions shard and concatenate the `key` lists of the results."""
        out: list[Any] = []
        for service in self.position_services():
            result = self.call(service, name, args, timeout=timeout)
            items = result.get(key, [])
            if isinstance(items, list):
                out.extend(items)
        return out

    # -- admin -----------------------------------------------------------------------------

    def admin(
        self,
        worker: str,
        name: str,
        args: dict[str, CommandArg] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Reply:
        """Send admin command `name` to `worker`'s admin socket; its Reply."""
        client = AdminClient(self._context, self.run_dir.admin_endpoint(worker), sender="cli")
        try:
            return client.request(name, args, timeout=timeout)
        finally:
            client.close()

    def admin_result(
        self,
        worker: str,
        name: str,
        args: dict[str, CommandArg] | None = None,
        *,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """`admin`, returning the result or raising CommandFailed."""
        reply = self.admin(worker, name, args, timeout=timeout)
        if reply.ok:
            return reply.result
        assert reply.error is not None
        raise CommandFailed(
            reply.error["type"], reply.error["message"], remote_transient=reply.error["transient"]
        )

    def close(self) -> None:
        """Close the sockets."""
        if self._client is not None:
            self._client.close()
            self._client = None
