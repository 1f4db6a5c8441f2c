"""Structured logs: one JSON object per line carrying the `extra=` context."""

import io
import json
import logging
from decimal import Decimal

from posbus.adapters.log_format import JsonFormatter, TextFormatter, configure_logging


def _record(**extra):
    logger = logging.getLogger("posbus.test")
    return logger.makeRecord(
        "posbus.test", logging.INFO, __file__, 1, "order %s", ("submitted",), None, extra=extra
    )


def test_json_line_has_message_level_and_every_extra_field():
    line = JsonFormatter().format(_record(order_id="o-1", symbol="BTC/USDT", qty=Decimal("0.1")))
    data = json.loads(line)
    assert data["msg"] == "order submitted"
    assert data["level"] == "INFO"
    assert data["order_id"] == "o-1"
    assert data["symbol"] == "BTC/USDT"
    assert data["qty"] == "0.1"  # Decimals stay exact, as strings
    assert "\n" not in line


def test_text_line_appends_key_value_pairs():
    line = TextFormatter().format(_record(order_id="o-1"))
    assert "order submitted" in line
    assert "order_id=o-1" in line


def test_configure_logging_routes_posbus_logs_to_the_stream_as_json():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        logging.getLogger("posbus.actors.test").info("hello", extra={"stream": "risk"})
        logging.getLogger("posbus.actors.test").debug("hidden")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["stream"] == "risk"
