// Unit tests of the facade's own logic (no engine, no browser): the
// quality figures read from a stats report, the E-model MOS, the event
// emitter, and the error classes. Run by check.sh on the built dist/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mos, summarize } from "../dist/stats.js";
import { Emitter } from "../dist/emitter.js";
import { CallFailedError, ConnectionError, InvalidStateError, SipError, engine, fromEngine } from "../dist/errors.js";

test("MOS follows the E-model: best when clean, lower with loss and delay", () => {
  assert.equal(mos(20, 0), 4.4);
  assert.equal(mos(20, 5), 3.9, "5 % loss costs half a point");
  assert.ok(mos(400, 0) < mos(100, 0));
  assert.ok(mos(20, 100) >= 1);
});

test("a stats report becomes RTT, jitter, loss and levels", () => {
  const report = new Map([
    ["p", { type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: 0.012 }],
    ["in", { type: "inbound-rtp", kind: "audio", packetsReceived: 990, packetsLost: 10, jitter: 0.004, bytesReceived: 160000, audioLevel: 0.3 }],
    ["out", { type: "outbound-rtp", kind: "audio", packetsSent: 1000, bytesSent: 170000 }],
    ["mic", { type: "media-source", kind: "audio", audioLevel: 0.5 }],
  ]);
  const s = summarize(report);
  assert.equal(s.rttMs, 12);
  assert.equal(s.jitterMs, 4);
  assert.equal(s.packetsLost, 10);
  assert.equal(s.lossPercent, 1);
  assert.equal(s.packetsSent, 1000);
  assert.equal(s.localAudioLevel, 0.5);
  assert.equal(s.remoteAudioLevel, 0.3);
  assert.ok(s.mos > 4 && s.mos < 4.4, `${s.mos}`);
  const empty = summarize(new Map());
  assert.equal(empty.rttMs, undefined);
  assert.equal(empty.lossPercent, 0);
});

test("the emitter: on, once, off, listens, and a throwing handler does not stop the others", () => {
  class E extends Emitter {
    constructor() { super(["x"]); }
    fire(...args) { this.emit("x", ...args); }
  }
  const e = new E();
  // A misspelt event or a handler that is no function is refused at once.
  assert.throws(() => e.on("y", () => {}), RangeError);
  assert.throws(() => e.on(Symbol("x"), () => {}), TypeError);
  assert.throws(() => e.on("x", "handler"), TypeError);
  assert.throws(() => e.once("x", null), TypeError);
  const seen = [];
  const off = e.on("x", (v) => seen.push(`on:${v}`));
  e.once("x", (v) => seen.push(`once:${v}`));
  const error = console.error;
  console.error = () => {};
  e.on("x", () => { throw new Error("boom"); });
  e.on("x", (v) => seen.push(`after:${v}`));
  e.fire(1);
  off();
  e.fire(2);
  console.error = error;
  assert.deepEqual(seen, ["on:1", "once:1", "after:1", "after:2"]);
  // Whether anyone listens (a transfer request nobody handles is declined).
  const quiet = new E();
  assert.equal(quiet.listens("x"), false);
  const stop = quiet.once("x", () => {});
  assert.equal(quiet.listens("x"), true);
  stop();
  assert.equal(quiet.listens("x"), false);
});

test("errors carry the SIP status and can be told apart", () => {
  const e = new CallFailedError(486, "Busy Here");
  assert.ok(e instanceof SipError && e instanceof Error);
  assert.equal(e.code, 486);
  assert.equal(e.message, "486 Busy Here");
  assert.equal(e.name, "CallFailedError");
  assert.ok(!(new ConnectionError("x") instanceof SipError));
});

test("the engine's refusals become the package's errors", () => {
  // A bad argument stays the TypeError or RangeError the engine threw.
  const bad = Object.assign(new TypeError("target is not a SIP URI"), { code: "bad_target" });
  assert.equal(fromEngine(bad), bad);
  const range = Object.assign(new RangeError("999 is not a status to decline with (300 to 699)"), { code: "bad_code" });
  assert.equal(fromEngine(range), range);
  // The wrong moment is an InvalidStateError carrying the engine's code.
  const state = fromEngine(Object.assign(new Error("call 3: another change of its session is under way"), { code: "change_pending" }));
  assert.ok(state instanceof InvalidStateError);
  assert.equal(state.code, "change_pending");
  assert.equal(state.message, "call 3: another change of its session is under way");
  // Anything else passes through untouched.
  const other = new Error("the microphone was refused");
  assert.equal(fromEngine(other), other);
  assert.throws(() => engine(() => { throw Object.assign(new Error("not connected"), { code: "not_connected" }); }),
    (e) => e instanceof InvalidStateError && e.code === "not_connected");
  assert.equal(engine(() => 7), 7);
});
