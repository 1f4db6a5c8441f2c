"""The positions worker's command handlers: positions.order, cancel, list and orders.

`PositionsCommands` journals an order or cancel on its position's stream
before the position hears of it, and answers the shard's positions and
orders in pages that fit one reply. Each handler takes the typed arguments
declared in positions_schema.py, already checked. It must never hand
anything to a position whose journal stream is corrupt.

Threads: the control thread (the worker's `on_command`); it may wait for
a position actor (start, inspect), never on the I/O thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from posbus.actors.control import Inspect
from posbus.actors.delivery import Outbox
from posbus.actors.factory import ActorFactory
from posbus.actors.journal import SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import OrderValidationError
from posbus.actors.model.instrument_steps import InstrumentSteps
from posbus.actors.model.symbol_names import unknown_account_message, unknown_symbol_message
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.positions_schema import (
    ORDERS_LIMIT_MAX,
    CancelArgs,
    ListArgs,
    OrderArgs,
    OrdersArgs,
)
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.worker import ASK_TIMEOUT_S, WorkerError, json_ready
from posbus.bus.messages import CancelRequest, OrderIntent

# ORDERS_LIMIT_MAX, the largest `limit` of positions.orders, is re-exported for its callers.
__all__ = ["ORDERS_LIMIT_MAX", "PositionsCommands"]


class PositionsCommands:
    """The commands of one positions shard, on the worker's outbox and position actors."""

    def __init__(
        self,
        *,
        accounts: Sequence[str],
        symbols: Collection[str],
        steps: Mapping[str, InstrumentSteps],
        clock: Clock,
        outbox: Outbox,
        factory: ActorFactory,
        snapshots: SnapshotStore | None,
        position: Callable[[str, str], ChildHandle],
        position_handles: Callable[[], dict[str, ChildHandle]],
        last_told: dict[str, int],
    ) -> None:
        # The stack's accounts, the default (an order that names none) first.
        self._accounts = tuple(accounts)
        # The symbols the stack trades (`[symbols]`): an order names one of them.
        self._symbols = frozenset(symbols)
        # Per account, its venue's grid when known here: an order off it is refused unjournaled.
        self._steps = steps
        self._clock = clock
        self._outbox = outbox
        self._factory = factory
        self._snapshots = snapshots
        # The worker's lookup: starts the position actor of account+symbol if needed.
        self._position = position
        self._position_handles = position_handles
        # The worker's "last told" times, for the admin's actors listing.
        self._last_told = last_told

    def order(self, args: OrderArgs) -> dict[str, Any]:
        """Journal an OrderIntent on its position's stream and hand it over; reply its order id.

        An order for an account or a symbol the stack does not trade is
        refused before anything is journaled, naming the spelling meant; a
        reduce-only order may still close a position the shard holds in such
        a symbol or account. So is a quantity or limit price off the
        account's venue's grid, when known.
        """
        account = args.account or self._accounts[0]
        stream = position_stream(account, args.symbol)
        if account not in self._accounts and not (
            args.reduce_only and stream in self._position_handles()
        ):
            raise OrderValidationError(
                unknown_account_message(account, self._accounts), symbol=args.symbol
            )
        if args.symbol not in self._symbols and not (
            args.reduce_only and stream in self._position_handles()
        ):
            raise OrderValidationError(
                unknown_symbol_message(args.symbol, self._symbols), symbol=args.symbol
            )
        steps = self._steps.get(account)
        off_grid = None if steps is None else steps.off_grid(args.qty, args.limit_price)
        if off_grid is not None:
            raise OrderValidationError(off_grid, symbol=args.symbol)
        try:
            intent = OrderIntent(
                account=account,
                symbol=args.symbol,
                side=args.side,
                qty=args.qty,
                limit_price=args.limit_price,
                intent_id=args.intent_id or f"cli-{time.time_ns()}",
                reduce_only=args.reduce_only,
                reason=args.reason,
                ts_ns=self._clock.now_ns(),
            )
        except (ArithmeticError, ValueError) as exc:
            raise OrderValidationError(f"invalid order: {exc}", symbol=args.symbol) from exc
        self._refuse_corrupt(stream)
        handle = self._position(account, args.symbol)
        self._last_told[stream] = time.time_ns()
        delivered = self._outbox.deliver(stream, intent, handle)
        return {
            "order_id": f"{account}:{args.symbol}:{delivered.seq}",
            "stream": stream,
            "seq": delivered.seq,
        }

    def cancel(self, args: CancelArgs) -> dict[str, Any]:
        """Journal a cancel of order ACCOUNT:SYMBOL:SEQ and hand it to its position."""
        order_id = args.order_id
        parts = order_id.rsplit(":", 1)[0].split(":", 1)
        if len(parts) != 2:
            raise OrderValidationError(f"order id {order_id!r} is not ACCOUNT:SYMBOL:SEQ")
        account, symbol = parts
        stream = position_stream(account, symbol)
        if stream not in self._position_handles():
            raise OrderValidationError(f"unknown order {order_id!r}", order_id=order_id)
        self._refuse_corrupt(stream)
        # Only a cancel of an order the position holds is journaled: a journaled
        # record is replayed on every restart, and one naming no order has no
        # effect to replay.
        (state,) = self._states([stream])
        if order_id not in state.get("orders", {}):
            raise OrderValidationError(
                f"unknown order {order_id!r}: {stream} holds no such order", order_id=order_id
            )
        request = CancelRequest(order_id=order_id, ts_ns=self._clock.now_ns())
        delivered = self._outbox.deliver(stream, request, self._position(account, symbol))
        return {"order_id": order_id, "stream": stream, "seq": delivered.seq}

    def list_positions(self, args: ListArgs) -> dict[str, Any]:
        """One page of the shard's positions, by stream: those after `after`, at most `limit`.

        `next` is the stream to pass as `after` for the next page (None after
        the last): a shard of 10,000 positions does not fit one reply.
        """
        after = args.after
        streams = [s for s in sorted(self._position_handles()) if after is None or s > after]
        page = streams[: args.limit]
        return {
            "positions": [self._summary(s) for s in self._states(page)],
            "next": page[-1] if len(streams) > args.limit else None,
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

    def orders(self, args: OrdersArgs) -> dict[str, Any]:
        """The shard's orders, filtered, the newest `limit` of them (oldest first).

        A reply must stay within the message size limit however long the stack
        has run, hence `limit`. Result: `orders`, `total` (orders that matched)
        and `truncated` (True when older matches were left out).
        """
        statuses = None if args.status is None else {status.value for status in args.status}
        found = [
            order
            for state in self._states()
            if args.symbol is None or state.get("symbol") == args.symbol
            for order in state.get("orders", {}).values()
            if statuses is None or order.get("status") in statuses
        ]
        found.sort(key=lambda o: (int(o.get("created_ts_ns") or 0), str(o.get("order_id"))))
        kept = found[-args.limit :]
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
