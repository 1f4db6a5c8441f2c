"""The worked examples of docs/wire-format.md are what the codec reads and writes.

Each example gives an envelope as a JSON array and its bytes in hex: plain
msgpack must pack the array into exactly those bytes (the page is right about
msgpack), the codec must decode them and encode the message back into the
same bytes (the page is right about posbus), and an event's documented topic
must be the one its publisher uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from posbus.bus.codec import decode, encode
from posbus.bus.topics import topic_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"
KINDS = ["market_update", "execution_signal", "risk_event", "command", "reply"]
# Examples of a kind's later versions, named "KIND version N".
VERSIONED = ["execution_signal version 2"]
EXAMPLES = KINDS + VERSIONED
_EXAMPLE = re.compile(r"<!-- example: (\w+(?: version \d+)?) -->(.*?)<!-- /example -->", re.S)


def _examples() -> dict[str, str]:
    return dict(_EXAMPLE.findall(DOC.read_text(encoding="utf-8")))


def _block(text: str, language: str) -> str:
    found = re.search(rf"```{language}\s*(.*?)```", text, re.S)
    assert found is not None, f"no {language} block"
    return found.group(1)


def _parts(name: str) -> tuple[Any, bytes, str]:
    text = _examples()[name]
    topic = re.search(r"Topic: `([^`]+)`", text)
    return (
        json.loads(_block(text, "json")),
        bytes.fromhex(_block(text, "hex")),
        topic.group(1) if topic else "",
    )


def test_the_page_has_one_example_per_kind_and_later_version() -> None:
    assert sorted(_examples()) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_plain_msgpack_packs_the_json_array_into_the_documented_bytes(name: str) -> None:
    array, data, _ = _parts(name)
    kind, _, version = name.partition(" version ")
    assert array[0] == kind
    assert array[1] == int(version or 1)
    assert msgpack.packb(array) == data


@pytest.mark.parametrize("name", EXAMPLES)
def test_codec_decodes_the_documented_bytes_and_encodes_them_back(name: str) -> None:
    array, data, _ = _parts(name)
    envelope = decode(data)
    assert (envelope.kind, envelope.version, envelope.seq, envelope.ts_ns, envelope.sender) == (
        tuple(array[:5])
    )
    again = encode(envelope.message, seq=envelope.seq, sender=envelope.sender, ts_ns=envelope.ts_ns)
    assert again == data


@pytest.mark.parametrize("name", ["market_update", "execution_signal", "risk_event", *VERSIONED])
def test_an_event_example_names_the_topic_its_publisher_uses(name: str) -> None:
    _, data, topic = _parts(name)
    assert topic_for(decode(data).message) == topic.encode()
