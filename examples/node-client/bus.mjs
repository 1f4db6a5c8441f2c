// The posbus bus from a client's side, as docs/bus.md describes it: a DEALER
// on the broker's `commands` endpoint, a SUB on its `events_out` endpoint,
// CURVE keys when the bus runs over tcp.

import { randomUUID } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import * as zmq from "zeromq";

import {
  CLIENT_PROTOCOL,
  MAX_FRAME,
  WireError,
  decodeEnvelope,
  encodeCommand,
  nowNs,
  shardOf,
  splitFrame,
} from "./wire.mjs";

/** A usage or configuration problem: nothing was sent. */
export class ClientError extends Error {}

/** The request could not be queued (no connection to the broker): it was not sent. */
export class NotSent extends Error {}

/** No reply in time after the request was sent: it may or may not have been executed. */
export class UnknownOutcome extends Error {}

/** The stack answered with a failure reply. */
export class CommandFailed extends Error {
  constructor(service, reply) {
    super(`${reply.error.type}: ${reply.error.message}`);
    this.service = service;
    this.reply = reply;
  }
}

// -- the stack: what `posbus status --json` (or RUN_DIR/run.json) says --------------------

/**
 * Where to connect and which services exist, from a `posbus status --json`
 * document (workers: a list) or a run.json (workers: keyed by name).
 */
export function describeStack(doc) {
  const bus = doc?.bus;
  if (!bus || typeof bus.commands !== "string" || typeof bus.events_out !== "string") {
    throw new ClientError("the status document has no `bus` entry (a stack started by an older posbus?)");
  }
  const workers = Array.isArray(doc.workers) ? doc.workers : Object.values(doc.workers ?? {});
  const positions = workers.filter((w) => w.role === "positions");
  // shard "I/N": N is the number of positions shards.
  const counts = new Set(positions.map((w) => Number(String(w.shard).split("/")[1])));
  if (positions.length === 0 || counts.size !== 1) {
    throw new ClientError("the status document lists no consistent positions shards");
  }
  const shards = [...counts][0];
  const gateway = workers.find((w) => w.role === "gateway");
  return {
    bus,
    shards,
    positionServices: Array.from({ length: shards }, (_, i) => `positions.${i}`),
    // The stack's account: its gateway is `gateway.ACCOUNT`.
    account: gateway ? gateway.name.slice("gateway.".length) : null,
  };
}

/** The positions service owning account+symbol (docs/wire-format.md, Topics and shards). */
export function positionsService(stack, account, symbol) {
  return `positions.${shardOf(account, symbol, stack.shards)}`;
}

// -- CURVE --------------------------------------------------------------------------------

function certificateKey(file, which) {
  // zmq.auth certificate files, as `posbus keys generate` writes them:
  //   curve
  //       public-key = "<40 z85 characters>"
  //       secret-key = "<40 z85 characters>"      (NAME.key_secret only)
  const text = readFileSync(file, "utf8");
  const match = new RegExp(`^\\s*${which}\\s*=\\s*"([^"]{40})"`, "m").exec(text);
  if (!match) throw new ClientError(`${file}: no ${which} in this key file`);
  return match[1];
}

/**
 * The zeromq.js CURVE options of a client socket: its own key pair (NAME.key_secret)
 * and the broker's public key (broker.key). {} when the bus needs no CURVE (ipc).
 */
export function curveOptions(bus, { secretFile, serverPublicFile } = {}) {
  if (!bus.curve) return {};
  if (!secretFile || !serverPublicFile) {
    throw new ClientError(
      "this bus runs over tcp with CURVE: pass --curve-secret NAME.key_secret " +
        "(its NAME.key listed in the broker's allowed_clients) and --curve-server-public broker.key",
    );
  }
  if (statSync(secretFile).mode & 0o077) {
    throw new ClientError(`${secretFile}: secret key readable by others (chmod 600 it)`);
  }
  return {
    curveServerKey: certificateKey(serverPublicFile, "public-key"),
    curvePublicKey: certificateKey(secretFile, "public-key"),
    curveSecretKey: certificateKey(secretFile, "secret-key"),
  };
}

function isTimeout(error) {
  return error?.code === "EAGAIN";
}

// -- commands -----------------------------------------------------------------------------

/** Commands through the broker: frames [PBC1, SERVICE, ENVELOPE] each way. */
export class CommandClient {
  constructor(bus, { curve = {}, sender = `node-client.${process.pid}` } = {}) {
    this.sender = sender;
    this.seq = 0;
    this.discarded = 0;
    this.dealer = new zmq.Dealer({
      // Queue a request only on a completed connection (docs/bus.md, Socket setup):
      // a send that times out was never sent.
      immediate: true,
      linger: 0,
      maxMessageSize: MAX_FRAME,
      sendHighWaterMark: 1000,
      receiveHighWaterMark: 1000,
      ...curve,
    });
    this.dealer.connect(bus.commands);
  }

  /** Send command `name` to `service` once and wait for its reply: {request_id, ok, result, error}. */
  async request(service, name, args = {}, { timeoutMs = 5000 } = {}) {
    const requestId = randomUUID().replaceAll("-", "");
    this.seq += 1;
    const envelope = encodeCommand({ name, args, requestId, seq: this.seq, sender: this.sender, tsNs: nowNs() });
    const deadline = Date.now() + timeoutMs;
    this.dealer.sendTimeout = timeoutMs;
    try {
      await this.dealer.send([CLIENT_PROTOCOL, service, envelope]);
    } catch (error) {
      if (isTimeout(error)) throw new NotSent(`no connection to the broker in ${timeoutMs} ms: not sent`);
      throw error;
    }
    // Never re-sent: after the send, a timeout is an unknown outcome.
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      this.dealer.receiveTimeout = remaining;
      let frames;
      try {
        frames = await this.dealer.receive();
      } catch (error) {
        if (isTimeout(error)) break;
        throw error;
      }
      if (frames.length !== 3 || frames[0].toString("latin1") !== CLIENT_PROTOCOL) {
        this.discarded += 1;
        continue;
      }
      let reply;
      try {
        reply = decodeEnvelope(frames[2]);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        this.discarded += 1;
        continue;
      }
      // A reply to an earlier request that timed out is not this one's.
      if (reply.kind !== "reply" || reply.body.request_id !== requestId) {
        this.discarded += 1;
        continue;
      }
      return { service: frames[1].toString("utf8"), sender: reply.sender, seq: reply.seq, ...reply.body };
    }
    throw new UnknownOutcome(
      `no reply from ${service} to ${name} (request ${requestId}) in ${timeoutMs} ms: it may or may not have run`,
    );
  }

  /** The result of command `name`; CommandFailed for a failure reply. */
  async call(service, name, args = {}, options = {}) {
    const reply = await this.request(service, name, args, options);
    if (!reply.ok) throw new CommandFailed(service, reply);
    return reply.result;
  }

  close() {
    this.dealer.close();
  }
}

// -- events -------------------------------------------------------------------------------

/** A SUB on the broker's events_out, filtered by topic prefixes (`md|`, `ex|acc-1|`, `rk|`). */
export class EventSubscriber {
  constructor(bus, prefixes, { curve = {} } = {}) {
    this.sub = new zmq.Subscriber({
      linger: 0,
      maxMessageSize: MAX_FRAME,
      receiveHighWaterMark: 100000,
      ...curve,
    });
    this.sub.connect(bus.events_out);
    for (const prefix of prefixes) this.sub.subscribe(prefix);
    this.decodeErrors = 0;
    this.lastError = null;
  }

  /**
   * The next event, {topic, kind, version, seq, ts_ns, sender, body}, or null
   * when none came within `timeoutMs`. Frames that do not decode are counted
   * and skipped, never returned.
   */
  async next(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return null;
      this.sub.receiveTimeout = remaining;
      let frames;
      try {
        frames = await this.sub.receive();
      } catch (error) {
        if (isTimeout(error)) return null;
        throw error;
      }
      try {
        // One frame per event: TOPIC + ENVELOPE.
        if (frames.length !== 1) throw new WireError("an event is one frame");
        const [topic, bytes] = splitFrame(frames[0]);
        return { topic, ...decodeEnvelope(bytes) };
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        this.decodeErrors += 1;
        this.lastError = error.message;
      }
    }
  }

  close() {
    this.sub.close();
  }
}
