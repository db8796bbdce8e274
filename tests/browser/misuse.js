// A property test of the SDK's whole public API, run in the page against a
// live phone: `count` calls, each with at least one argument an app should
// not pass (a wrong type, undefined, null, NaN, a negative or huge number,
// a huge string, CR/LF, an object, a Symbol, a Call where a string goes…)
// and the others valid. Each must fail with the documented error: a
// TypeError or RangeError (thrown, or the rejection of an async method)
// whose message names the argument. A WebAssembly trap, any other error,
// a call that succeeds, or an unhandled rejection is a failure.
//
// Seeded (xorshift32), so a failure is reproduced by its seed.

/** A PRNG with a seed, for a run that can be replayed. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
  return {
    pick: (list) => list[Math.floor(next() * list.length)],
    chance: (p) => next() < p,
  };
}

const HUGE = "x".repeat(1 << 20);
const CRLF = "X-Ok: 1\r\nX-Injected: 1";

/** Values that are never a string, whatever the slot. */
const NOT_STRINGS = [undefined, null, NaN, Infinity, -1, 0, 1.5, 42, 1e12, true, false, {}, [], ["sip:a@b"],
  { toString: () => "sip:echo@sipline.local" }, Symbol("s"), 10n, () => "sip:a@b", new Date(0)];
/** Strings no SIP URI, header value or reason may be. */
const BAD_STRINGS = ["", " ", "\r\n", CRLF, HUGE, "sip:", "sip:a@b\r\nX-Injected: 1", "\u0000", "😀".repeat(2000), "tel:+1555"];
/** Values that are never a whole number in range. */
const NOT_NUMBERS = [undefined, null, NaN, Infinity, -Infinity, -1, 1.5, 1e12, "600", "", true, {}, [], Symbol("n"), 10n];
const NOT_BOOLEANS = [null, 0, 1, "yes", "", NaN, {}, [], Symbol("b"), 1n];
/** Options bags that are not objects. */
const NOT_OBJECTS = [null, 0, 42, NaN, "", "headers", true, [], [1, 2], Symbol("o"), 7n, () => ({})];
/** Header sets an app may not add. */
const BAD_HEADERS = [
  ...NOT_OBJECTS,
  { "Bad Name": "v" },
  { "X:Colon": "v" },
  { "": "v" },
  { "X-Crlf": CRLF },
  { "X-Nul": "a\u0000b" },
  { "X-Number": 5 },
  { "X-Null": null },
  { "X-Object": {} },
  { "X-Huge": HUGE },
  { "X-Long": "y".repeat(2000) },
  Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`X-H${i}`, "v"])),
  Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`X-H${i}`, "z".repeat(1000)])),
];

/**
 * Each slot of each method: its name as the error says it, how to make a
 * valid value, and the values it must refuse.
 */
function slots(t) {
  const sendOptions = (name = "options") => ({
    name,
    good: () => ({ headers: { "X-Test": "1" } }),
    bad: [...NOT_OBJECTS.map((v) => [name, v]), ...BAD_HEADERS.map((h) => [`${name}.headers`, { headers: h }])],
  });
  const callOptions = () => {
    const o = sendOptions();
    return {
      ...o,
      good: () => ({ audio: true }),
      bad: [...o.bad, ...NOT_BOOLEANS.map((v) => ["options.audio", { audio: v }]), ...NOT_BOOLEANS.map((v) => ["options.video", { video: v }])],
    };
  };
  const uri = (name) => ({ name, good: () => t.goodUri, bad: [...NOT_STRINGS, ...BAD_STRINGS, t.call, t.phone].map((v) => [name, v]) });
  const body = (name) => ({ name, good: () => "hello", bad: [...NOT_STRINGS, "é".repeat(20_000), HUGE].map((v) => [name, v]) });
  const contentType = { name: "contentType", good: () => "text/plain", bad: [...NOT_STRINGS.filter((v) => v !== undefined), "", "text", "text/plain\r\nX-A: 1", "a b/c", HUGE].map((v) => ["contentType", v]) };
  const dtmfOptions = {
    name: "options",
    good: () => ({ method: "rfc4733" }),
    bad: [
      ...NOT_OBJECTS.map((v) => ["options", v]),
      ...[null, 1, "", "inband", "RFC4733", {}, Symbol("m")].map((v) => ["options.method", { method: v }]),
      ...[...NOT_NUMBERS.filter((v) => v !== undefined), 0, 39, 6001].map((v) => ["options.durationMs", { durationMs: v }]),
      ...[...NOT_NUMBERS.filter((v) => v !== undefined), 0, 29, 6001].map((v) => ["options.gapMs", { gapMs: v }]),
      ...BAD_HEADERS.map((h) => ["options.headers", { headers: h }]),
    ],
  };
  const eventName = (good) => ({
    name: "event",
    good: () => good,
    bad: [...NOT_STRINGS, "", "Registered", "registration_failed", "hangup ", HUGE].map((v) => ["event", v]),
  });
  const handler = {
    name: "handler",
    good: () => () => {},
    bad: [...NOT_STRINGS.filter((v) => typeof v !== "function"), "alert(1)", t.call].map((v) => ["handler", v]),
  };
  const c = () => t.call;
  const p = () => t.phone;
  return [
    { what: "phone.call", on: p, method: "call", args: [uri("target"), callOptions()], sync: true },
    { what: "phone.message", on: p, method: "message", args: [uri("target"), body("text"), contentType, sendOptions()] },
    { what: "call.answer", on: c, method: "answer", args: [callOptions()] },
    { what: "call.ring", on: c, method: "ring", args: [sendOptions()], sync: true },
    {
      what: "call.decline",
      on: c,
      method: "decline",
      sync: true,
      args: [
        { name: "code", good: () => 486, bad: [...NOT_NUMBERS.filter((v) => v !== undefined), 0, 200, 399, 700, 42, 486.5].map((v) => ["code", v]) },
        { name: "reason", good: () => "Busy", bad: [...NOT_STRINGS.filter((v) => v !== undefined), CRLF, "\u0000", HUGE].map((v) => ["reason", v]) },
        sendOptions(),
      ],
    },
    { what: "call.hangup", on: c, method: "hangup", args: [sendOptions()] },
    { what: "call.hold", on: c, method: "hold", args: [sendOptions()] },
    { what: "call.unhold", on: c, method: "unhold", args: [sendOptions()] },
    { what: "call.restartIce", on: c, method: "restartIce", args: [sendOptions()] },
    {
      what: "call.setVideo",
      on: c,
      method: "setVideo",
      args: [{ name: "on", good: () => false, bad: NOT_BOOLEANS.map((v) => ["on", v]) }, sendOptions()],
    },
    { what: "call.startRecording", on: c, method: "startRecording", args: [sendOptions()] },
    { what: "call.stopRecording", on: c, method: "stopRecording", args: [sendOptions()] },
    {
      what: "call.sendDtmf",
      on: c,
      method: "sendDtmf",
      args: [
        { name: "digits", good: () => "1", bad: [...NOT_STRINGS, "", "12x", "1\r\n", "٣", "1".repeat(65), HUGE].map((v) => ["digits", v]) },
        dtmfOptions,
      ],
    },
    { what: "call.transfer", on: c, method: "transfer", args: [uri("target"), sendOptions()] },
    { what: "call.message", on: c, method: "message", args: [body("text"), contentType, sendOptions()], sync: true },
    { what: "call.info", on: c, method: "info", args: [{ ...contentType, bad: contentType.bad.concat([[ "contentType", undefined ]]) }, body("body"), sendOptions()] },
    { what: "Phone.connect", on: () => t.Phone, method: "connect", args: [connectOptions(t)] },
    {
      what: "phone.subscribe",
      on: p,
      method: "subscribe",
      sync: true,
      args: [
        uri("target"),
        { name: "event", good: () => "dialog", bad: [...NOT_STRINGS, "", "dia log", "a\r\nb", HUGE].map((v) => ["event", v]) },
        {
          name: "options",
          good: () => ({ expires: 600 }),
          bad: [
            ...NOT_OBJECTS.map((v) => ["options", v]),
            ...[...NOT_NUMBERS.filter((v) => v !== undefined), 59, 86_401].map((v) => ["options.expires", { expires: v }]),
            ...[null, 1, "", "nonsense", "a/b\r\n"].map((v) => ["options.accept", { accept: v }]),
            ...BAD_HEADERS.map((h) => ["options.headers", { headers: h }]),
          ],
        },
      ],
    },
    { what: "phone.watch", on: p, method: "watch", sync: true, args: [uri("target"), sendOptions()] },
    { what: "phone.on", on: p, method: "on", sync: true, args: [eventName("registered"), handler] },
    { what: "phone.once", on: p, method: "once", sync: true, args: [eventName("incoming"), handler] },
    { what: "call.on", on: c, method: "on", sync: true, args: [eventName("hangup"), handler] },
    { what: "call.off", on: c, method: "off", sync: true, args: [eventName("hold"), handler] },
  ];
}

/** `Phone.connect`'s options, each corruption in one field of a valid set. */
function connectOptions(t) {
  const field = (name, values) => values.map((v) => [`options.${name}`, { ...t.connectOptions, [name]: v }]);
  return {
    name: "options",
    good: () => t.connectOptions,
    bad: [
      ...[undefined, ...NOT_OBJECTS].map((v) => ["options", v]),
      ...field("server", [...NOT_STRINGS, "", "http://127.0.0.1/sip", "127.0.0.1:8080", HUGE]),
      ...field("uri", [...NOT_STRINGS, "", "nonsense", "sip:", "sip:a@b\r\nX: 1", HUGE]),
      ...field("password", NOT_STRINGS.filter((v) => v !== undefined)),
      ...field("displayName", [...NOT_STRINGS.filter((v) => v !== undefined), CRLF, "\u0007"]),
      ...field("authUser", [1, CRLF]),
      ...field("userAgent", [{}, CRLF]),
      ...field("instanceId", [5, "not-a-urn", "urn:uuid:a b"]),
      ...field("registrar", [7, "", "nonsense"]),
      ...field("autoRinging", NOT_BOOLEANS),
      ...field("register", NOT_BOOLEANS),
      ...field("iceLite", NOT_BOOLEANS),
      ...field("registerExpires", [...NOT_NUMBERS.filter((v) => v !== undefined), 0]),
      ...field("sessionExpiresSecs", [...NOT_NUMBERS.filter((v) => v !== undefined), 30, 89, 86_401]),
      ...field("keepAliveSecs", [...NOT_NUMBERS.filter((v) => v !== undefined), 3601]),
      ...field("iceGatheringTimeoutMs", [...NOT_NUMBERS.filter((v) => v !== undefined), 60_001]),
      ...field("reconnectMinMs", [...NOT_NUMBERS.filter((v) => v !== undefined), 0, 99]),
      ...field("reconnectMaxMs", [...NOT_NUMBERS.filter((v) => v !== undefined), 0, 300]),
      ...field("connectTimeoutMs", [...NOT_NUMBERS.filter((v) => v !== undefined), 0]),
      ...field("iceServers", ["stun:stun.example", 1, {}, null]),
      ...field("incomingHeaderPrefixes", ["X-", 1, {}, null, [1], [CRLF]]),
      ...field("wasmUrl", [1, {}, null, true]),
    ],
  };
}

/** Whether `e` is a trap of the WebAssembly engine (or of its bindings). */
function isTrap(e) {
  const message = String(e?.message ?? e);
  return e instanceof WebAssembly.RuntimeError || /unreachable|memory access|null pointer passed to rust|recursive use of an object|already borrowed|already mutably borrowed/i.test(message);
}

/**
 * Runs `count` misuses with `seed` against `t` (`{ Phone, phone, call,
 * goodUri, connectOptions }`, the call established). Resolves with the
 * tally and the first failures.
 */
export async function misuse(t, count, seed) {
  const r = rng(seed);
  const table = slots(t);
  const tally = { calls: 0, typeErrors: 0, rangeErrors: 0, traps: 0, wrong: 0, unhandled: 0, byMethod: {} };
  const failures = [];
  const onUnhandled = (ev) => {
    tally.unhandled++;
    if (failures.length < 20) failures.push({ unhandled: String(ev.reason?.stack ?? ev.reason) });
  };
  window.addEventListener("unhandledrejection", onUnhandled);
  const fail = (what, name, why) => {
    tally.wrong++;
    if (failures.length < 20) failures.push({ what, argument: name, why });
  };
  for (let i = 0; i < count; i++) {
    const entry = r.pick(table);
    // One argument wrong for sure, any other one wrong now and then: the
    // error must name one of them.
    const bad = new Set([r.pick(entry.args.map((_, j) => j))]);
    for (let j = 0; j < entry.args.length; j++) if (r.chance(0.15)) bad.add(j);
    const chosen = [];
    const args = entry.args.map((slot, j) => {
      if (!bad.has(j)) return slot.good();
      const [name, value] = r.pick(slot.bad);
      chosen.push(name);
      return value;
    });
    tally.calls++;
    tally.byMethod[entry.what] = (tally.byMethod[entry.what] ?? 0) + 1;
    const target = entry.on();
    let outcome;
    try {
      const result = target[entry.method](...args);
      outcome = result instanceof Promise
        ? await Promise.race([
          result.then((v) => ({ ok: v }), (e) => ({ error: e })),
          new Promise((ok) => setTimeout(() => ok({ timeout: true }), 3000)),
        ])
        : { ok: result };
    } catch (e) {
      outcome = { error: e, sync: true };
    }
    if (outcome.error !== undefined) {
      const e = outcome.error;
      if (isTrap(e)) {
        tally.traps++;
        fail(entry.what, "", `trap: ${e}`);
      } else if (e instanceof TypeError || e instanceof RangeError) {
        if (e instanceof TypeError) tally.typeErrors++;
        else tally.rangeErrors++;
        if (!chosen.some((name) => e.message.includes(name))) fail(entry.what, "", `${e.name} names no wrong argument: ${e.message}`);
        if (entry.sync && !outcome.sync) fail(entry.what, "", `rejected instead of throwing: ${e.message}`);
      } else {
        fail(entry.what, "", `${e?.name ?? typeof e}: ${e?.message ?? String(e)}`);
      }
    } else {
      fail(entry.what, "", outcome.timeout ? "neither settled nor threw within 3 s" : "accepted");
      // A phone that was made after all is let go.
      if (outcome.ok && typeof outcome.ok.disconnect === "function") await outcome.ok.disconnect().catch(() => {});
    }
  }
  // Rejections surface as unhandled only after a turn of the event loop.
  await new Promise((ok) => setTimeout(ok, 500));
  window.removeEventListener("unhandledrejection", onUnhandled);
  return { ...tally, failures };
}
