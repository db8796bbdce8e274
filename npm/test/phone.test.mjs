// The facade's Phone and Call driven by a fake engine (no wasm, no
// browser): how engine events reach calls and the app, a call returned at
// once and bound to its id later, one change of a session at a time, and a
// transfer's outcome. Run by check.sh on the built dist/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Phone, CallFailedError, InvalidStateError } from "../dist/index.js";

/** A fake engine: records what the facade asks, and lets the test emit events and settle calls. */
function fakeEngine() {
  const fake = {
    asked: [],
    emit: null,
    placing: [],
    holds: [],
    make(emit) {
      fake.emit = emit;
      const record = (name) => (...args) => { fake.asked.push([name, ...args]); };
      return {
        connect: record("connect"),
        close: record("close"),
        free: record("free"),
        register: record("register"),
        unregister: record("unregister"),
        checkTarget(target) {
          if (!target.startsWith("sip:")) {
            throw Object.assign(new TypeError("target is not a SIP URI"), { code: "bad_target" });
          }
        },
        call(target) {
          fake.asked.push(["call", target]);
          return new Promise((resolve, reject) => fake.placing.push({ resolve, reject }));
        },
        acceptReferral(from) {
          fake.asked.push(["acceptReferral", from]);
          return new Promise((resolve, reject) => fake.placing.push({ resolve, reject }));
        },
        declineReferral: record("declineReferral"),
        ringing: record("ringing"),
        answer: async (...args) => { fake.asked.push(["answer", ...args]); },
        decline: record("decline"),
        hangup: record("hangup"),
        hold(call, held) {
          fake.asked.push(["hold", call, held]);
          return new Promise((resolve) => fake.holds.push(resolve));
        },
        restartIce: async () => undefined,
        video(call, on) {
          fake.asked.push(["video", call, on]);
          return new Promise((resolve) => fake.holds.push(resolve));
        },
        sendsVideo: () => true,
        transfer: record("transfer"),
        transferReplacing: record("transferReplacing"),
        subscribe(...args) {
          fake.asked.push(["subscribe", ...args]);
          return (fake.subs = (fake.subs ?? 0) + 1);
        },
        unsubscribe: record("unsubscribe"),
        mute: () => true,
        sendDtmf: () => true,
        sendDtmfInfo: record("sendDtmfInfo"),
        message: () => 1,
        callMessage: record("callMessage"),
        info(...args) {
          fake.asked.push(["info", ...args]);
          return (fake.infos = (fake.infos ?? 0) + 1);
        },
        record(...args) {
          fake.asked.push(["record", ...args]);
          return (fake.infos = (fake.infos ?? 0) + 1);
        },
        remoteStream: () => undefined,
        localStream: () => undefined,
        stats: async () => undefined,
      };
    },
  };
  return fake;
}

const settle = () => new Promise((r) => setTimeout(r, 0));

test("a call is returned at once, bound to its id when its INVITE is out, and follows the engine's events", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const seen = [];
  phone.on("calling", (c) => seen.push(["calling", c]));
  phone.on("ringing", (c) => seen.push(["ringing", c]));

  const call = phone.call("sip:bob@pbx.test");
  assert.equal(call.id, 0, "no id while it is placed");
  assert.equal(call.state, "calling");
  assert.deepEqual(phone.calls, [call]);

  // The engine announces it before its promise gives the id.
  fake.emit("calling", { call: 7, to: "sip:bob@pbx.test" });
  assert.deepEqual(seen, [], "held until the call is known");
  fake.placing.shift().resolve(7);
  await settle();
  assert.equal(call.id, 7);
  assert.deepEqual(seen, [["calling", call]]);

  fake.emit("ringing", { call: 7 });
  assert.equal(call.state, "ringing");
  assert.deepEqual(seen.at(-1), ["ringing", call]);
  fake.emit("accepted", { call: 7 });
  await call.accepted;
  assert.equal(call.state, "established");

  fake.emit("hangup", { call: 7, reason: "BYE" });
  assert.deepEqual(await call.ended, { code: undefined, reason: "BYE" });
  assert.deepEqual(phone.calls, []);
});

test("a call hung up while it is placed ends once its INVITE is out; one that cannot be placed ends with why", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);

  const early = phone.call("sip:bob@pbx.test");
  const ended = early.hangup();
  assert.equal(fake.asked.filter(([n]) => n === "hangup").length, 0, "nothing to hang up yet");
  fake.placing.shift().resolve(3);
  await settle();
  assert.deepEqual(fake.asked.find(([n]) => n === "hangup").slice(0, 2), ["hangup", 3]);
  fake.emit("hangup", { call: 3, code: 487, reason: "Request Terminated" });
  assert.deepEqual(await ended, { code: 487, reason: "Request Terminated" });
  await assert.rejects(early.accepted, (e) => e instanceof CallFailedError && e.code === 487);

  const refused = phone.call("sip:bob@pbx.test");
  const hangups = [];
  refused.on("hangup", (info) => hangups.push(info));
  fake.placing.shift().reject(Object.assign(new Error("not connected"), { code: "not_connected" }));
  await assert.rejects(refused.accepted, (e) => e instanceof InvalidStateError && e.code === "not_connected");
  assert.deepEqual(await refused.ended, { reason: "not connected" });
  assert.deepEqual(hangups, [{ reason: "not connected" }]);
  assert.equal(refused.state, "ended");
});

test("a bad target throws at once; the engine's snake_case events reach the app in camelCase", () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  assert.throws(() => phone.call("tel:+1555"), TypeError);
  assert.throws(() => phone.call(42), TypeError);
  assert.equal(fake.asked.filter(([n]) => n === "call").length, 0, "nothing asked of the engine");

  const got = [];
  phone.on("registrationFailed", (d) => got.push(["registrationFailed", d]));
  phone.on("keepaliveTimeout", () => got.push(["keepaliveTimeout"]));
  fake.emit("registration_failed", { code: 403, reason: "Forbidden" });
  fake.emit("keepalive_timeout", {});
  assert.deepEqual(got, [
    ["registrationFailed", { code: 403, reason: "Forbidden" }],
    ["keepaliveTimeout"],
  ]);
  assert.equal(phone.registered, false);
});

test("changes of a session go one at a time, each to its answer, and hold follows the core's events", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  fake.emit("incoming", { call: 5, from: "sip:carol@pbx.test", hasOffer: true, headers: {} });
  const [call] = phone.calls;
  const answered = call.answer();
  fake.emit("accepted", { call: 5 });
  await answered;

  const first = call.hold();
  const second = call.unhold();
  await settle();
  assert.deepEqual(fake.asked.filter(([n]) => n === "hold").map((a) => a.slice(0, 3)), [["hold", 5, true]],
    "the second waits for the first");
  fake.holds.shift()();
  fake.emit("updated", { call: 5 });
  fake.emit("hold", { call: 5, held: true, by: "local" });
  await first;
  assert.equal(call.held, true);
  await settle();
  assert.deepEqual(fake.asked.filter(([n]) => n === "hold").map((a) => a.slice(0, 3)),
    [["hold", 5, true], ["hold", 5, false]]);
  fake.holds.shift()();
  fake.emit("update_failed", { call: 5, code: 488, reason: "Not Acceptable Here" });
  await assert.rejects(second, (e) => e.code === 488);
  assert.equal(call.held, true, "a refused change changes nothing");

  fake.emit("hold", { call: 5, held: true, by: "remote" });
  assert.equal(call.heldByRemote, true);
});

test("a transfer resolves when the far end reports the target answered, then hangs up", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  fake.emit("incoming", { call: 9, from: "sip:dan@pbx.test", hasOffer: true, headers: {} });
  const [call] = phone.calls;
  const answered = call.answer();
  fake.emit("accepted", { call: 9 });
  await answered;

  const done = call.transfer("sip:erin@pbx.test");
  assert.deepEqual(fake.asked.find(([n]) => n === "transfer").slice(0, 3), ["transfer", 9, "sip:erin@pbx.test"]);
  fake.emit("transfer", { call: 9, code: 202, reason: "Accepted", done: false });
  fake.emit("transfer", { call: 9, code: 200, reason: "OK", done: true });
  const hungUp = new Promise((resolve) => {
    const poll = () => (fake.asked.some(([n, id]) => n === "hangup" && id === 9) ? resolve() : setTimeout(poll, 0));
    poll();
  });
  await hungUp;
  fake.emit("hangup", { call: 9, reason: "BYE" });
  await done;
});

test("a transfer that fails rejects with the engine's outcome and leaves the call up", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  fake.emit("incoming", { call: 4, from: "sip:dan@pbx.test", hasOffer: true, headers: {} });
  const [call] = phone.calls;
  const answered = call.answer();
  fake.emit("accepted", { call: 4 });
  await answered;

  const done = call.transfer("sip:erin@pbx.test");
  fake.emit("transfer", { call: 4, code: 202, reason: "Accepted", done: false });
  fake.emit("transfer", { call: 4, code: 408, reason: "Transfer Outcome Never Came", done: true });
  await assert.rejects(done, (e) => e.code === 408 && e.reason === "Transfer Outcome Never Came");
  assert.equal(fake.asked.filter(([n]) => n === "hangup").length, 0, "the call stays up");
  assert.equal(call.state, "established");
});

test("an incoming call rings when the app says so, and only while it is incoming", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  fake.emit("incoming", { call: 6, from: "sip:fay@pbx.test", hasOffer: true, headers: {} });
  const [call] = phone.calls;
  call.ring({ headers: { "X-Queue": "sales" } });
  assert.deepEqual(fake.asked.find(([n]) => n === "ringing"), ["ringing", 6, { "X-Queue": "sales" }]);
  const answered = call.answer();
  fake.emit("accepted", { call: 6 });
  await answered;
  assert.throws(() => call.ring(), InvalidStateError);
});

test("arguments are checked before the state, and name themselves; nothing reaches the engine", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const call = phone.call("sip:bob@pbx.test");
  fake.placing.shift().resolve(4);
  await settle();
  const named = (kind, name) => (e) => e instanceof kind && e.message.includes(name);

  assert.throws(() => phone.call("sip:bob@pbx.test", { audio: "yes" }), named(TypeError, "options.audio"));
  assert.throws(() => phone.call(call), named(TypeError, "target"));
  assert.throws(() => phone.call("sip:" + "x".repeat(2000) + "@a"), named(RangeError, "target"));
  assert.throws(() => phone.call("sip:bob@pbx.test", { headers: { "X-A": "1\r\nX-B: 2" } }), named(TypeError, "options.headers"));
  assert.throws(() => phone.call("sip:bob@pbx.test", { headers: { "Bad Name": "v" } }), named(TypeError, "options.headers"));
  assert.throws(() => phone.call("sip:bob@pbx.test", { headers: { "X-Big": "v".repeat(1025) } }), named(RangeError, "options.headers"));
  // The call rings (not up): a wrong argument is still the argument's error.
  assert.throws(() => call.decline(42), named(RangeError, "code"));
  assert.throws(() => call.decline(486, "Busy\r\nX-A: 1"), named(TypeError, "reason"));
  await assert.rejects(call.sendDtmf(5), named(TypeError, "digits"));
  await assert.rejects(call.sendDtmf("1".repeat(65)), named(RangeError, "digits"));
  await assert.rejects(call.sendDtmf("1", { method: "inband" }), named(RangeError, "options.method"));
  await assert.rejects(call.sendDtmf("1", { durationMs: 10 }), named(RangeError, "options.durationMs"));
  await assert.rejects(call.transfer(call), named(TypeError, "target"));
  await assert.rejects(call.hangup({ headers: { "X-Huge": "h".repeat(1 << 20) } }), named(RangeError, "options.headers"));
  await assert.rejects(call.hold(null), named(TypeError, "options"));
  await assert.rejects(call.setVideo("off"), named(TypeError, "on"));
  await assert.rejects(call.setVideo(false, { headers: 1 }), named(TypeError, "options.headers"));
  await assert.rejects(call.startRecording("now"), named(TypeError, "options"));
  await assert.rejects(call.stopRecording({ headers: { "X-A": "1\r\n" } }), named(TypeError, "options.headers"));
  assert.throws(() => call.message("x".repeat(40_000)), named(RangeError, "text"));
  assert.throws(() => call.message("hi", "not a type"), named(TypeError, "contentType"));
  await assert.rejects(phone.message("sip:bob@pbx.test", Symbol("s")), named(TypeError, "text"));
  await assert.rejects(Phone.connect({ server: "ws://x", uri: "sip:a@b", registerExpires: "600" }), named(TypeError, "options.registerExpires"));
  await assert.rejects(Phone.connect({ server: "ws://x", uri: "sip:a@b", sessionExpiresSecs: 30 }), named(RangeError, "options.sessionExpiresSecs"));
  await assert.rejects(Phone.connect({ server: "http://x", uri: "sip:a@b" }), named(TypeError, "options.server"));
  await assert.rejects(Phone.connect(undefined), named(TypeError, "options"));
  const sent = fake.asked.filter(([n]) => !["call"].includes(n));
  assert.deepEqual(sent, [], "nothing asked of the engine");
});

test("a disconnected phone refuses every method with an InvalidStateError, and its engine is not touched", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const call = phone.call("sip:bob@pbx.test");
  fake.placing.shift().resolve(5);
  await settle();
  fake.emit("accepted", { call: 5 });
  await call.accepted;
  const disconnected = phone.disconnect();
  fake.emit("hangup", { call: 5, reason: "BYE" });
  await disconnected;
  const asked = fake.asked.length;
  const gone = (e) => e instanceof InvalidStateError && e.code === "disconnected";
  assert.throws(() => phone.call("sip:bob@pbx.test"), gone);
  assert.throws(() => phone.register(), gone);
  await assert.rejects(phone.unregister(), gone);
  await assert.rejects(phone.message("sip:bob@pbx.test", "hi"), gone);
  assert.deepEqual(await call.hangup(), { code: undefined, reason: "BYE" }, "an ended call hangs up as before");
  assert.equal(call.remoteStream, undefined);
  await phone.disconnect();
  assert.equal(fake.asked.length, asked, "the engine was not asked again");
});

test("INFO of any type: sent with its outcome, received as an event", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const call = phone.call("sip:bob@pbx.test");
  fake.placing.shift().resolve(6);
  await settle();
  fake.emit("accepted", { call: 6 });
  await call.accepted;

  const taken = call.info("application/x-crm+json", '{"case":42}');
  assert.deepEqual(fake.asked.at(-1), ["info", 6, "application/x-crm+json", '{"case":42}', undefined]);
  fake.emit("info_answered", { call: 6, id: 1, code: 200, reason: "OK" });
  await taken;
  const refused = call.info("text/plain", "x");
  fake.emit("info_answered", { call: 6, id: 2, code: 415, reason: "Unsupported Media Type" });
  await assert.rejects(refused, (e) => e.code === 415);

  const got = [];
  call.on("info", (i) => got.push(["call", i]));
  phone.on("info", (c, i) => got.push(["phone", c === call, i]));
  fake.emit("info", { call: 6, contentType: "application/vnd.queue+xml", body: "<q/>", headers: {} });
  const info = { contentType: "application/vnd.queue+xml", body: "<q/>", headers: {} };
  assert.deepEqual(got, [["call", info], ["phone", true, info]]);

  const pending = call.info("text/plain", "late");
  fake.emit("hangup", { call: 6, reason: "BYE" });
  await assert.rejects(pending, (e) => e instanceof InvalidStateError);
});

test("attended transfer: transfer(otherCall) refers with the consultation, then both end; a replacing call is answered and reported as replaced", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const up = async (id) => {
    const call = phone.call("sip:someone@pbx.test");
    fake.placing.shift().resolve(id);
    await settle();
    fake.emit("accepted", { call: id });
    await call.accepted;
    return call;
  };
  const bob = await up(1);
  const carol = await up(2);
  await assert.rejects(bob.transfer(bob), TypeError, "not to itself");
  const other = Phone._withEngine(fakeEngine().make);
  const stranger = other.call("sip:x@pbx.test");
  await assert.rejects(bob.transfer(stranger), TypeError, "not to another phone's call");

  const done = bob.transfer(carol);
  assert.deepEqual(fake.asked.at(-1).slice(0, 3), ["transferReplacing", 1, 2]);
  fake.emit("transfer", { call: 1, code: 202, reason: "Accepted", done: false });
  fake.emit("hangup", { call: 2, reason: "BYE" }); // carol's side ends the consultation
  fake.emit("transfer", { call: 1, code: 200, reason: "OK", done: true });
  await settle();
  assert.deepEqual(fake.asked.at(-1).slice(0, 2), ["hangup", 1], "then the first call is hung up");
  fake.emit("hangup", { call: 1, reason: "BYE" });
  await done;

  // As the target: a call replacing call 3 is answered without ringing
  // the app, and reported as `replaced` once up.
  const dave = await up(3);
  const rang = [];
  phone.on("incoming", (c) => rang.push(c));
  const replaced = [];
  phone.on("replaced", (old, by) => replaced.push([old, by]));
  fake.emit("incoming", { call: 4, from: "sip:bob@pbx.test", hasOffer: true, headers: {}, replaces: 3 });
  await settle();
  assert.deepEqual(rang, [], "no ringing");
  assert.deepEqual(fake.asked.find(([n]) => n === "answer")?.slice(0, 2), ["answer", 4]);
  fake.emit("accepted", { call: 4 });
  fake.emit("replaced", { call: 3, by: 4 });
  assert.equal(replaced.length, 1);
  assert.equal(replaced[0][0], dave);
  assert.equal(replaced[0][1].id, 4);
});

test("subscriptions: a lamp, the voicemail light and presence, their NOTIFYs and their end", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const lamp = phone.watch("sip:bob@pbx.test");
  assert.deepEqual(fake.asked.at(-1), ["subscribe", "sip:bob@pbx.test", "dialog", undefined, undefined, undefined]);
  const mwi = phone.voicemail();
  assert.deepEqual(fake.asked.at(-1).slice(1, 3), ["sip:test@test.invalid", "message-summary"]);
  phone.presence("sip:carol@pbx.test", { headers: { "X-A": "1" } });
  assert.throws(() => phone.subscribe("sip:bob@pbx.test", "dia log"), TypeError);
  assert.throws(() => phone.subscribe("sip:bob@pbx.test", "dialog", { expires: 5 }), RangeError);
  assert.throws(() => phone.subscribe("sip:bob@pbx.test", "dialog", { accept: "nonsense" }), TypeError);

  const seen = [];
  lamp.on("notify", (n) => seen.push(n.status?.lamp));
  fake.emit("subscription_active", { subscription: 1, expires: 600 });
  await lamp.active;
  assert.equal(lamp.state, "active");
  const busy = { kind: "dialog", entity: "sip:bob@pbx.test", lamp: "busy", full: true };
  fake.emit("notify", { subscription: 1, state: "active", contentType: "application/dialog-info+xml", body: "<x/>", status: busy });
  assert.deepEqual(seen, ["busy"]);
  assert.deepEqual(lamp.status, busy);

  // Refused: `active` rejects, `ended` says why.
  fake.emit("subscription_ended", { subscription: 2, code: 489, reason: "Bad Event" });
  await assert.rejects(mwi.active, (e) => e.code === 489);
  assert.deepEqual(await mwi.ended, { code: 489, reason: "Bad Event" });

  const ending = lamp.unsubscribe();
  assert.deepEqual(fake.asked.at(-1), ["unsubscribe", 1]);
  fake.emit("subscription_ended", { subscription: 1, reason: "Unsubscribed" });
  assert.deepEqual(await ending, { code: undefined, reason: "Unsubscribed" });
});

test("recording: asked of the relay, settled by its answer, reported as an event", async () => {
  const fake = fakeEngine();
  const phone = Phone._withEngine(fake.make);
  const call = phone.call("sip:bob@pbx.test");
  fake.placing.shift().resolve(9);
  await settle();
  await assert.rejects(call.startRecording(), (e) => e instanceof InvalidStateError, "not before the call is up");
  fake.emit("accepted", { call: 9 });
  await call.accepted;

  const got = [];
  call.on("recording", (r) => got.push(["call", r]));
  phone.on("recording", (c, r) => got.push(["phone", c === call, r]));
  const started = call.startRecording();
  assert.deepEqual(fake.asked.at(-1), ["record", 9, true, undefined]);
  fake.emit("recording", { call: 9, id: 1, state: "started", code: 200, reason: "OK" });
  await started;
  const on = { state: "started", code: 200, reason: "OK" };
  assert.deepEqual(got, [["call", on], ["phone", true, on]]);

  const refused = call.stopRecording();
  assert.deepEqual(fake.asked.at(-1), ["record", 9, false, undefined]);
  fake.emit("recording", { call: 9, id: 2, state: "failed", code: 403, reason: "Recording Is Mandatory" });
  await assert.rejects(refused, (e) => e.code === 403 && e.message.includes("Recording Is Mandatory"));

  const pending = call.startRecording();
  fake.emit("hangup", { call: 9, reason: "BYE" });
  await assert.rejects(pending, (e) => e instanceof InvalidStateError);
});
