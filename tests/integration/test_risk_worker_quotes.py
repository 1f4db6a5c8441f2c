"""The risk worker reading marks from market data (`[positions] risk_marks = "market"`).

A real broker and risk worker (in-process, real sockets): it subscribes to the
market topics, a quote reaches the risk supervisor as the symbol's mark, and a
gap in a quote-only sender's frames asks no position to re-send anything.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

from inprocess_workers import in_process_bus
from stack_harness import wait_for

from posbus.actors.control import ExposureChanged, Inspect
from posbus.actors.model.risk import PositionExposure
from posbus.actors.risk_worker import RiskWorker
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.envelope import Envelope
from posbus.bus.messages import MarketUpdate
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_MARKET, market_topic

SYMBOL = "BTC/USDT"


def _received(sender: str, seq: int, message: MarketUpdate) -> Received:
    envelope = Envelope(message.KIND, message.VERSION, seq, time.time_ns(), sender, message)
    return Received(market_topic(SYMBOL), envelope)


def test_the_risk_worker_takes_marks_from_quotes_and_a_quote_gap_asks_no_resync() -> None:
    with in_process_bus() as bus:
        settings = replace(bus.settings("risk", "risk"), risk_reads_market=True)
        worker = RiskWorker(
            settings,
            journal=MemoryJournal(),
            clock=bus.clock,
            limits=bus.node.limits,
            starting_equity=bus.node.starting_equity,
        )
        bus.start(worker)
        assert PREFIX_MARKET in worker.prefixes()
        resyncs: list[int] = []
        worker.request_resync = lambda: resyncs.append(1)  # type: ignore[method-assign]

        now = time.time_ns()
        # The position tells its fill (1 BTC, priced at 60000.5) ...
        held = PositionExposure(
            "default", SYMBOL, Decimal(1), Decimal("60000.5"), now, Decimal(0), Decimal(0),
            "default", Decimal(1),
        )  # fmt: skip
        worker.tell("risk", worker.risk, ExposureChanged(held, now))
        # ... then a quote of the feed moves the mark: risk prices 1 BTC at its mid, 61001.
        quote = MarketUpdate(SYMBOL, Decimal(61000), Decimal(61002), None, None, None, now + 1)
        worker.on_events([_received("feed", 1, quote)])

        def gross() -> str | None:
            value = worker.risk.ask(Inspect(), timeout=5)["metrics"]["gross"]
            return value if value == "61001" else None

        assert wait_for("the quote's mid priced in", gross) == "61001"
        worker.on_gap("feed", 2, 9)  # quotes are whole marks: nothing to repair
        assert resyncs == []
        worker.on_gap("positions.0", 2, 9)  # lost exposures: the positions re-send theirs
        assert resyncs == [1]
