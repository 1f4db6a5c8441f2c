"""Only posbus.actors.factory builds live position actors, risk supervisors and gateways.

Any other construction would be a second wiring that could forget a
collaborator (the snapshots, the corruption handler) on one host.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTORS = {"PositionActor", "RiskSupervisor", "GatewayActor"}
FACTORY = ROOT / "actors" / "factory.py"


def constructions(source: str) -> list[str]:
    """`Actor(...)` and `Actor.start(...)` calls of the three actor classes, by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ACTORS:
            found.append(f"{node.lineno}: {func.id}(...)")
        elif (
            isinstance(func, ast.Attribute)
            and func.attr == "start"
            and isinstance(func.value, ast.Name)
            and func.value.id in ACTORS
        ):
            found.append(f"{node.lineno}: {func.value.id}.start(...)")
    return found


def test_no_module_but_the_factory_constructs_an_actor() -> None:
    sources = [
        path
        for top in ("actors", "adapters", "bus", "bench")
        for path in (ROOT / top).rglob("*.py")
        if path != FACTORY
    ]
    assert len(sources) > 50
    elsewhere = {
        str(path.relative_to(ROOT)): hits
        for path in sources
        if (hits := constructions(path.read_text(encoding="utf-8")))
    }
    assert elsewhere == {}


def test_the_scan_sees_both_ways_of_constructing_an_actor() -> None:
    source = (
        "a = PositionActor(None, account='A')\n"
        "b = RiskSupervisor.start(link, limits=limits)\n"
        "c = GatewayActor.shell(outbox)\n"
    )
    assert constructions(source) == ["1: PositionActor(...)", "2: RiskSupervisor.start(...)"]
