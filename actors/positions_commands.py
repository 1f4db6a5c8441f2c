"""The positions worker's command API: positions.order, cancel, list and orders.

`PositionsCommands` journals an order or cancel on its position's stream
before the position hears of it, and answers the shard's positions and
orders in pages that fit one reply. It must never hand anything to a
position whose journal stream is corrupt.

Threads: the control thread (the worker's `on_command`); it may wait for
a position actor (start, inspect), never on the I/O thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from posbus.actors.control import Inspect
from posbus.actors.delivery import Outbox
from posbus.actors.factory import ActorFactory
from posbus.actors.journal import SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import OrderValidationError
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.worker import ASK_TIMEOUT_S, WorkerError, json_ready
from posbus.bus.constraints import parse_decimal, parse_optional_decimal
from posbus.bus.messages import CancelRequest, CommandArg, OrderIntent

# positions.orders answers the newest this many orders unless asked for more
# (at most the MAX: about 1 KiB each, a reply stays under the 1 MiB frame limit).
ORDERS_LIMIT = 200
ORDERS_LIMIT_MAX = 500
# positions.list answers at most this many positions a page (~300 bytes each).
POSITIONS_PAGE = 1000


class PositionsCommands:
    """The commands of one positions shard, on the worker's outbox and position actors."""

    def __init__(
        self,
        *,
        account: str,
        clock: Clock,
        outbox: Outbox,
        factory: ActorFactory,
        snapshots: SnapshotStore | None,
        position: Callable[[str, str], ChildHandle],
        position_handles: Callable[[], dict[str, ChildHandle]],
        last_told: dict[str, int],
    ) -> None:
        self._account = account
        self._clock = clock
        self._outbox = outbox
        self._factory = factory
        self._snapshots = snapshots
        # The worker's lookup: starts the position actor of account+symbol if needed.
        self._position = position
        self._position_handles = position_handles
        # The worker's "last told" times, for the admin's actors listing.
        self._last_told = last_told

    def order(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """Journal an OrderIntent on its position's stream and hand it over; reply its order id."""
        account = _arg_text(args, "account", self._account)
        symbol = _arg_text(args, "symbol")
        side_text = _arg_text(args, "side")
        side = Side.BUY if side_text == "buy" else Side.SELL if side_text == "sell" else None
        if side is None:
            raise OrderValidationError(f"side must be buy or sell, got {side_text!r}")
        reduce_only = args.get("reduce_only") is True
        try:
            # The wire's decimal grammar: no spaces, exponents, signs or NaN.
            qty = parse_decimal(_arg_text(args, "qty"), "qty")
            limit = parse_optional_decimal(args.get("limit_price"), "limit_price")
            intent = OrderIntent(
                account=account,
                symbol=symbol,
                side=side,
                qty=qty,
                limit_price=limit,
                intent_id=_arg_text(args, "intent_id", f"cli-{time.time_ns()}"),
                reduce_only=reduce_only,
                reason=_arg_text(args, "reason", "command"),
                ts_ns=self._clock.now_ns(),
            )
        except (ArithmeticError, ValueError) as exc:
            raise OrderValidationError(f"invalid order: {exc}", symbol=symbol) from exc
        stream = position_stream(account, symbol)
        self._refuse_corrupt(stream)
        handle = self._position(account, symbol)
        self._last_told[stream] = time.time_ns()
        delivered = self._outbox.deliver(stream, intent, handle)
        return {
            "order_id": f"{account}:{symbol}:{delivered.seq}",
            "stream": stream,
            "seq": delivered.seq,
        }

    def cancel(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """Journal a cancel of order ACCOUNT:SYMBOL:SEQ and hand it to its position."""
        order_id = _arg_text(args, "order_id")
        parts = order_id.rsplit(":", 1)[0].split(":", 1)
        if len(parts) != 2:
            raise OrderValidationError(f"order id {order_id!r} is not ACCOUNT:SYMBOL:SEQ")
        account, symbol = parts
        stream = position_stream(account, symbol)
        if stream not in self._position_handles():
            raise OrderValidationError(f"unknown order {order_id!r}", order_id=order_id)
        self._refuse_corrupt(stream)
        request = CancelRequest(order_id=order_id, ts_ns=self._clock.now_ns())
        delivered = self._outbox.deliver(stream, request, self._position(account, symbol))
        return {"order_id": order_id, "stream": stream, "seq": delivered.seq}

    def list_positions(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """One page of the shard's positions, by stream: those after `after`, at most `limit`.

        `next` is the stream to pass as `after` for the next page (None after
        the last): a shard of 10,000 positions does not fit one reply.
        """
        after = args.get("after")
        if after is not None and not isinstance(after, str):
            raise WorkerError("argument 'after' must be a position stream")
        limit = args.get("limit", POSITIONS_PAGE)
        if not isinstance(limit, int) or not 1 <= limit <= POSITIONS_PAGE:
            raise WorkerError(f"argument 'limit' must be an integer in 1..{POSITIONS_PAGE}")
        streams = [s for s in sorted(self._position_handles()) if after is None or s > after]
        page = streams[:limit]
        return {
            "positions": [self._summary(s) for s in self._states(page)],
            "next": page[-1] if len(streams) > limit else None,
        }

    def _states(self, streams: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The inspect state of the positions of `streams` (default: all), in stream order."""
        handles = self._position_handles()
        wanted = sorted(handles) if streams is None else streams
        corrupt = self._factory.corrupt_streams()
        states = []
        for stream in wanted:
            handle = handles[stream]
            _, account, symbol = stream.split("/", 2)
            if stream in corrupt:
                states.append(
                    {
                        "account": account,
                        "symbol": symbol,
                        "status": "Corrupt",
                        "error": str(corrupt[stream]),
                    }
                )
            elif handle.state is HandleState.RUNNING:
                states.append(handle.ask(Inspect(), timeout=ASK_TIMEOUT_S))
            else:
                states.append(
                    PositionActor.recovered_state(self._outbox, account, symbol, self._snapshots)
                )
        return states

    @staticmethod
    def _summary(state: dict[str, Any]) -> dict[str, Any]:
        return {
            key: state.get(key)
            for key in (
                "account",
                "symbol",
                "status",
                "qty",
                "avg_entry_price",
                "realized_pnl",
                "unrealized_pnl",
                "fees",
                "mark",
            )
        } | {
            "orders": len(state.get("orders", {})),
            "fills": len(state.get("trade_ids", [])),
            # Only a position whose journal stream is corrupt has one.
            **({"error": state["error"]} if "error" in state else {}),
        }

    def orders(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """The shard's orders, filtered, the newest `limit` of them (oldest first).

        Arguments (all optional): `status` (a list of order states to keep),
        `symbol`, `limit` (default ORDERS_LIMIT, at most ORDERS_LIMIT_MAX: a
        reply must stay within the message size limit however long the stack
        has run). Result: `orders`, `total` (orders that matched) and
        `truncated` (True when older matches were left out).
        """
        statuses = args.get("status")
        if statuses is not None and not isinstance(statuses, list):
            raise WorkerError("argument 'status' must be a list of order states")
        symbol = args.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise WorkerError("argument 'symbol' must be a string")
        limit = args.get("limit", ORDERS_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= ORDERS_LIMIT_MAX:
            raise WorkerError(f"argument 'limit' must be an integer in 1..{ORDERS_LIMIT_MAX}")
        found = [
            order
            for state in self._states()
            if symbol is None or state.get("symbol") == symbol
            for order in state.get("orders", {}).values()
            if statuses is None or order.get("status") in statuses
        ]
        found.sort(key=lambda o: (int(o.get("created_ts_ns") or 0), str(o.get("order_id"))))
        kept = found[-limit:]
        return {
            "orders": [json_ready(dict(o)) for o in kept],
            "total": len(found),
            "truncated": len(kept) < len(found),
        }

    def _refuse_corrupt(self, stream: str) -> None:
        error = self._factory.corruption(stream)
        if error is not None:
            raise WorkerError(
                f"{stream} is down: {error}; the account is halted until the journal is repaired"
            )


def _arg_text(args: Mapping[str, CommandArg], key: str, default: str | None = None) -> str:
    value = args.get(key, default)
    if not isinstance(value, str) or not value:
        raise WorkerError(f"argument {key!r} (a non-empty string) is required")
    return value
