"""Simulation and test tooling: venues, markets and faults that are not real.

The simulated exchange and its backtest wrapper, the Binance emulator, the
random-walk market, the demos and the chaos harness. Commands, demos and
backtests may use it; a live adapter (ccxt gateway, journal stores, launcher)
must never import it (an import-linter contract, docs/architecture.md).
"""
