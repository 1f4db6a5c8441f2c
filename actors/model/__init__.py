"""The domain of posbus: orders, positions, risk arithmetic, and its ports.

The ports are the types the rest of posbus implements or exchanges with the
domain: the clock (`clock`), what exchanges report (`exchange_reports`,
`exchange_events`). Nothing in this package starts a thread, opens a socket,
reads a clock or does I/O, and it imports nothing else of posbus (an
import-linter contract, docs/architecture.md). The same code runs live, in
recovery replay and in backtests; callers pass timestamps in explicitly.
"""
