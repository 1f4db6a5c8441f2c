"""Stateful properties of the whole in-process system: node, actors, journal, simulated exchange.

Hypothesis drives one `Node` per example (risk supervisor, gateway, position
actors under their supervisors, a memory journal, a seeded simulated exchange
with partial fills and random rejects, a manual clock) through random steps:
market moves (some large enough to breach the daily loss limit), opening
intents (market, marketable limit, resting limit), reduce-only intents,
cancels of resting orders, crashes of any actor, a halt lifted a few steps
later, and time passing (a second, a cool-down, a trading day). After every
step the node is settled (`Node.settle`, the barrier: no sleeps) and these
invariants hold:

1. Every fill the exchange produced is applied in exactly one position,
   exactly once: the trade ids of the positions partition the exchange's
   ledger, and each position's qty and fees are the sums over its symbol's
   fills in that ledger.
2. Equity identity: cash computed independently from the exchange's ledger
   plus the value of the positions at their marks equals starting equity plus
   the positions' realized and unrealized P&L, exactly; and the risk
   supervisor's equity is that same number (it prices risk from those books).
3. No risk-increasing order is approved while the risk state is CoolDown or
   Halted: "risk-reducing" is derived here, not taken from the engine's own
   label: the order's side and qty against its symbol's qty replayed from the
   exchange's ledger up to the step that sent it (it must shrink |qty|
   without flipping it).
4. Once the daily loss limit is breached, until the cool-down expires, no
   new exposure is added: replaying the exchange's ledger, no fill grows the
   gross |qty| of its symbol. Fills of orders already working when the breach
   was seen are exempt: CoolDown refuses new orders, it does not cancel
   working ones.

Each example builds, settles and stops its own node, so nothing leaks
between examples (and the exchange's dice are rolled in the same order on a
replay, which Hypothesis checks). The bugs the machine found are pinned at
the end as fixed sequences.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from posbus.actors.model.fill import Fill
from posbus.actors.model.risk import RiskLimits
from posbus.actors.model.side import Side
from posbus.actors.node import Node, NodeConfig
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.symbol_info import SymbolInfo
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import MarketUpdate, Message, OrderIntent, RiskEvent

D = Decimal
ACCOUNT = "default"
BTC = "BTC/USDT"
ETH = "ETH/USDT"
SYMBOLS = (BTC, ETH)
TICK = D("0.01")
NS = 1_000_000_000
DAY_NS = 86_400 * NS
# One hour into a trading day (UTC midnight, no offset), far from the epoch.
START_NS = 19_800 * DAY_NS + 3_600 * NS
STARTING_EQUITY = D(100_000)
COOLDOWN_S = 60
START_MID = {BTC: D("50000.00"), ETH: D("3000.00")}
# Lot sizes up to ~50k notional: 1 BTC and a 2 % move is a 1k loss, the daily
# loss limit, so breaches are common.
LOTS = {BTC: (D("0.01"), D("0.05"), D("0.2"), D("0.5"), D(1)), ETH: (D("0.1"), D(1), D(5), D(15))}
LOT = st.sampled_from([(symbol, qty) for symbol in SYMBOLS for qty in LOTS[symbol]])
LIMITS = RiskLimits(
    daily_loss_limit=D(500),
    max_drawdown=D("0.5"),
    max_leverage=D(5),
    warning_fraction=D("0.8"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(200_000),
    max_total_exposure=D(300_000),
    max_order_notional=D(60_000),
    max_orders_per_second=1_000,
    cooldown_s=COOLDOWN_S,
    stale_after_s=3_600,
)
# Crashes are the point here: never give up restarting, and restart at once
# (the backoff only spaces out real crash loops; the intensity window is wall time).
POLICY = SupervisorPolicy(max_restarts=10_000, period_s=1.0, backoff=Backoff(0.0, 0.0))
RESTRICTED = ("CoolDown", "Halted")
RESTING = ("Accepted", "PartiallyFilled")
TERMINAL = ("Filled", "Cancelled", "Rejected", "Expired", "Error")
DAILY_BREACH = "daily loss limit reached"


@contextmanager
def exact() -> Iterator[None]:
    """Reference arithmetic: wide enough for these numbers, and any rounding raises."""
    with localcontext() as ctx:
        ctx.prec = 200
        ctx.traps[Inexact] = True
        yield


def _quantize_price(value: Decimal) -> Decimal:
    return max(value.quantize(TICK), D(1))


@dataclass(frozen=True, slots=True)
class _DailyCooldown:
    """A cool-down caused by a daily loss breach, as the test saw it start."""

    until_ns: int
    # Client order ids of the orders working when the breach was seen.
    exempt: frozenset[str]


class SystemMachine(RuleBasedStateMachine):
    """One node under random signals, prices, fills, crashes, halts and time."""

    def __init__(self) -> None:
        super().__init__()
        self.node: Node | None = None
        self.exchange: SimulatedExchange | None = None
        self.clock = ManualClock(START_NS)
        self.mid = dict(START_MID)
        self.intents = 0
        # Read after every step (see _step_done).
        self.fills: list[Fill] = []
        self.positions: dict[str, dict[str, Any]] = {}
        self.risk: dict[str, Any] = {}
        self.events_seen = 0
        self.resting: list[tuple[str, str]] = []
        self.halt_steps = 0  # steps until the operator lifts the kill switch; 0: not halted
        self.new_fills: list[Fill] = []
        # Risk decisions first seen in this step, each with its symbol's qty as the step began.
        self.new_decisions: list[tuple[dict[str, Any], Decimal]] = []
        self.decided: set[str] = set()
        # The daily loss cool-down running at the end of the step, and at its start.
        self.cooldown: _DailyCooldown | None = None
        self.cooldown_before: _DailyCooldown | None = None

    # -- setup and teardown ------------------------------------------------------------

    @initialize(
        seed=st.integers(0, 2**16),
        first_trades=st.lists(st.tuples(LOT, st.sampled_from(Side)), max_size=3),
    )
    def start_node(self, seed: int, first_trades: list[tuple[tuple[str, Decimal], Side]]) -> None:
        """Start a node on a fresh journal and exchange, quote and register both symbols.

        `first_trades` are market intents filled before the first step, so most
        examples carry exposure from the start (and loss limits are within reach).
        """
        self.exchange = SimulatedExchange(
            SimConfig(seed=seed, partial_fill_rate=0.3, reject_rate=0.05), ACCOUNT
        )
        config = NodeConfig(
            ACCOUNT,
            LIMITS,
            STARTING_EQUITY,
            policy=POLICY,
            symbols={BTC: SymbolInfo("crypto", D(1)), ETH: SymbolInfo("crypto", D("0.8"))},
        )
        self.node = Node(config, journal=MemoryJournal(), exchange=self.exchange, clock=self.clock)
        self.node.start()
        for symbol in SYMBOLS:
            self._quote(symbol)
            # A flat position with a mark registers the symbol with the risk engine.
            self.node.position(ACCOUNT, symbol)
        self.node.settle()
        for (symbol, qty), side in first_trades:
            self._signal(symbol, side, qty, None, reduce_only=False)
            # One at a time: two positions submitting at once would reach the
            # exchange (and its seeded dice) in a different order on a replay.
            self.node.settle()
        self._step_done()

    def teardown(self) -> None:
        """Stop the example's node: no actor thread outlives its example."""
        if self.node is not None:
            self.node.stop()

    # -- rules -----------------------------------------------------------------------

    @rule(symbol=st.sampled_from(SYMBOLS), bps=st.sampled_from((-200, -30, 30, 200)))
    def market_drifts(self, symbol: str, bps: int) -> None:
        """The mid of `symbol` moves a little (`bps` basis points)."""
        self._move(symbol, bps)
        self._step_done()

    @rule(symbol=st.sampled_from(SYMBOLS), bps=st.sampled_from((-2_500, -800, 800, 2_500)))
    def market_shock(self, symbol: str, bps: int) -> None:
        """The mid of `symbol` jumps: resting orders it crosses fill, loss limits may break."""
        self._move(symbol, bps)
        self._step_done()

    @rule(lot=LOT, side=st.sampled_from(Side), marketable_limit=st.booleans())
    def opening_intent(self, lot: tuple[str, Decimal], side: Side, marketable_limit: bool) -> None:
        """A strategy asks for a position change that trades now (market or marketable limit)."""
        symbol, qty = lot
        limit = None
        if marketable_limit:
            limit = _quantize_price(
                self.mid[symbol] * (D("1.01") if side is Side.BUY else D("0.99"))
            )
        self._signal(symbol, side, qty, limit, reduce_only=False)
        self._step_done()

    @rule(lot=LOT, side=st.sampled_from(Side))
    def resting_limit_intent(self, lot: tuple[str, Decimal], side: Side) -> None:
        """A strategy asks for a limit order 3 % away from the mid: it rests until a shock."""
        symbol, qty = lot
        limit = _quantize_price(self.mid[symbol] * (D("0.97") if side is Side.BUY else D("1.03")))
        self._signal(symbol, side, qty, limit, reduce_only=False)
        self._step_done()

    @rule(symbol=st.sampled_from(SYMBOLS), whole=st.booleans())
    def reduce_only_intent(self, symbol: str, whole: bool) -> None:
        """Close all or half of a position (the position picks the side and caps the qty)."""
        held = abs(self._qty(symbol))
        half = (held / 2).quantize(D("0.00001"))
        qty = D(1_000) if whole or half == 0 else half
        self._signal(symbol, Side.SELL, qty, None, reduce_only=True)
        self._step_done()

    @precondition(lambda self: bool(self.resting))
    @rule(data=st.data())
    def cancel_resting_order(self, data: st.DataObject) -> None:
        """Cancel one of the limit orders resting at the exchange."""
        assert self.node is not None
        symbol, order_id = data.draw(st.sampled_from(self.resting), label="order")
        self.node.cancel(ACCOUNT, symbol, order_id)
        self._step_done()

    @rule(data=st.data())
    def crash_an_actor(self, data: st.DataObject) -> None:
        """Inject a failure into the risk supervisor, the gateway or a running position."""
        assert self.node is not None
        positions = sorted(
            child["name"]
            for child in self.node.actors()
            if child["name"].startswith("position/") and child["alive"]
        )
        name = data.draw(st.sampled_from(["risk", f"gateway.{ACCOUNT}", *positions]), label="actor")
        self.node.crash(name)
        self._step_done()

    @precondition(lambda self: self.halt_steps == 0)
    @rule(steps=st.integers(1, 4))
    def halt(self, steps: int) -> None:
        """The operator pulls the kill switch, and lifts it after `steps` more steps.

        The lift is part of the step that ends the halt (see `_step_done`): a
        separate resume rule would keep the system halted half of the time.
        """
        assert self.node is not None
        assert self.node.halt("kill switch (stateful test)") == "Halted"
        self.halt_steps = steps + 1
        self._step_done()

    @rule(step=st.sampled_from(("second", "cooldown", "day")))
    def time_passes(self, step: str) -> None:
        """A second, a whole cool-down, or up to the next trading day passes; timers fire.

        Overnight the feed keeps quoting: both symbols are quoted again at the
        new time (unchanged mids), so the new day does not start on stale marks.
        """
        assert self.node is not None
        now = self.clock.now_ns()
        if step == "second":
            self.clock.advance(NS)
        elif step == "cooldown":
            self.clock.advance((COOLDOWN_S + 1) * NS)
        else:
            self.clock.set((now // DAY_NS + 1) * DAY_NS + NS)
            for symbol in SYMBOLS:
                self._quote(symbol)
        self.node.tick()
        self._step_done()

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def every_exchange_fill_is_in_exactly_one_position_once(self) -> None:
        """The positions' trade ids partition the exchange's ledger; qty and fees match it."""
        ledger = [fill.trade_id for fill in self.fills]
        assert len(set(ledger)) == len(ledger), "the exchange repeated a trade id"
        owner: dict[str, str] = {}
        for name, state in self.positions.items():
            for trade_id in state["trade_ids"]:
                assert trade_id not in owner, f"{trade_id} applied in {owner[trade_id]} and {name}"
                owner[trade_id] = name
        missing, unknown = set(ledger) - set(owner), set(owner) - set(ledger)
        assert not missing and not unknown, f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        for name, state in self.positions.items():
            own = [fill for fill in self.fills if fill.symbol == state["symbol"]]
            with exact():
                assert D(state["qty"]) == sum((f.signed_qty for f in own), D(0)), name
                assert D(state["fees"]) == sum((f.fee for f in own), D(0)), name
            assert set(state["trade_ids"]) == {f.trade_id for f in own}, name

    @invariant()
    def equity_is_cash_plus_position_values(self) -> None:
        """Cash from the exchange's ledger + values at marks == starting equity + P&L, exactly."""
        with exact():
            cash = (
                STARTING_EQUITY
                - sum((f.signed_qty * f.price for f in self.fills), D(0))
                - sum((f.fee for f in self.fills), D(0))
            )
            values = D(0)
            realized = D(0)
            unrealized = D(0)
            for name, state in self.positions.items():
                qty = D(state["qty"])
                if qty != 0:
                    assert state["mark"] is not None, f"open position {name} has no mark"
                    values += qty * D(state["mark"])
                    unrealized += D(state["unrealized_pnl"])
                realized += D(state["realized_pnl"])
            equity = cash + values
            assert equity == STARTING_EQUITY + realized + unrealized
            assert D(self.risk["metrics"]["equity"]) == equity, "risk prices another book"

    @invariant()
    def no_risk_increasing_approval_while_restricted(self) -> None:
        """In CoolDown or Halted only orders that shrink |qty| without flipping are approved.

        Each approval of the step is judged against its symbol's qty at the
        start of the step, replayed from the exchange's ledger: a step sends at
        most one intent, and nothing fills between its start and that intent's check.
        """
        for record, held in self.new_decisions:
            if record["state"] not in RESTRICTED or not record["approved"]:
                continue
            order = self._order(record["order_id"])
            signed = D(order["qty"]) if order["side"] == Side.BUY.value else -D(order["qty"])
            with exact():
                after = held + signed
            shrinks = abs(after) < abs(held) and (after == 0 or (after > 0) == (held > 0))
            assert held != 0 and shrinks, (record, order, held)

    @invariant()
    def no_new_exposure_during_daily_loss_cooldown(self) -> None:
        """From a daily loss breach until its cool-down expires, no fill grows a symbol's |qty|.

        Replays this step's fills on the exchange's ledger, in order. Fills of
        orders that were already working when the breach was seen are exempt:
        CoolDown refuses new risk but does not cancel working orders.
        """
        cooldown = self.cooldown_before
        if cooldown is None:
            return
        qty = dict.fromkeys(SYMBOLS, D(0))
        for fill in self.fills[: len(self.fills) - len(self.new_fills)]:
            qty[fill.symbol] += fill.signed_qty
        for fill in self.new_fills:
            before = qty[fill.symbol]
            qty[fill.symbol] = before + fill.signed_qty
            if fill.ts_ns < cooldown.until_ns and fill.order_id not in cooldown.exempt:
                assert abs(qty[fill.symbol]) <= abs(before), (
                    f"{fill.trade_id} ({fill.symbol}, order {fill.order_id}) moved |qty| "
                    f"{abs(before)} -> {abs(qty[fill.symbol])} during a daily loss cool-down"
                )

    # -- helpers -----------------------------------------------------------------------

    def _move(self, symbol: str, bps: int) -> None:
        self.mid[symbol] = _quantize_price(self.mid[symbol] * (10_000 + bps) / 10_000)
        self._quote(symbol)

    def _quote(self, symbol: str) -> None:
        assert self.node is not None
        mid = self.mid[symbol]
        self.node.market(
            MarketUpdate(symbol, mid - TICK, mid + TICK, None, None, None, self.clock.now_ns())
        )

    def _signal(
        self, symbol: str, side: Side, qty: Decimal, limit: Decimal | None, *, reduce_only: bool
    ) -> None:
        assert self.node is not None
        self.intents += 1
        self.node.signal(
            OrderIntent(
                account=ACCOUNT,
                symbol=symbol,
                side=side,
                qty=qty,
                limit_price=limit,
                intent_id=f"intent-{self.intents}",
                reduce_only=reduce_only,
                reason="reduce" if reduce_only else "open",
                ts_ns=self.clock.now_ns(),
            )
        )

    def _qty(self, symbol: str) -> Decimal:
        state = self.positions.get(f"position/{ACCOUNT}/{symbol}")
        return D(0) if state is None else D(state["qty"])

    def _order(self, order_id: str) -> dict[str, Any]:
        (order,) = [
            state["orders"][order_id]
            for state in self.positions.values()
            if order_id in state["orders"]
        ]
        return order

    def _step_done(self) -> None:
        """Settle the node (lifting a halt whose time is up), then read what invariants check."""
        assert self.node is not None and self.exchange is not None
        fills_seen = len(self.fills)
        held = dict.fromkeys(SYMBOLS, D(0))  # each symbol's qty as the step began
        for fill in self.fills:
            held[fill.symbol] += fill.signed_qty
        self.node.settle()
        if self.halt_steps:
            self.halt_steps -= 1
            if self.halt_steps == 0:
                # Lifted after the step's work settled, so replays are deterministic.
                assert self.node.resume() != "Halted"
                self.node.settle()
        # The gateway is idle after settle: reading the exchange here is safe.
        self.fills = list(self.exchange.fills())
        self.positions = {name: self.node.inspect(name) for name in self.node.position_names()}
        self.risk = self.node.inspect("risk")
        self.new_decisions = []
        for record in self.risk["recent_decisions"]:
            if record["order_id"] not in self.decided:
                self.decided.add(record["order_id"])
                self.new_decisions.append((record, held[self._order(record["order_id"])["symbol"]]))
        self.new_fills = self.fills[fills_seen:]
        events = self.node.events.events()
        new_events = events[self.events_seen :]
        self.events_seen = len(events)
        self._track_daily_cooldown(new_events)
        self.resting = sorted(
            (state["symbol"], order_id)
            for state in self.positions.values()
            for order_id, order in state["orders"].items()
            if order["status"] in RESTING
        )

    def _track_daily_cooldown(self, new_events: list[Message]) -> None:
        self.cooldown_before = self.cooldown
        until = self.risk["cooldown_until_ns"]
        breached = any(
            isinstance(event, RiskEvent)
            and event.event == "state_change"
            and DAILY_BREACH in event.reason
            for event in new_events
        )
        if until is None:
            self.cooldown = None
        elif self.cooldown is None and breached:
            working = frozenset(
                order["client_order_id"]
                for state in self.positions.values()
                for order in state["orders"].values()
                if order["status"] not in TERMINAL
            )
            self.cooldown = _DailyCooldown(until, working)


SystemMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestSystemStateful = SystemMachine.TestCase


# -- the bugs this machine found, pinned as plain examples ------------------------------


@contextmanager
def running_system(
    seed: int, first_trades: list[tuple[tuple[str, Decimal], Side]]
) -> Iterator[SystemMachine]:
    """The machine above, started by hand and always stopped: for fixed sequences."""
    machine = SystemMachine()
    try:
        machine.start_node(seed=seed, first_trades=first_trades)
        yield machine
    finally:
        machine.teardown()


def test_two_reducing_orders_cannot_flip_a_position_in_cooldown() -> None:
    """Each alone reduces +0.5 BTC, together they open a short: the second is refused."""
    with running_system(1, [((BTC, D("0.5")), Side.BUY)]) as m:
        assert m._qty(BTC) == D("0.5")
        # mark 50000 -> 46000: 0.5 * (46000 - 50000.01) - 25.000005 fee = -2025.01 < -500
        m.market_shock(BTC, -800)
        assert m.risk["state"] == "CoolDown"
        m.resting_limit_intent((BTC, D("0.5")), Side.SELL)  # rests at 46000 * 1.03 = 47380
        m.opening_intent((BTC, D("0.5")), Side.SELL, marketable_limit=False)
        last_two = [(d["approved"], d["check"]) for d in m.risk["recent_decisions"][-2:]]
        assert last_two == [(True, ""), (False, "cooldown")]
        m.market_shock(BTC, 800)  # 46000 * 1.08 = 49680 crosses the resting sell
        assert m._qty(BTC) == 0
        m.no_new_exposure_during_daily_loss_cooldown()


def test_a_restarted_risk_supervisor_keeps_the_pnl_of_closed_positions() -> None:
    """A closed position's actor is down for good, yet its realized P&L stays in equity."""
    with running_system(1, [((BTC, D("0.5")), Side.BUY)]) as m:
        m.reduce_only_intent(BTC, whole=True)
        closed = m.positions[f"position/{ACCOUNT}/{BTC}"]
        # 0.5 * (49999.99 - 50000.01) - fees (25.000005 + 24.999995) = -50.01
        assert (closed["status"], D(closed["realized_pnl"])) == ("Closed", D("-50.01"))
        assert not any(
            a["alive"] for a in m.node.actors() if a["name"] == f"position/{ACCOUNT}/{BTC}"
        )
        m.node.crash("risk")
        m._step_done()
        # 100000 - 50.01
        assert D(m.risk["metrics"]["equity"]) == D("99949.99")


def test_a_restarted_risk_supervisor_judges_the_whole_book_at_once() -> None:
    """After a restart, a losing position heard before a winning one does not start a cool-down."""
    with running_system(1, [((BTC, D("0.5")), Side.BUY), ((ETH, D(15)), Side.BUY)]) as m:
        m.market_shock(ETH, 800)  # 15 * (3240 - 3000.01) = +3599.85
        m.market_shock(BTC, -800)  # 0.5 * (46000 - 50000.01) = -2000.005: alone, a breach
        # 100000 - fees (25.000005 + 45.00015) - 2000.005 + 3599.85
        assert (m.risk["state"], D(m.risk["metrics"]["equity"])) == ("Normal", D("101529.844845"))
        m.node.crash("risk")
        m._step_done()
        assert (m.risk["state"], D(m.risk["metrics"]["equity"])) == ("Normal", D("101529.844845"))
        assert m.risk["cooldown_until_ns"] is None
