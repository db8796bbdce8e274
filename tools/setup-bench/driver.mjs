// Drives the set-up benchmark's page (page/index.html) in Debian's headless
// Chromium: for each scenario and library, a fresh page registers, makes
// warm-up calls, then `calls` outgoing calls and, where the scenario has a
// far end that dials, `calls` incoming ones, each answered at once. Prints
// `event dial` before each incoming call (the Rust side makes baresip
// dial), and at the end one JSON line: every call's marks, and the table.
//
//   node driver.mjs '{"mic":"/tmp/tone.wav","libs":"/scratch/libs","calls":50,
//     "warmup":3,"scenarios":[{"name":"…","server":"ws://…","uri":"sip:…",
//     "password":"…","target":"sip:…","incoming":true}],"only":["sipline"],
//     "startup":{"runs":20,"server":"ws://…","uri":"sip:…","password":"…"}}'
//
// With "startup", first each library's start-up: `runs` fresh pages with
// the HTTP cache off (so nothing, not the compiled wasm either, is reused),
// each timing its library from import to registered.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, serve } from "../../tests/browser/chromium.mjs";

const cfg = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const LIBS = (cfg.only ?? ["sipline", "jssip", "sipjs"]);
const NAMES = { sipline: "sipline", jssip: "JsSIP 3.13.8", sipjs: "SIP.js 0.21.2" };
const server = await serve({
  "/": path.join(here, "page/index.html"),
  "/libs/": cfg.libs,
});
const browser = await launch(cfg.mic);
const log = (text) => process.stderr.write(`${text}\n`);
const results = [];
const startups = [];
try {
  for (const lib of cfg.startup ? LIBS : []) {
    const runs = [];
    for (let i = 0; i < cfg.startup.runs + 1; i++) {
      const page = await browser.context.newPage();
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
      page.on("pageerror", (e) => log(`[${lib} page error] ${e}`));
      await page.goto(`${server.origin}?lib=${lib}&startup`);
      await page.waitForFunction(() => window.ready === true);
      const run = await page.evaluate((o) => window.startup(o), cfg.startup);
      // The first run warms the browser itself (its network service, V8), not the library.
      if (i > 0) runs.push(run);
      await page.close();
    }
    startups.push({ lib, runs });
    log(`start-up / ${lib}: ${runs.length} runs`);
  }
  for (const scenario of cfg.scenarios) {
    for (const lib of LIBS) {
      const page = await browser.context.newPage();
      page.on("pageerror", (e) => log(`[${lib} page error] ${e}`));
      page.on("console", (m) => { if (m.type() === "error") log(`[${lib}] ${m.text()}`); });
      await page.goto(`${server.origin}?lib=${lib}`);
      await page.waitForFunction(() => window.ready === true);
      await page.evaluate((o) => window.bench.connect(o), scenario);
      const out = [];
      const inc = [];
      for (let i = 0; i < cfg.warmup + cfg.calls; i++) {
        const marks = await page.evaluate((t) => window.bench.outgoing(t), scenario.target);
        if (i >= cfg.warmup) out.push(marks);
        await page.waitForTimeout(cfg.pauseMs ?? 300);
      }
      if (scenario.incoming) {
        for (let i = 0; i < cfg.warmup + cfg.calls; i++) {
          await page.evaluate(() => window.bench.expectIncoming());
          process.stdout.write("event dial\n");
          const marks = await page.evaluate((ms) => window.bench.incoming(ms), 10000);
          if (i >= cfg.warmup) inc.push(marks);
          await page.waitForTimeout(cfg.pauseMs ?? 300);
        }
      }
      await page.evaluate(() => window.bench.disconnect()).catch(() => undefined);
      await page.close();
      results.push({ scenario: scenario.name, lib, out, inc });
      log(`${scenario.name} / ${lib}: ${out.length} outgoing, ${inc.length} incoming`);
    }
  }
} finally {
  await browser.close();
  server.close();
}

/** Median and 90th percentile of `key` over `calls` ("–" when never marked). */
function stat(calls, key) {
  const v = calls.map((m) => (typeof key === "function" ? key(m) : m[key]))
    .filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return "–";
  const q = (p) => v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)];
  const missing = calls.length - v.length;
  return `${Math.round(q(0.5))} / ${Math.round(q(0.9))}${missing ? ` (${missing} never)` : ""}`;
}
const both = (m) => (m.connected === undefined || m.frame === undefined ? undefined : Math.max(m.connected, m.frame));

const rows = [];
if (startups.length > 0) {
  rows.push("| library | import → registered | import → loaded | its wasm compiled and instantiated |");
  rows.push("|---|---|---|---|");
  for (const s of startups) {
    rows.push(`| ${NAMES[s.lib]} | ${stat(s.runs, "registered")} | ${stat(s.runs, "loaded")} | ${stat(s.runs, "wasm")} |`);
  }
  rows.push("");
}
if (results.length > 0) {
  rows.push("| scenario | library | call() → INVITE sent | → ringing | → answered | → first audio frame | → ICE+DTLS connected |");
  rows.push("|---|---|---|---|---|---|---|");
}
for (const r of results) {
  rows.push(`| ${r.scenario}, outgoing | ${NAMES[r.lib]} | ${stat(r.out, "out INVITE")} | ${stat(r.out, "ringing")} | ` +
    `${stat(r.out, "accepted")} | ${stat(r.out, "frame")} | ${stat(r.out, "connected")} |`);
}
const incoming = results.filter((r) => r.inc.length > 0);
if (incoming.length > 0) {
  rows.push("");
  rows.push("| scenario | library | answer() → 200 sent | → ICE+DTLS connected | → first audio frame | → media both ways |");
  rows.push("|---|---|---|---|---|---|");
  for (const r of incoming) {
    rows.push(`| ${r.scenario}, incoming | ${NAMES[r.lib]} | ${stat(r.inc, "out 200 INVITE")} | ` +
      `${stat(r.inc, "connected")} | ${stat(r.inc, "frame")} | ${stat(r.inc, both)} |`);
  }
}
process.stdout.write(`${JSON.stringify({ startups, results, table: rows.join("\n") })}\n`);
