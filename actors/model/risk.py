"""The risk model's public surface: import risk types from here.

The pieces live one concept per module (`risk_limits`, `risk_state`,
`risk_exposure`, `risk_request`, `risk_engine` and the parts it is built
of); this module only gathers the public ones. Nothing here reads a clock,
starts a thread or does I/O.
"""

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest, RiskDecision
from posbus.actors.model.risk_state import RiskState, RiskTransition

__all__ = [
    "OrderRequest",
    "PositionExposure",
    "RiskDecision",
    "RiskEngine",
    "RiskLimits",
    "RiskState",
    "RiskTransition",
]
