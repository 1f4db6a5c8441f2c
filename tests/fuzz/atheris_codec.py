"""Coverage-guided fuzzing of the codec with atheris (optional; not run in CI).

Run it for as long as you like (atheris is not a project dependency):

    /tmp/venv/bin/pip install atheris
    /tmp/venv/bin/python tests/fuzz/atheris_codec.py -max_total_time=600 -max_len=4096

The invariant is the one of tests/integration/test_fuzz_codec.py: `decode`
raises WireError, or returns an envelope that re-encodes to a frame decoding
to the same envelope. Anything else (another exception, a mismatch) is a
crash that atheris reports with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from posbus.bus.codec import decode, encode
    from posbus.bus.wire_error import WireError


def one_input(data: bytes) -> None:
    """Decode `data`; a decoded envelope must survive a round trip unchanged."""
    try:
        envelope = decode(data)
    except WireError:
        return
    again = encode(envelope.message, seq=envelope.seq, sender=envelope.sender, ts_ns=envelope.ts_ns)
    if decode(again) != envelope:
        raise AssertionError(f"round trip changed the envelope: {envelope!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
