"""Pure domain logic of posbus: orders, positions, portfolio, risk arithmetic.

Nothing in this package starts a thread, opens a socket, reads a clock or does
I/O. The same code runs live, in recovery replay and in backtests; callers pass
timestamps in explicitly.
"""
