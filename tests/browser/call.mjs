// Drives one call from Debian's headless Chromium (never a downloaded
// browser) through the relay, and prints what was measured as one JSON
// line. The page is phone.html, served here on 127.0.0.1; the fake
// microphone plays the WAV file given.
//
//   node call.mjs '{"ws":"ws://127.0.0.1:8080/sip","target":"sip:bob@sipline.test",
//                   "domain":"sipline.test","mic":"/tmp/tone.wav","hold":true}'
//
// Steps: call and listen; with "hold", a re-INVITE sendonly, listen, a
// re-INVITE sendrecv, listen; then BYE. Each listening step reports the
// remote audio's strongest frequency and the RTP packets each way.
// With "answer": true, the page registers instead (user, password, domain),
// prints the line "event registered", answers the next incoming call and
// listens, then hangs up.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, serve } from "./chromium.mjs";

const cfg = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const server = await serve({ "/": path.join(here, "phone.html"), "/spectrum.js": path.join(here, "spectrum.js") });
const origin = server.origin;
const browser = await launch(cfg.mic, cfg.chromium);
const context = browser.context;
const result = { steps: {} };
try {
  const page = await context.newPage();
  page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  await page.goto(origin);
  await page.waitForFunction(() => window.ready === true);
  if (cfg.answer) {
    await page.evaluate((c) => window.phone.register(c), cfg);
    // Ready to answer before the far end is told to call: an INVITE that
    // came first would get the page's plain 200 for unexpected requests.
    await page.evaluate(() => { window.answering = window.phone.answer(); });
    process.stdout.write("event registered\n");
    await page.evaluate(() => window.answering);
  } else {
    await page.evaluate((c) => window.phone.call(c), cfg);
  }
  const listen = async (name) => {
    await page.waitForTimeout(1500); // let the direction change settle
    result.steps[name] = await page.evaluate(() => window.phone.measure(2000));
  };
  await listen("talk");
  if (cfg.hold) {
    result.holdAnswer = await page.evaluate(() => window.phone.reinvite("sendonly"));
    await listen("held");
    result.resumeAnswer = await page.evaluate(() => window.phone.reinvite("sendrecv"));
    await listen("resumed");
  }
  result.offer = await page.evaluate(() => window.phone.offeredSdp);
  result.answer = await page.evaluate(() => window.phone.answerSdp);
  result.bye = await page.evaluate(() => window.phone.hangup());
  result.events = await page.evaluate(() => window.phone.events);
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  server.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
