// Two people call each other through the demo phone page while a third
// watches their busy lamps; then the first consults the third and
// transfers the second to her (attended), and the third calls the echo
// extension: three Chromium processes (each its own fake
// microphone tone), driven through the page's form and buttons only. What
// each hears is measured on the page's own <audio> element with a Web
// Audio analyser (test code, not the demo's). Prints one JSON line.
//
//   node demo-call.mjs '{"url":"http://127.0.0.1:8080/","domain":"sipline.local",
//     "a":{"user":"alice","password":"…","mic":"/tmp/1k.wav"},
//     "b":{"user":"bob","password":"…","mic":"/tmp/440.wav"},
//     "c":{"user":"carol","password":"…","mic":"/tmp/660.wav"},
//     "screenshot":"/tmp/demo-call.png"}'

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";

const spectrumJs = path.join(path.dirname(fileURLToPath(import.meta.url)), "spectrum.js");

const cfg = JSON.parse(process.argv[2]);
const browsers = [];
const result = {};

async function open(who) {
  const browser = await launch(who.mic, cfg.chromium);
  browsers.push(browser);
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`[${who.user} page error] ${e}\n`));
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.goto(cfg.url);
  await page.waitForFunction(() => document.querySelector("input[name=server]").value !== "");
  await page.fill("input[name=uri]", `sip:${who.user}@${cfg.domain}`);
  await page.fill("input[name=password]", who.password);
  await page.click("#connect-button");
  await page.waitForFunction(() => document.getElementById("status").dataset.state === "ready", null, { timeout: 10000 });
  return page;
}

const inCall = (page) =>
  page.waitForFunction(() => /in call/.test(document.getElementById("active-title")?.textContent ?? ""), null, { timeout: 15000 });

/** The strongest frequency the page plays for `ms`, and how far it stands
 * out: its own <audio> element, through the tests' spectrum.js. */
async function listen(page, ms) {
  await page.addScriptTag({ path: spectrumJs });
  return page.evaluate((ms) => measurePagePlaying(ms), ms);
}

const callList = (page) => page.evaluate(() => [...document.querySelectorAll("#call-list button")].map((b) => b.textContent));

/** Waits until `page`'s busy lamp for `user` shows `state`. */
const lamp = (page, user, state) =>
  page.waitForFunction(
    ([u, s]) => document.querySelector(`#lamps li[data-uri^="sip:${u}@"]`)?.dataset.lamp === s,
    [user, state],
    { timeout: 10000 },
  );

try {
  const a = await open(cfg.a);
  const b = await open(cfg.b);
  const c = await open(cfg.c);
  await c.click("#watch-button");
  await lamp(c, cfg.b.user, "idle");
  await a.fill("#target", cfg.b.user);
  await a.click("#call-button");
  await b.waitForSelector("#incoming:not([hidden])", { timeout: 10000 });
  result.incomingFrom = await b.textContent("#incoming-from");
  await b.click("#answer");
  await inCall(a);
  await inCall(b);
  await lamp(c, cfg.b.user, "busy");
  result.lampBusy = await c.textContent(`#lamps li[data-uri^="sip:${cfg.b.user}@"]`);
  await a.waitForTimeout(1500);
  result.talk = { a: await listen(a, 2000), b: await listen(b, 2000) };
  if (cfg.screenshot) await a.screenshot({ path: cfg.screenshot, fullPage: true });

  // DTMF from the dial pad, as SIP INFO so that bob's page can show it
  // (browsers do not surface received RFC 4733 events).
  await a.check("#dtmf-info");
  for (const key of ["1", "2", "#"]) await a.click(`#pad button:text-is("${key}")`);
  await b.waitForFunction(() => /DTMF # received/.test(document.getElementById("message-list").textContent), null, { timeout: 10000 });
  result.dtmf = await b.evaluate(() => [...document.querySelectorAll("#message-list li")].map((li) => li.textContent).filter((t) => t.startsWith("DTMF")));

  await a.click("#hold");
  await b.waitForFunction(() => /held by the far end/.test(document.getElementById("call-list").textContent), null, { timeout: 10000 });
  result.held = { a: await listen(a, 2000), lists: { a: await callList(a), b: await callList(b) } };
  await a.click("#hold"); // Resume
  await b.waitForFunction(() => /in call/.test(document.getElementById("call-list").textContent), null, { timeout: 10000 });
  await a.waitForTimeout(1000);
  result.resumed = { a: await listen(a, 2000) };

  await a.click("#hangup");
  await a.waitForFunction(() => !document.getElementById("no-calls").hidden, null, { timeout: 10000 });
  await b.waitForFunction(() => !document.getElementById("no-calls").hidden, null, { timeout: 10000 });
  result.ended = await b.evaluate(() => [...document.querySelectorAll("#message-list li")].map((li) => li.textContent));
  await lamp(c, cfg.b.user, "idle");
  result.lampIdle = true;

  // Consult, then transfer: alice calls bob, consults carol, joins them.
  await a.fill("#target", cfg.b.user);
  await a.click("#call-button");
  await b.waitForSelector("#incoming:not([hidden])", { timeout: 10000 });
  await b.click("#answer");
  await inCall(a);
  await a.fill("#transfer input[name=target]", cfg.c.user);
  await a.click("#consult");
  await c.waitForSelector("#incoming:not([hidden])", { timeout: 10000 });
  await c.click("#answer");
  await a.waitForSelector("#join:not([hidden])", { timeout: 15000 });
  await a.click("#join");
  const talking = (page, who) =>
    page.waitForFunction((w) => new RegExp(`${w}@[^:]*: in call`).test(document.getElementById("call-list").textContent), who, { timeout: 15000 });
  await talking(b, cfg.c.user);
  await talking(c, cfg.b.user);
  await a.waitForFunction(() => !document.getElementById("no-calls").hidden, null, { timeout: 15000 });
  await b.waitForTimeout(1500);
  result.joined = { b: await listen(b, 2000), c: await listen(c, 2000), calls: { b: await callList(b), c: await callList(c) } };
  await b.click("#hangup");
  await c.waitForFunction(() => !document.getElementById("no-calls").hidden, null, { timeout: 10000 });

  await c.fill("#target", "echo");
  await c.click("#call-button");
  await inCall(c);
  await c.waitForTimeout(1500);
  result.echo = await listen(c, 2000);
  await c.click("#hangup");
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  for (const b of browsers) await b.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
