"""Which risk supervisors a risk worker runs: one per scope of limits.

A stack with one account (no `[accounts]`, no firm-wide limits) has one
scope, None, judging every position: the risk worker as it always was.
A stack with several accounts has one scope per account (its own limits and
starting equity) and, when firm-wide limits are set, the firm scope (None)
over every account, starting from the sum of the accounts' equities.
An order must pass its account's supervisor and the firm's. Pure values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from posbus.actors.model.risk import RiskLimits
from posbus.actors.risk_supervisor import risk_stream


@dataclass(frozen=True, slots=True)
class RiskScope:
    """The limits one risk supervisor judges: an account's, or (account None) the stack's."""

    account: str | None
    limits: RiskLimits
    starting_equity: Decimal

    @property
    def name(self) -> str:
        """Its actor's name and journal stream: `risk` or `risk.ACCOUNT`."""
        return risk_stream(self.account)


def risk_scopes(
    accounts: Mapping[str, tuple[RiskLimits, Decimal]],
    firm: RiskLimits | None,
    *,
    per_account: bool,
) -> list[RiskScope]:
    """The scopes of a stack: per account (when `per_account`), then the firm's.

    Without `per_account` there must be exactly one account: its limits
    become the one scope None (its journal stream stays `risk`).
    """
    if not per_account:
        if len(accounts) != 1 or firm is not None:
            raise ValueError("one scope needs exactly one account and no firm-wide limits")
        ((limits, equity),) = accounts.values()
        return [RiskScope(None, limits, equity)]
    scopes = [RiskScope(name, limits, equity) for name, (limits, equity) in accounts.items()]
    if firm is not None:
        total = sum((equity for _, equity in accounts.values()), Decimal(0))
        scopes.append(RiskScope(None, firm, total))
    return scopes
