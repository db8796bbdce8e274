// The benchmark page: parses the same SIP messages with sipline's core
// (Rust compiled to wasm, loaded through its wasm-bindgen glue) and with
// JsSIP's parser (lib/Parser.js, bundled by run.sh with esbuild), times each
// with performance.now(), and returns the figures; driver.mjs prints them.
//
// Opened by hand (any static server over run.sh's site folder), `?run`
// prints the same table into the page.

import init, { Corpus, parse_one } from "./pkg/sipline_parse_bench.js";
import { parseMessage } from "./jssip-parser.js";

/** The messages, in tools/parse-bench/messages, served at /messages/. */
export const FILES = [
  "1_invite_sdp_via_relay.sip",
  "2_200_invite_sdp.sip",
  "3_register.sip",
  "4_401_register.sip",
  "5_bye.sip",
  "6_200_bye.sip",
];

// NUL separates messages on their way into wasm: no SIP header may hold it
// and these bodies do not.
const SEP = "\0";

// parseMessage(data, ua) only stores `ua` on an incoming request (its
// reply() would need it; parsing never calls it), so an empty object does.
const UA_STUB = {};

/**
 * The parsers, each as make(messages) → run(iterations) → { ok, checksum }.
 * Anything that converts the messages happens in make(), outside the timing.
 */
const PARSERS = [
  {
    id: "sipline",
    label: "sipline (wasm)",
    make(msgs) {
      const corpus = new Corpus(msgs.join(SEP), SEP);
      if (corpus.count() !== msgs.length) throw new Error("corpus split mismatch");
      return (n) => take(corpus.parse(n));
    },
  },
  {
    id: "sipline-eager",
    label: "sipline + JsSIP's eager headers",
    make(msgs) {
      const corpus = new Corpus(msgs.join(SEP), SEP);
      return (n) => take(corpus.parse_eager(n));
    },
  },
  {
    id: "sipline-per-call",
    label: "sipline, 1 call/msg, copy incl.",
    make(msgs) {
      return (n) => {
        let ok = 0;
        let checksum = 0;
        for (let i = 0; i < n; i++) {
          for (const m of msgs) {
            const headers = parse_one(m);
            if (headers > 0) ok++;
            checksum = (checksum + headers) >>> 0;
          }
        }
        return { ok, checksum };
      };
    },
  },
  {
    id: "jssip",
    label: "JsSIP 3.13.8",
    make(msgs) {
      return (n) => {
        let ok = 0;
        let checksum = 0;
        for (let i = 0; i < n; i++) {
          for (const m of msgs) {
            const r = parseMessage(m, UA_STUB);
            if (r) {
              ok++;
              checksum = (checksum + r.cseq + r.body.length) >>> 0;
            }
          }
        }
        return { ok, checksum };
      };
    },
  },
];

/** Copies a wasm-bindgen Tally into a plain object and frees it. */
function take(tally) {
  const out = { ok: tally.ok, checksum: tally.checksum };
  tally.free();
  return out;
}

/** Runs `run(n)` once and returns its result with the elapsed milliseconds. */
function timed(run, n) {
  const t0 = performance.now();
  const r = run(n);
  return { ...r, ms: performance.now() - t0 };
}

/**
 * Warms `run` up (doubling n until one call lasts warmMs, so both JITs
 * reach their top tier), then times `reps` calls of at least minMs each; the
 * median call gives the figure.
 */
function measure(run, perIteration, { warmMs, minMs, reps }) {
  let n = 1;
  let r = timed(run, n);
  while (r.ms < warmMs) {
    n *= 2;
    r = timed(run, n);
  }
  n = Math.ceil((n * minMs * 1.15) / Math.max(r.ms, 1));
  const runs = [];
  while (runs.length < reps) {
    r = timed(run, n);
    if (r.ok !== n * perIteration) {
      throw new Error(`only ${r.ok} of ${n * perIteration} parses succeeded`);
    }
    if (r.checksum === 0) throw new Error("checksum is zero: nothing was read");
    if (r.ms < minMs) {
      // Faster than the calibration said: grow n and time again.
      n = Math.ceil((n * minMs * 1.15) / Math.max(r.ms, 1));
      continue;
    }
    runs.push({ ms: r.ms, iterations: n });
  }
  runs.sort((a, b) => a.ms / a.iterations - b.ms / b.iterations);
  const mid = runs[Math.floor(runs.length / 2)];
  const parses = mid.iterations * perIteration;
  return {
    messagesPerSecond: parses / (mid.ms / 1000),
    microsPerMessage: (mid.ms * 1000) / parses,
    parses,
    ms: mid.ms,
    // Every run's µs/message, fastest first: how much the runs disagree.
    runs: runs.map((x) => (x.ms * 1000) / (x.iterations * perIteration)),
  };
}

/** Loads the messages; checks that both parsers accept each of them. */
async function loadMessages() {
  const msgs = [];
  for (const name of FILES) {
    const text = await (await fetch(`messages/${name}`)).text();
    if (!parseMessage(text, UA_STUB)) throw new Error(`JsSIP refuses ${name}`);
    if (parse_one(text) === 0) throw new Error(`sipline refuses ${name}`);
    msgs.push({ name: name.replace(/\.sip$/, "").replace(/^\d_/, ""), text });
  }
  return msgs;
}

/**
 * The whole benchmark: one row per message, then all of them in turn
 * ("mix"), each timed with every parser. `log` reports progress.
 */
async function runBench(opts = {}, log = console.log) {
  const o = { warmMs: 300, minMs: 1000, reps: 3, ...opts };
  const messages = await loadMessages();
  const rows = messages.map((m) => ({
    name: m.name,
    bytes: new TextEncoder().encode(m.text).length,
    msgs: [m.text],
  }));
  rows.push({
    name: "mix (all of the above)",
    bytes: rows.reduce((s, r) => s + r.bytes, 0) / rows.length,
    msgs: messages.map((m) => m.text),
  });
  const only = o.only ? new Set(o.only) : null;
  const results = [];
  for (const row of rows) {
    const out = { name: row.name, bytes: row.bytes, parsers: [] };
    for (const p of PARSERS) {
      if (only && !only.has(p.id)) continue;
      const m = measure(p.make(row.msgs), row.msgs.length, o);
      log(`${row.name}: ${p.label}: ${m.microsPerMessage.toFixed(3)} µs/message`);
      out.parsers.push({ id: p.id, label: p.label, ...m });
    }
    results.push(out);
  }
  return { browser: await browserVersion(), options: o, rows: results };
}

/** "Chromium 156.0.8078.79": the user agent string only says 156.0.0.0. */
async function browserVersion() {
  try {
    const { fullVersionList } = await navigator.userAgentData.getHighEntropyValues(["fullVersionList"]);
    const b = fullVersionList.find((x) => /chrom/i.test(x.brand)) ?? fullVersionList[0];
    return `${b.brand} ${b.version}`;
  } catch {
    return navigator.userAgent;
  }
}

await init();
window.runBench = runBench;
window.ready = true;

if (new URLSearchParams(location.search).has("run")) {
  const pre = document.querySelector("pre");
  const res = await runBench({}, (line) => (pre.textContent += `${line}\n`));
  pre.textContent += JSON.stringify(res, null, 1);
}
