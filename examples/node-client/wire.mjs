// The posbus wire format, version 1, as docs/wire-format.md describes it.
//
// Envelopes are msgpack arrays [kind, version, seq, ts_ns, sender, body].
// Decimals stay strings from end to end: this module checks them against
// the documented grammar and compares them exactly (BigInt), never as
// binary floats. 64-bit integers (ts_ns) are BigInt when they do not fit a
// JavaScript number exactly.

import { decode as msgpackDecode, encode as msgpackEncode } from "@msgpack/msgpack";

export const VERSION = 1;
export const MAX_FRAME = 1 << 20; // docs/wire-format.md: 1 MiB by default
export const KINDS = ["market_update", "execution_signal", "risk_event", "command", "reply"];
export const CLIENT_PROTOCOL = "PBC1";

const UINT63_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;

export class WireError extends Error {
  constructor(message) {
    super(message);
    this.name = "WireError";
  }
}

// -- decimals -----------------------------------------------------------------------------

/** True when `text` is a decimal string of the wire grammar (at most 64 characters). */
export function isDecimal(text) {
  return typeof text === "string" && text.length <= 64 && DECIMAL.test(text);
}

/** [mantissa, scale] of a decimal string: "-12.50" -> [-1250n, 2]. */
function scaled(text) {
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = (negative ? text.slice(1) : text).split(".");
  const mantissa = BigInt(whole + fraction);
  return [negative ? -mantissa : mantissa, fraction.length];
}

/** -1, 0 or 1 as decimal string `a` is below, equal to or above `b`; exact. */
export function compareDecimal(a, b) {
  const [ma, sa] = scaled(a);
  const [mb, sb] = scaled(b);
  const x = ma * 10n ** BigInt(Math.max(sb - sa, 0));
  const y = mb * 10n ** BigInt(Math.max(sa - sb, 0));
  return x < y ? -1 : x > y ? 1 : 0;
}

function checkDecimal(value, where, sign) {
  if (!isDecimal(value)) {
    throw new WireError(`${where}: must be a decimal string, got ${JSON.stringify(value)}`);
  }
  const c = compareDecimal(value, "0");
  if ((sign === ">0" && c <= 0) || (sign === ">=0" && c < 0)) {
    throw new WireError(`${where}: must be a decimal ${sign}, got ${JSON.stringify(value)}`);
  }
}

// -- scalar checks ------------------------------------------------------------------------

function isInt(value) {
  return (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";
}

function checkUint63(value, where) {
  if (!isInt(value) || BigInt(value) < 0n || BigInt(value) > UINT63_MAX) {
    throw new WireError(`${where}: must be an int 0..2^63-1, got ${String(value)}`);
  }
}

function checkId(value, where) {
  // 1 to 256 Unicode code points.
  if (typeof value !== "string" || value.length === 0 || [...value].length > 256) {
    throw new WireError(`${where}: must be an id (1..256 characters), got ${JSON.stringify(value)}`);
  }
}

function checkText(value, where) {
  if (typeof value !== "string" || [...value].length > 4096) {
    throw new WireError(`${where}: must be a text (0..4096 characters)`);
  }
}

function checkBool(value, where) {
  if (typeof value !== "boolean") {
    throw new WireError(`${where}: must be a bool, got ${String(value)}`);
  }
}

function checkOneOf(value, allowed, where) {
  if (!allowed.includes(value)) {
    throw new WireError(`${where}: must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  }
}

function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// -- bodies: positional -> named ----------------------------------------------------------

// Each field: [name, check]; a check is (value, where) => void. `?` fields may be nil.
const id = checkId;
const text = checkText;
const uint63 = checkUint63;
const bool = checkBool;
const dec = (sign) => (v, w) => checkDecimal(v, w, sign);
const opt = (check) => (v, w) => (v === null ? undefined : check(v, w));
const side = (v, w) => checkOneOf(v, ["buy", "sell"], w);
const liquidity = (v, w) => checkOneOf(v, ["maker", "taker"], w);
const decimalMap = (v, w) => {
  if (!isMap(v) || Object.keys(v).length > 256) throw new WireError(`${w}: must be a map`);
  for (const [key, item] of Object.entries(v)) {
    checkId(key, `${w} key`);
    checkDecimal(item, `${w}.${key}`, "any");
  }
};
const anyMap = (v, w) => {
  if (!isMap(v)) throw new WireError(`${w}: must be a map`);
};

const MARKET_UPDATE = [
  ["symbol", id],
  ["bid", dec(">0")],
  ["ask", dec(">0")],
  ["last", opt(dec(">0"))],
  ["bid_size", opt(dec(">=0"))],
  ["ask_size", opt(dec(">=0"))],
  ["ts_ns", uint63],
];

const SIGNALS = {
  intent: [
    ["account", id],
    ["symbol", id],
    ["side", side],
    ["qty", dec(">0")],
    ["limit_price", opt(dec(">0"))],
    ["intent_id", id],
    ["reduce_only", bool],
    ["reason", text],
    ["ts_ns", uint63],
  ],
  submit: [
    ["order_id", id],
    ["client_order_id", id],
    ["account", id],
    ["symbol", id],
    ["side", side],
    ["qty", dec(">0")],
    ["limit_price", opt(dec(">0"))],
    ["ts_ns", uint63],
  ],
  ack: [
    ["order_id", id],
    ["client_order_id", id],
    ["exchange_order_id", id],
    ["ts_ns", uint63],
  ],
  fill: [
    ["order_id", id],
    ["client_order_id", id],
    ["trade_id", id],
    ["account", id],
    ["symbol", id],
    ["side", side],
    ["qty", dec(">0")],
    ["price", dec(">0")],
    ["fee", dec("any")],
    ["fee_currency", id],
    ["liquidity", liquidity],
    ["ts_ns", uint63],
  ],
  cancel_request: [
    ["order_id", id],
    ["ts_ns", uint63],
  ],
  cancelled: [
    ["order_id", id],
    ["reason", text],
    ["ts_ns", uint63],
  ],
  reject: [
    ["order_id", id],
    ["reason", text],
    ["ts_ns", uint63],
  ],
  expired: [
    ["order_id", id],
    ["ts_ns", uint63],
  ],
};

const RISK_EVENT = [
  ["event", id],
  ["state", id],
  ["previous_state", opt(id)],
  ["reason", text],
  ["account", opt(id)],
  ["symbol", opt(id)],
  ["values", decimalMap],
  ["ts_ns", uint63],
];

const COMMAND = [
  ["name", id],
  ["args", anyMap],
  ["request_id", id],
];

const REPLY = [
  ["request_id", id],
  ["ok", bool],
  ["result", anyMap],
  ["error", opt(anyMap)],
];

function named(fields, values, where) {
  if (!Array.isArray(values) || values.length !== fields.length) {
    throw new WireError(`${where}: body must be an array of ${fields.length}`);
  }
  const out = {};
  fields.forEach(([name, check], i) => {
    check(values[i], `${where}.${name}`);
    out[name] = values[i];
  });
  return out;
}

function decodeBody(kind, body) {
  switch (kind) {
    case "market_update": {
      const quote = named(MARKET_UPDATE, body, kind);
      if (compareDecimal(quote.bid, quote.ask) > 0) {
        throw new WireError(`${kind}: crossed quote, bid ${quote.bid} > ask ${quote.ask}`);
      }
      return quote;
    }
    case "execution_signal": {
      if (!Array.isArray(body) || typeof body[0] !== "string" || !Object.hasOwn(SIGNALS, body[0])) {
        throw new WireError(`${kind}: unknown signal type ${JSON.stringify(body?.[0])}`);
      }
      return { signal: body[0], ...named(SIGNALS[body[0]], body.slice(1), `${kind}.${body[0]}`) };
    }
    case "risk_event":
      return named(RISK_EVENT, body, kind);
    case "command":
      return named(COMMAND, body, kind);
    case "reply": {
      const reply = named(REPLY, body, kind);
      if ((reply.error === null) !== reply.ok) {
        throw new WireError("reply: error must be nil exactly when ok is true");
      }
      if (reply.error !== null) {
        const keys = Object.keys(reply.error).sort().join(",");
        if (keys !== "message,transient,type") {
          throw new WireError("reply.error: must have exactly type, message, transient");
        }
      }
      return reply;
    }
    default:
      throw new WireError(`unknown kind ${JSON.stringify(kind)}`);
  }
}

// -- envelopes ----------------------------------------------------------------------------

function refuseBinary(value, where) {
  // No field is binary: bin decodes to Uint8Array, the timestamp ext to Date,
  // any other ext to ExtData. A reader rejects them all.
  if (value instanceof Uint8Array || value instanceof Date) {
    throw new WireError(`${where}: bin and ext values are not allowed`);
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => refuseBinary(item, `${where}[${i}]`));
  } else if (value !== null && typeof value === "object") {
    if (Object.getPrototypeOf(value) !== Object.prototype) {
      throw new WireError(`${where}: bin and ext values are not allowed`);
    }
    for (const [key, item] of Object.entries(value)) refuseBinary(item, `${where}.${key}`);
  } else if (typeof value === "number" && !Number.isInteger(value)) {
    throw new WireError(`${where}: floats are not allowed (decimals travel as strings)`);
  }
}

const DECODE_OPTIONS = {
  useBigInt64: true, // ts_ns does not fit a JavaScript number exactly
  mapKeyConverter: (key) => {
    if (typeof key !== "string") throw new WireError("map keys must be strings");
    return key;
  },
};

/** The envelope in `bytes`, as {kind, version, seq, ts_ns, sender, body: {named fields}}. */
export function decodeEnvelope(bytes) {
  if (bytes.length > MAX_FRAME) throw new WireError(`frame of ${bytes.length} bytes is over 1 MiB`);
  let raw;
  try {
    raw = msgpackDecode(bytes, DECODE_OPTIONS); // throws on trailing bytes and on 0xc1
  } catch (error) {
    throw error instanceof WireError ? error : new WireError(`not one msgpack value: ${error.message}`);
  }
  refuseBinary(raw, "envelope");
  if (!Array.isArray(raw) || raw.length !== 6) throw new WireError("envelope: not an array of 6");
  const [kind, version, seq, tsNs, sender, body] = raw;
  if (!KINDS.includes(kind)) throw new WireError(`envelope.kind: unknown ${JSON.stringify(kind)}`);
  if (version !== VERSION) throw new WireError(`envelope.version: ${String(version)} is not 1`);
  checkUint63(seq, "envelope.seq");
  checkUint63(tsNs, "envelope.ts_ns");
  checkId(sender, "envelope.sender");
  return { kind, version, seq, ts_ns: tsNs, sender, body: decodeBody(kind, body) };
}

/** A JavaScript value with every int outside Number's exact range as BigInt. */
function exactInts(value) {
  if (typeof value === "bigint") {
    if (value < INT64_MIN || value > UINT63_MAX) throw new WireError(`int ${value} out of range`);
    // Small BigInts travel in the smallest int format, like every other writer's.
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (typeof value === "number") {
    // A number that is no safe integer would be packed as a float64: refuse it.
    if (!Number.isSafeInteger(value)) {
      throw new WireError(`${value}: not an exact int (send decimals as strings, big ints as BigInt)`);
    }
    return value;
  }
  if (Array.isArray(value)) return value.map(exactInts);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, exactInts(v)]));
  }
  return value;
}

/** The bytes of a `command` envelope: [name, args, request_id] sent as `sender`'s `seq`. */
export function encodeCommand({ name, args, requestId, seq, sender, tsNs }) {
  const envelope = ["command", VERSION, seq, tsNs, sender, [name, args, requestId]];
  return msgpackEncode(exactInts(envelope), { useBigInt64: true });
}

/** Nanoseconds since the Unix epoch, as BigInt (it is over 2^53). */
export function nowNs() {
  return BigInt(Date.now()) * 1_000_000n;
}

// -- topics -------------------------------------------------------------------------------

// How many `|`-ended parts follow each topic code (docs/wire-format.md, Topics and shards).
const TOPIC_PARTS = { md: 1, ex: 2, rk: 1, xp: 2 };
const BAR = 0x7c; // "|"

/** [topic, envelope bytes] of an event frame `TOPIC + ENVELOPE`. */
export function splitFrame(frame) {
  const code = Buffer.from(frame.subarray(0, 2)).toString("latin1");
  const parts = TOPIC_PARTS[code];
  if (parts === undefined || frame[2] !== BAR) {
    throw new WireError(`unknown topic code ${JSON.stringify(code)}`);
  }
  // The envelope may contain "|" bytes: count the topic's parts, never search from the end.
  let end = 2;
  for (let i = 0; i < parts; i += 1) {
    end = frame.indexOf(BAR, end + 1);
    if (end < 0) throw new WireError("truncated topic");
  }
  return [Buffer.from(frame.subarray(0, end + 1)).toString("utf8"), frame.subarray(end + 1)];
}

// -- sharding -----------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as zlib computes it. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The positions shard of account+symbol: CRC-32(UTF-8(account NUL symbol)) mod shards. */
export function shardOf(account, symbol, shards) {
  return crc32(Buffer.from(`${account}\u0000${symbol}`, "utf8")) % shards;
}

// -- JSON with exact big ints -------------------------------------------------------------

/** JSON text of `value`; a BigInt is written as a plain JSON number, digit for digit. */
export function toJson(value) {
  if (typeof value === "bigint") return value.toString();
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(toJson).join(", ")}]`;
  if (typeof value === "object") {
    const items = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${toJson(v)}`);
    return `{${items.join(", ")}}`;
  }
  return JSON.stringify(value);
}

/**
 * Parse JSON text with every int kept exact (BigInt beyond 2^53) and every
 * number with a fraction or exponent refused: decimals travel as strings.
 */
export function parseJsonExact(textIn) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < textIn.length && " \t\n\r".includes(textIn[i])) i += 1;
  };
  const value = () => {
    ws();
    const ch = textIn[i];
    if (ch === "{") {
      i += 1;
      const out = {};
      ws();
      if (textIn[i] === "}") {
        i += 1;
        return out;
      }
      for (;;) {
        ws();
        if (textIn[i] !== '"') fail("expected a string key");
        const key = string();
        ws();
        if (textIn[i] !== ":") fail("expected ':'");
        i += 1;
        Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (textIn[i] === ",") i += 1;
        else if (textIn[i] === "}") {
          i += 1;
          return out;
        } else fail("expected ',' or '}'");
      }
    }
    if (ch === "[") {
      i += 1;
      const out = [];
      ws();
      if (textIn[i] === "]") {
        i += 1;
        return out;
      }
      for (;;) {
        out.push(value());
        ws();
        if (textIn[i] === ",") i += 1;
        else if (textIn[i] === "]") {
          i += 1;
          return out;
        } else fail("expected ',' or ']'");
      }
    }
    if (ch === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (textIn.startsWith(word, i)) {
        i += word.length;
        return result;
      }
    }
    const match = /^-?(0|[1-9][0-9]*)([.eE][-+0-9.eE]*)?/.exec(textIn.slice(i));
    if (!match) fail("unexpected character");
    if (match[2]) fail(`number ${match[0]} has a fraction or exponent: send a decimal as a string`);
    i += match[0].length;
    const big = BigInt(match[0]);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  };
  const string = () => {
    const match = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(textIn.slice(i));
    if (!match) fail("bad string");
    i += match[0].length;
    return JSON.parse(match[0]);
  };
  const result = value();
  ws();
  if (i !== textIn.length) fail("trailing characters");
  return result;
}
