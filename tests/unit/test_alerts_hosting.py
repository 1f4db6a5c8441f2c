"""Where the alerts worker sits in a stack: its place in the plan, no command service, its port."""

from __future__ import annotations

from posbus.adapters.launcher_layout import plan, worker_name
from posbus.adapters.metrics_http import metrics_port


def test_the_alerts_worker_starts_right_after_the_broker_only_when_asked() -> None:
    names = [spec.name for spec in plan(["acc"], 2, demo=True, alerts=True)]
    assert names == [
        "broker",
        "alerts",
        "risk",
        "gateway.acc",
        "positions.0",
        "positions.1",
        "feed",
    ]
    assert "alerts" not in [spec.name for spec in plan(["acc"], 1, demo=False)]


def test_the_alerts_worker_answers_no_commands_and_has_its_own_metrics_port() -> None:
    (alerts,) = [s for s in plan(["acc"], 1, demo=False, alerts=True) if s.role == "alerts"]
    assert alerts.service is None
    assert worker_name("alerts", None, "acc") == "alerts"
    ports = {metrics_port(9400, n) for n in ("broker", "risk", "gateway.acc", "feed", "alerts")}
    assert metrics_port(9400, "alerts") == 9404 and len(ports) == 5
