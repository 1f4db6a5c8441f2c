// The codec against the worked examples of docs/wire-format.md: `node --test`.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

import {
  WireError,
  compareDecimal,
  crc32,
  decodeEnvelope,
  encodeCommand,
  isDecimal,
  parseJsonExact,
  splitFrame,
  toJson,
} from "../wire.mjs";

const DOC = fileURLToPath(new URL("../../../docs/wire-format.md", import.meta.url));

/** Each worked example: {kind, topic, json, bytes}. */
function examples() {
  const text = readFileSync(DOC, "utf8");
  const found = [];
  const block = /<!-- example: (\w+) -->([\s\S]*?)<!-- \/example -->/g;
  for (const [, kind, body] of text.matchAll(block)) {
    const topic = /^Topic: `([^`]+)`/m.exec(body)?.[1] ?? null;
    const json = /```json\n([\s\S]*?)\n```/.exec(body)[1];
    const hex = /```hex\n([\s\S]*?)\n```/.exec(body)[1].replace(/\s+/g, "");
    found.push({ kind, topic, json: parseJsonExact(json), bytes: Buffer.from(hex, "hex") });
  }
  return found;
}

test("the page has one example per kind", () => {
  assert.deepEqual(
    examples().map((e) => e.kind),
    ["market_update", "execution_signal", "risk_event", "command", "reply"],
  );
});

for (const example of examples()) {
  test(`${example.kind}: the documented bytes decode to the documented array`, () => {
    const envelope = decodeEnvelope(example.bytes);
    const [kind, version, seq, tsNs, sender, body] = example.json;
    assert.deepEqual(
      [envelope.kind, envelope.version, BigInt(envelope.seq), BigInt(envelope.ts_ns), envelope.sender],
      [kind, version, BigInt(seq), BigInt(tsNs), sender],
    );
    // The named body holds the positional values, in order.
    const values = Object.values(envelope.body);
    const flat = JSON.parse(toJson(values));
    assert.deepEqual(flat, JSON.parse(toJson(body)));
    if (example.topic !== null) {
      const frame = Buffer.concat([Buffer.from(example.topic, "utf8"), example.bytes]);
      const [topic, rest] = splitFrame(frame);
      assert.equal(topic, example.topic);
      assert.ok(Buffer.from(rest).equals(example.bytes));
    }
  });
}

test("command: the encoder writes exactly the documented bytes", () => {
  const command = examples().find((e) => e.kind === "command");
  const [, , seq, tsNs, sender, [name, args, requestId]] = command.json;
  const bytes = encodeCommand({ name, args, requestId, seq, sender, tsNs });
  assert.equal(Buffer.from(bytes).toString("hex"), command.bytes.toString("hex"));
});

test("a reader refuses what the page says it must", () => {
  const quote = examples().find((e) => e.kind === "market_update").bytes;
  assert.throws(() => decodeEnvelope(Buffer.concat([quote, Buffer.from([0])])), WireError); // trailing byte
  assert.throws(() => decodeEnvelope(quote.subarray(0, quote.length - 1)), WireError); // truncated
  assert.throws(() => decodeEnvelope(Buffer.from("c1", "hex")), WireError);
  // A crossed quote: bid "50000.2" > ask "50000.1" (swap the two fixstrs of the example).
  const crossed = Buffer.from(quote);
  const bid = crossed.indexOf(Buffer.from("50000.1"));
  crossed.write("50000.2", bid, "latin1");
  crossed.write("50000.1", bid + 8, "latin1");
  assert.throws(() => decodeEnvelope(crossed), /crossed/);
  // A bin value where a decimal belongs (c4 = bin8).
  const binary = Buffer.from(quote);
  binary[bid - 1] = 0xc4;
  assert.throws(() => decodeEnvelope(binary), WireError);
});

test("decimals: the grammar, exact comparison", () => {
  for (const ok of ["0", "-0", "1.50", "50000.15", "-1250.50"]) assert.ok(isDecimal(ok), ok);
  for (const bad of ["+1", "1e5", "007", "NaN", " 1", "1_000", ".5", "5.", "", 5]) {
    assert.ok(!isDecimal(bad), String(bad));
  }
  assert.equal(compareDecimal("1.50", "1.5"), 0);
  assert.equal(compareDecimal("-0", "0"), 0);
  assert.equal(compareDecimal("0.1", "0.09999999999999999999"), 1);
  assert.equal(compareDecimal("-2", "-1.999"), -1);
});

test("JSON: big ints stay exact, floats are refused", () => {
  assert.equal(parseJsonExact("1700000000000000001"), 1700000000000000001n);
  assert.equal(toJson({ ts_ns: 1700000000000000001n }), '{"ts_ns": 1700000000000000001}');
  assert.throws(() => parseJsonExact('{"qty": 0.5}'), /decimal as a string/);
  assert.throws(() => encodeCommand({ name: "x", args: { qty: 0.5 }, requestId: "r", seq: 1, sender: "s", tsNs: 1n }), WireError);
});

test("crc32 is zlib's", () => {
  const bytes = Buffer.from("acc-1\u0000BTC/USDT", "utf8");
  if (typeof zlib.crc32 === "function") assert.equal(crc32(bytes), zlib.crc32(bytes));
  assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
});
