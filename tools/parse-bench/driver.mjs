// Serves the benchmark page on 127.0.0.1, runs it in Debian's headless
// Chromium (tests/browser/chromium.mjs: /usr/bin/chromium, never a
// downloaded browser) and prints the table. run.sh calls it after building:
//
//   node driver.mjs SITE_DIR [results.json]
//
// SITE_DIR holds pkg/ (wasm-bindgen's output) and jssip-parser.js (the
// esbuild bundle). PARSE_BENCH_MIN_MS, PARSE_BENCH_REPS, PARSE_BENCH_WARM_MS
// and PARSE_BENCH_ONLY (comma-separated parser ids) tune the run.

import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, serve } from "../../tests/browser/chromium.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const [site, jsonOut] = process.argv.slice(2);
if (!site) throw new Error("usage: node driver.mjs SITE_DIR [results.json]");

const env = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const opts = {
  minMs: env("PARSE_BENCH_MIN_MS", 1000),
  reps: env("PARSE_BENCH_REPS", 3),
  warmMs: env("PARSE_BENCH_WARM_MS", 300),
  ...(process.env.PARSE_BENCH_ONLY ? { only: process.env.PARSE_BENCH_ONLY.split(",") } : {}),
};

const server = await serve({
  "/": path.join(here, "page/index.html"),
  "/bench.mjs": path.join(here, "page/bench.mjs"),
  "/jssip-parser.js": path.join(site, "jssip-parser.js"),
  "/pkg/": path.join(site, "pkg"),
  "/messages/": path.join(here, "messages"),
});
// No microphone: the page needs no media.
const browser = await launch(undefined, process.env.CHROMIUM ?? "/usr/bin/chromium");
let result;
try {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
  page.on("console", (m) => process.stderr.write(`  ${m.text()}\n`));
  await page.goto(server.origin);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
  result = await page.evaluate((o) => window.runBench(o), opts);
} finally {
  await browser.close();
  server.close();
}

if (jsonOut) await writeFile(jsonOut, `${JSON.stringify(result, null, 1)}\n`);
print(result);

/** The table: per message, each parser's rate, time and speed against JsSIP. */
function print({ browser, options, rows }) {
  const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  const pad = (s, w, right = false) => (right ? String(s).padStart(w) : String(s).padEnd(w));
  const lines = [];
  lines.push("");
  lines.push(
    `${browser} (headless), ${options.reps} timed runs of >= ${options.minMs} ms ` +
      `after >= ${options.warmMs} ms of warm-up; the median run is shown.`,
  );
  lines.push("");
  lines.push(
    `${pad("message", 24)}${pad("bytes", 7, true)}  ${pad("parser", 33)}` +
      `${pad("messages/s", 13, true)}${pad("µs/message", 12, true)}${pad("runs ±", 8, true)}` +
      `${pad("vs JsSIP", 10, true)}`,
  );
  lines.push("-".repeat(24 + 7 + 2 + 33 + 13 + 12 + 8 + 10));
  for (const row of rows) {
    const jssip = row.parsers.find((p) => p.id === "jssip");
    row.parsers.forEach((p, i) => {
      const ratio = jssip ? `${fmt(p.messagesPerSecond / jssip.messagesPerSecond, 2)}×` : "";
      lines.push(
        `${pad(i === 0 ? row.name : "", 24)}${pad(i === 0 ? fmt(row.bytes) : "", 7, true)}  ` +
          `${pad(p.label, 33)}${pad(fmt(p.messagesPerSecond), 13, true)}` +
          `${pad(fmt(p.microsPerMessage, 3), 12, true)}${pad(spread(p), 8, true)}${pad(ratio, 10, true)}`,
      );
    });
  }
  lines.push("");
  lines.push("(mix: bytes is the mean size; the six messages are parsed in turn.");
  lines.push(" runs ±: half the gap between the slowest and fastest run, against the median.)");
  lines.push("What each parses (see README.md):");
  lines.push("  sipline: start line, every header line split, its name checked and resolved, UTF-8,");
  lines.push("    no bare CR; Via (top), From, To, Call-ID, CSeq, Content-Length vs body, Max-Forwards,");
  lines.push("    Expires validated; mandatory headers present, no duplicates. Other values: raw slices.");
  lines.push("  sipline + eager: the same, plus Request-URI, every Contact and Record-Route, and");
  lines.push("    WWW-/Proxy-Authenticate challenges: roughly what JsSIP's parseMessage parses.");
  lines.push("  sipline, 1 call/msg: one wasm call per JS string, its UTF-16 -> UTF-8 copy included.");
  lines.push("  JsSIP parseMessage: start line and Request-URI (PEG grammar), top Via, From, To,");
  lines.push("    Call-ID, CSeq, Contact, Record-Route, Content-Length/-Type, Max-Forwards,");
  lines.push("    WWW-/Proxy-Authenticate, Session-Expires, Event, Refer-To, Replaces; other headers");
  lines.push("    (Authorization, Allow, Supported, Expires, further Vias...) stored unparsed, and");
  lines.push("    mandatory headers / Content-Length are left to a later sanityCheck (not timed).");
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** Half the spread of a parser's runs, as a percentage of the median. */
function spread(p) {
  const lo = Math.min(...p.runs);
  const hi = Math.max(...p.runs);
  return `${((50 * (hi - lo)) / p.microsPerMessage).toFixed(1)}%`;
}
