// Drives the browser SDK (the built npm package, loaded by sdk.html) in
// Debian's headless Chromium through a list of steps, and prints what each
// returned as one JSON line.
//
//   node sdk.mjs '{"mic":"/tmp/tone.wav","steps":[
//     {"do":"connect","options":{"server":"ws://127.0.0.1:8080/sip","uri":"sip:alice@x","password":"…"}},
//     {"do":"call","target":"sip:bob@x"},{"do":"measure","name":"talk","ms":2000},
//     {"do":"hold"},{"do":"unhold"},{"do":"dtmf","digits":"12#"},{"do":"hangup"}]}'
//
// Steps: connect, call ({"keep": true} keeps the current call to transfer it;
// {"video": true} sends the camera too; answer takes the same), prefer_video
// ({"mimeType": "video/H264"}: offer and answer that codec first), video (the
// latest call's video over "ms": frames decoded and encoded, sizes, codecs),
// camera ({"on": false}: the latest call's setVideo; its video getter after),
// attended_transfer (the kept call to the current one), watch (a busy lamp, its
// NOTIFYs logged as lamp_<state>), voicemail (MWI, logged as mwi), wait_replaced (a call
// replacing ours by an attended transfer), answer (the next incoming call), measure, hold,
// unhold, restart_ice, mute ({"on": false} unmutes), dtmf, message, info, recording
// ({"on": false} stops it: the relay's answer), transfer, drop_ws (the page
// drops the WebSocket as a network would), misuse (the whole API misused "count" times, see
// misuse.js), stats, candidates (ICE candidates in the call's local and remote SDP), no_trickle
// (the page hides trickle ICE support both ways, as a library without it), wire (each SIP message
// sent and received so far: first line, CSeq method, candidates, Info-Package), hangup,
// disconnect, sleep, wait_event
// (a phone event, after the last "mark"), and mark, which prints
// "event <name>" for the test to act on (dial, kill the relay…).
// Results are keyed by the step's "name" (else its "do"); with the
// first failing step the run stops and "error" says why.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, serve } from "./chromium.mjs";

const cfg = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const server = await serve({
  "/": path.join(here, "sdk.html"),
  "/spectrum.js": path.join(here, "spectrum.js"),
  "/misuse.js": path.join(here, "misuse.js"),
  "/pkg/": path.join(here, "../../npm"),
});
const browser = await launch(cfg.mic, cfg.chromium);
const result = { steps: {} };
let page;
try {
  page = await browser.context.newPage();
  page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.goto(server.origin);
  await page.waitForFunction(() => window.ready === true);
  let mark = 0;
  for (const step of cfg.steps) {
    const name = step.name ?? step.do;
    const run = (f, ...args) => page.evaluate(f, args);
    let out;
    switch (step.do) {
      case "connect": out = await run(([o]) => window.t.connect(o), step.options); break;
      case "call": out = await run(([t, h, k, v]) => window.t.call(t, h, k, v), step.target, step.headers, step.keep ?? false, step.video ?? false); break;
      case "attended_transfer": out = await run(() => window.t.attendedTransfer()); break;
      case "watch": out = await run(([t]) => window.t.watch(t), step.target); break;
      case "voicemail": out = await run(() => window.t.voicemail()); break;
      case "presence": out = await run(([t]) => window.t.presence(t), step.target); break;
      case "ring_then_give_up": out = await run(([t, ms]) => window.t.ringThenGiveUp(t, ms), step.target, step.ms ?? 2000); break;
      case "wait_replaced": out = await run(([ms]) => window.t.waitReplaced(ms), step.timeoutMs ?? 30000); break;
      case "answer": out = await run(([ms, v]) => window.t.answer(ms, v), step.timeoutMs ?? 10000, step.video ?? false); break;
      case "prefer_video": out = await run(([m]) => window.t.preferVideo(m), step.mimeType); break;
      case "video": out = await run(([ms]) => window.t.videoStats(ms), step.ms ?? 2000); break;
      case "measure":
        await page.waitForTimeout(step.settleMs ?? 1500);
        out = await run(([ms]) => window.t.measure(ms), step.ms ?? 2000);
        break;
      case "hold": out = await run(() => window.t.hold()); break;
      case "restart_ice": out = await run(() => window.t.restartIce()); break;
      case "mute": out = await run(([on]) => window.t.mute(on), step.on ?? true); break;
      case "unhold": out = await run(() => window.t.unhold()); break;
      case "camera": out = await run(([on]) => window.t.camera(on), step.on ?? false); break;
      case "dtmf": out = await run(([d, m]) => window.t.dtmf(d, m), step.digits, step.method ?? "rfc4733"); break;
      case "message": out = await run(([t, x]) => window.t.message(t, x), step.target, step.text); break;
      case "recording": out = await run(([on]) => window.t.recording(on), step.on ?? true); break;
      case "info": out = await run(([c, b, h]) => window.t.info(c, b, h), step.contentType, step.body, step.headers); break;
      case "transfer": out = await run(([t]) => window.t.transfer(t), step.target); break;
      case "accept_referral": out = await run(([ms]) => window.t.acceptReferral(ms), step.timeoutMs ?? 10000); break;
      case "drop_ws": out = await run(() => window.t.dropWebSocket()); break;
      case "misuse": out = await run(([n, s, o]) => window.t.misuse(n, s, o), step.count, step.seed ?? 1, step.options); break;
      case "stats": out = await run(() => window.t.stats()); break;
      case "candidates": out = await run(() => window.t.candidates()); break;
      case "no_trickle": out = await run(() => window.t.noTrickle()); break;
      case "wire": out = await run(() => window.t.wire()); break;
      case "hangup": out = await run(() => window.t.hangup()); break;
      case "disconnect": out = await run(() => window.t.disconnect()); break;
      case "sleep": await page.waitForTimeout(step.ms); out = {}; break;
      case "wait_event": {
        const e = await run(([n, ms, since]) => window.t.waitEvent(n, ms, since), step.event, step.timeoutMs ?? 5000, mark);
        out = { ...e, afterMarkMs: e.at - mark };
        break;
      }
      case "mark":
        mark = await run(() => window.t.now());
        process.stdout.write(`event ${step.event}\n`);
        out = { at: mark };
        break;
      default: throw new Error(`unknown step ${step.do}`);
    }
    result.steps[name] = out ?? {};
  }
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  if (page) result.events = await page.evaluate(() => window.t.log).catch(() => []);
  await browser.close();
  server.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
