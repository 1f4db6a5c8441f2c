#!/usr/bin/env node
// An example posbus client in Node.js: events, positions, orders and cancels
// over the bus, written from docs/wire-format.md, docs/bus.md and
// docs/commands.md. See README.md in this folder.

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import {
  ClientError,
  CommandClient,
  CommandFailed,
  EventSubscriber,
  NotSent,
  UnknownOutcome,
  curveOptions,
  describeStack,
  positionsService,
} from "./bus.mjs";
import { isDecimal, parseJsonExact, toJson } from "./wire.mjs";

const USAGE = `usage: node client.mjs --status FILE [options] COMMAND ...

FILE is what \`posbus status --json\` prints (or RUN_DIR/run.json); - reads it from stdin.

commands:
  subscribe [PREFIX ...]       print events whose topic starts with a PREFIX (default md|):
                               md| quotes, md|BTC/USDT| one symbol, ex| execution signals,
                               ex|ACCOUNT| one account, rk| risk events
      --count N                stop after N events (exit 3 if --for ends first)
      --for S                  stop after S seconds (default: run until interrupted)
  positions                    every position of every shard (positions.list, page by page)
      --page-size N            positions per page (1..1000, default 1000)
  orders                       the orders of every shard (positions.orders)
      --symbol S  --order-status STATUS (repeatable)  --limit N
  order buy|sell SYMBOL QTY    place an order (positions.order); QTY and prices are decimal strings
      --limit-price P          a limit order (default: a market order)
      --account A              default: the stack's account
      --reduce-only  --reason TEXT  --intent-id ID
      --no-wait                do not wait for the risk decision and the venue's answer
  cancel ORDER_ID              cancel an order (positions.cancel), wait until it is cancelled
      --no-wait
  raw SERVICE NAME [ARGS]      send any command; ARGS a JSON object (ints exact, no floats).
                               SERVICE "positions" means the shard of ARGS' account and symbol

options:
  --status FILE                the stack's endpoints (required)
  --json                       print JSON (one object; subscribe: one object per line)
  --timeout S                  per request (default 5)
  --wait-for S                 order/cancel: how long to wait for the outcome (default 10)
  --curve-secret FILE          tcp + CURVE: this client's NAME.key_secret
  --curve-server-public FILE   tcp + CURVE: the broker's broker.key

exit codes: 0 done; 1 the stack refused (error reply, order rejected, not cancelled);
2 usage or configuration; 3 outcome unknown (timed out).`;

const OPTIONS = {
  status: { type: "string" },
  json: { type: "boolean", default: false },
  timeout: { type: "string", default: "5" },
  "wait-for": { type: "string", default: "10" },
  "curve-secret": { type: "string" },
  "curve-server-public": { type: "string" },
  count: { type: "string" },
  for: { type: "string" },
  "page-size": { type: "string", default: "1000" },
  symbol: { type: "string" },
  "order-status": { type: "string", multiple: true },
  limit: { type: "string" },
  "limit-price": { type: "string" },
  account: { type: "string" },
  "reduce-only": { type: "boolean", default: false },
  reason: { type: "string" },
  "intent-id": { type: "string" },
  "no-wait": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

const ACCEPTED = ["Accepted", "PartiallyFilled", "Filled"];
const REFUSED = ["Rejected", "Error", "Cancelled", "Expired"];
const CANCEL_ENDED = ["Cancelled", "Filled", "Rejected", "Error", "Expired"];
const POLL_MS = 50;

const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_USAGE = 2;
const EXIT_UNKNOWN = 3;

// -- helpers ------------------------------------------------------------------------------

function out(options, json, text) {
  process.stdout.write(options.json ? `${toJson(json)}\n` : `${text}\n`);
}

function seconds(value, name) {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) throw new ClientError(`--${name}: a number of seconds > 0, got ${value}`);
  return s * 1000;
}

function integer(value, name) {
  if (!/^[0-9]+$/.test(value ?? "")) throw new ClientError(`--${name}: an integer, got ${value}`);
  return Number(value);
}

function decimal(value, name) {
  // Decimals travel as strings: check the wire grammar, never parse into a float.
  if (!isDecimal(value)) throw new ClientError(`${name}: a plain decimal like 0.5 or 64000, got ${value}`);
  return value;
}

function readStatus(file) {
  if (!file) throw new ClientError("--status FILE is required (posbus status --json > FILE, or - for stdin)");
  const text = readFileSync(file === "-" ? 0 : file, "utf8");
  return describeStack(JSON.parse(text));
}

function table(rows, columns) {
  const cells = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? "-" : String(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (values) => values.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd();
  return [line(columns), ...cells.map(line)].join("\n");
}

function describeEvent(event) {
  const fields = Object.entries(event.body)
    .map(([k, v]) => `${k}=${typeof v === "object" && v !== null ? toJson(v) : String(v)}`)
    .join(" ");
  return `${event.topic} ${event.kind} ${event.sender}#${event.seq} ${fields}`;
}

/** The account and symbol of order id ACCOUNT:SYMBOL:SEQ. */
function orderParts(orderId) {
  const head = orderId.slice(0, Math.max(orderId.lastIndexOf(":"), 0));
  const colon = head.indexOf(":");
  if (colon <= 0 || colon === head.length - 1) throw new ClientError(`order id ${orderId} is not ACCOUNT:SYMBOL:SEQ`);
  return [head.slice(0, colon), head.slice(colon + 1)];
}

/** Poll the order's position (positions.inspect) until its status is one of `ended`; bounded. */
async function waitForOrder(client, service, stream, orderId, ended, options) {
  const deadline = Date.now() + seconds(options["wait-for"], "wait-for");
  const timeoutMs = seconds(options.timeout, "timeout");
  for (;;) {
    const state = await client.call(service, "positions.inspect", { actor: stream }, { timeoutMs });
    const order = state.orders?.[orderId] ?? {};
    if (ended.includes(order.status)) return { order, settled: true };
    if (Date.now() >= deadline) return { order, settled: false };
    await sleep(POLL_MS);
  }
}

// -- commands -----------------------------------------------------------------------------

async function subscribe(stack, curve, prefixes, options) {
  const wanted = options.count === undefined ? Infinity : integer(options.count, "count");
  const until = options.for === undefined ? Infinity : Date.now() + seconds(options.for, "for");
  const subscriber = new EventSubscriber(stack.bus, prefixes.length ? prefixes : ["md|"], { curve });
  let stopped = false;
  const stop = () => {
    stopped = true;
    subscriber.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const lastSeq = new Map();
  let seen = 0;
  try {
    while (seen < wanted && Date.now() < until) {
      let event;
      try {
        event = await subscriber.next(Math.min(until - Date.now(), 1000));
      } catch (error) {
        if (stopped) break;
        throw error;
      }
      if (event === null) continue;
      // Sequence numbers are consecutive per sender: lower is stale, higher is a gap.
      const last = lastSeq.get(event.sender);
      const seq = BigInt(event.seq);
      if (last !== undefined && seq <= last) continue;
      if (last !== undefined && seq > last + 1n) {
        process.stderr.write(`gap: ${event.sender} ${last + 1n}..${seq - 1n} not received\n`);
      }
      lastSeq.set(event.sender, seq);
      seen += 1;
      out(options, event, describeEvent(event));
    }
  } finally {
    if (!stopped) subscriber.close();
    if (subscriber.decodeErrors) {
      process.stderr.write(`${subscriber.decodeErrors} frames refused: ${subscriber.lastError}\n`);
    }
  }
  if (Number.isFinite(wanted) && seen < wanted && !stopped) {
    process.stderr.write(`${seen} of ${wanted} events before --for ended\n`);
    return EXIT_UNKNOWN;
  }
  return EXIT_OK;
}

async function positions(stack, client, options) {
  const limit = integer(options["page-size"], "page-size");
  const timeoutMs = seconds(options.timeout, "timeout");
  const all = [];
  const pages = {};
  for (const service of stack.positionServices) {
    pages[service] = 0;
    let after = null;
    do {
      const page = await client.call(service, "positions.list", { after, limit }, { timeoutMs });
      pages[service] += 1;
      all.push(...page.positions);
      after = page.next;
    } while (after !== null);
  }
  all.sort((a, b) => `${a.account}\u0000${a.symbol}`.localeCompare(`${b.account}\u0000${b.symbol}`));
  const columns = ["account", "symbol", "status", "qty", "avg_entry_price", "realized_pnl", "unrealized_pnl", "fees", "mark"];
  out(options, { positions: all, pages }, table(all, columns));
  return EXIT_OK;
}

async function orders(stack, client, options) {
  const args = {};
  if (options["order-status"]) args.status = options["order-status"];
  if (options.symbol) args.symbol = options.symbol;
  if (options.limit !== undefined) args.limit = integer(options.limit, "limit");
  const timeoutMs = seconds(options.timeout, "timeout");
  const all = [];
  const shards = {};
  for (const service of stack.positionServices) {
    const result = await client.call(service, "positions.orders", args, { timeoutMs });
    all.push(...result.orders);
    shards[service] = { total: result.total, truncated: result.truncated };
  }
  const columns = ["order_id", "side", "qty", "limit_price", "filled_qty", "status", "reason"];
  out(options, { orders: all, shards }, table(all, columns));
  return EXIT_OK;
}

async function order(stack, client, positionals, options) {
  const [side, symbol, qty] = positionals;
  if (!["buy", "sell"].includes(side) || !symbol || positionals.length !== 3) {
    throw new ClientError("order buy|sell SYMBOL QTY");
  }
  const account = options.account ?? stack.account;
  if (!account) throw new ClientError("--account: the status document names no gateway account");
  const args = { account, symbol, side, qty: decimal(qty, "QTY"), reduce_only: options["reduce-only"] };
  if (options["limit-price"] !== undefined) args.limit_price = decimal(options["limit-price"], "--limit-price");
  if (options.reason !== undefined) args.reason = options.reason;
  if (options["intent-id"] !== undefined) args.intent_id = options["intent-id"];
  const service = positionsService(stack, account, symbol);
  const placed = await client.call(service, "positions.order", args, { timeoutMs: seconds(options.timeout, "timeout") });
  const doc = { service, ...placed, status: null, reason: null, settled: false };
  if (!options["no-wait"]) {
    const { order: state, settled } = await waitForOrder(
      client, service, placed.stream, placed.order_id, [...ACCEPTED, ...REFUSED], options,
    );
    Object.assign(doc, { status: state.status ?? null, reason: state.reason ?? null, settled, order: state });
  }
  const outcome = doc.settled ? `${doc.status}${doc.reason ? `: ${doc.reason}` : ""}` : "sent";
  out(options, doc, `order ${doc.order_id}: ${outcome}`);
  if (options["no-wait"]) return EXIT_OK;
  if (!doc.settled) return EXIT_UNKNOWN;
  return ACCEPTED.includes(doc.status) ? EXIT_OK : EXIT_REFUSED;
}

async function cancel(stack, client, positionals, options) {
  if (positionals.length !== 1) throw new ClientError("cancel ORDER_ID");
  const [orderId] = positionals;
  const [account, symbol] = orderParts(orderId);
  const service = positionsService(stack, account, symbol);
  const sent = await client.call(service, "positions.cancel", { order_id: orderId }, {
    timeoutMs: seconds(options.timeout, "timeout"),
  });
  const doc = { service, ...sent, status: null, reason: null, settled: false };
  if (!options["no-wait"]) {
    const { order: state, settled } = await waitForOrder(client, service, sent.stream, orderId, CANCEL_ENDED, options);
    Object.assign(doc, { status: state.status ?? null, reason: state.reason ?? null, settled, order: state });
  }
  out(options, doc, `cancel ${orderId}: ${doc.settled ? doc.status : "sent"}`);
  if (options["no-wait"]) return EXIT_OK;
  if (!doc.settled) return EXIT_UNKNOWN;
  return doc.status === "Cancelled" ? EXIT_OK : EXIT_REFUSED;
}

async function raw(stack, client, positionals, options) {
  if (positionals.length < 2 || positionals.length > 3) throw new ClientError("raw SERVICE NAME [ARGS_JSON]");
  const [target, name, argsText = "{}"] = positionals;
  let args;
  try {
    args = parseJsonExact(argsText);
  } catch (error) {
    throw new ClientError(`ARGS: ${error.message}`);
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) throw new ClientError("ARGS: a JSON object");
  let service = target;
  if (target === "positions") {
    const account = typeof args.account === "string" ? args.account : stack.account;
    if (typeof args.symbol !== "string" || !account) {
      throw new ClientError('SERVICE "positions" needs ARGS with a symbol (and an account, or a gateway in the status)');
    }
    service = positionsService(stack, account, args.symbol);
  }
  const reply = await client.request(service, name, args, { timeoutMs: seconds(options.timeout, "timeout") });
  const doc = { service, request_id: reply.request_id, ok: reply.ok, result: reply.result, error: reply.error };
  const text = reply.ok ? toJson(reply.result) : `error ${reply.error.type}: ${reply.error.message}`;
  out(options, doc, text);
  return reply.ok ? EXIT_OK : EXIT_REFUSED;
}

// -- main ---------------------------------------------------------------------------------

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    process.stderr.write(`${error.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const { values: options, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (options.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return options.help ? EXIT_OK : EXIT_USAGE;
  }
  const commands = ["subscribe", "positions", "orders", "order", "cancel", "raw"];
  let client = null;
  try {
    if (!commands.includes(command)) throw new ClientError(`unknown command ${command}: ${commands.join(", ")}`);
    const stack = readStatus(options.status);
    const curve = curveOptions(stack.bus, {
      secretFile: options["curve-secret"],
      serverPublicFile: options["curve-server-public"],
    });
    if (command === "subscribe") return await subscribe(stack, curve, rest, options);
    client = new CommandClient(stack.bus, { curve });
    switch (command) {
      case "positions":
        return await positions(stack, client, options);
      case "orders":
        return await orders(stack, client, options);
      case "order":
        return await order(stack, client, rest, options);
      case "cancel":
        return await cancel(stack, client, rest, options);
      default:
        return await raw(stack, client, rest, options);
    }
  } catch (error) {
    if (error instanceof CommandFailed) {
      const { reply } = error;
      out(
        options,
        { service: error.service, request_id: reply.request_id, ok: false, result: reply.result, error: reply.error },
        `error ${reply.error.type}: ${reply.error.message}`,
      );
      return EXIT_REFUSED;
    }
    if (error instanceof ClientError || error instanceof SyntaxError || error?.code === "ENOENT") {
      process.stderr.write(`node-client: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof NotSent || error instanceof UnknownOutcome) {
      process.stderr.write(`node-client: ${error.message}\n`);
      return EXIT_UNKNOWN;
    }
    throw error;
  } finally {
    client?.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
