// The demo phone page in Firefox: Firefox ESR (puppeteer-core, WebDriver
// BiDi) and Chromium (playwright-core) call each other through the page's
// form and buttons, and Firefox calls the echo extension. Chromium calls,
// so Firefox answers an offer; then Firefox makes the offer to the echo.
// Prints one JSON line.
//
//   node demo-firefox.mjs '{"url":"http://127.0.0.1:8080/","domain":"sipline.local",
//     "firefox":{"user":"carol","password":"…","toneHz":880},
//     "chromium":{"user":"bob","password":"…","mic":"/tmp/440.wav"}}'

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";
import { launchFirefox } from "./firefox.mjs";

const spectrumJs = path.join(path.dirname(fileURLToPath(import.meta.url)), "spectrum.js");
const cfg = JSON.parse(process.argv[2]);
const result = {};
const closers = [];

const ready = () => document.getElementById("status").dataset.state === "ready";
const inCall = () => /in call/.test(document.getElementById("active-title")?.textContent ?? "");
const noCalls = () => !document.getElementById("no-calls").hidden;
const log = () => [...document.querySelectorAll("#message-list li")].map((li) => li.textContent);

/** Sets a form field as typing would (puppeteer has no fill). */
async function setField(page, selector, value) {
  await page.$eval(selector, (el, v) => {
    el.value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

try {
  const ff = await launchFirefox(cfg.firefox.toneHz, cfg.firefoxPath);
  closers.push(ff.close);
  const fx = await ff.browser.newPage();
  fx.on("pageerror", (e) => process.stderr.write(`[firefox page error] ${e}\n`));
  await fx.goto(cfg.url);
  await fx.waitForFunction(() => document.querySelector("input[name=server]").value !== "", { timeout: 10000 });
  await setField(fx, "input[name=uri]", `sip:${cfg.firefox.user}@${cfg.domain}`);
  await setField(fx, "input[name=password]", cfg.firefox.password);
  await fx.click("#connect-button");
  await fx.waitForFunction(ready, { timeout: 10000 });
  result.firefoxStatus = await fx.$eval("#status", (el) => el.textContent);

  const chromium = await launch(cfg.chromium.mic, cfg.chromiumPath);
  closers.push(chromium.close);
  const cr = await chromium.context.newPage();
  cr.on("pageerror", (e) => process.stderr.write(`[chromium page error] ${e}\n`));
  await cr.goto(cfg.url);
  await cr.waitForFunction(() => document.querySelector("input[name=server]").value !== "");
  await cr.fill("input[name=uri]", `sip:${cfg.chromium.user}@${cfg.domain}`);
  await cr.fill("input[name=password]", cfg.chromium.password);
  await cr.click("#connect-button");
  await cr.waitForFunction(ready, null, { timeout: 10000 });

  // Chromium calls; Firefox answers from its banner.
  await cr.fill("#target", cfg.firefox.user);
  await cr.click("#call-button");
  await fx.waitForSelector("#incoming:not([hidden])", { timeout: 10000 });
  await fx.click("#answer");
  await fx.waitForFunction(inCall, { timeout: 15000 });
  await cr.waitForFunction(inCall, null, { timeout: 15000 });
  await cr.waitForTimeout(1500);

  await fx.addScriptTag({ path: spectrumJs });
  await cr.addScriptTag({ path: spectrumJs });
  const [firefoxHeard, chromiumHeard] = await Promise.all([
    fx.evaluate(() => measureRecording(document.querySelector("#audio audio").srcObject, 2500)),
    cr.evaluate(() => measurePagePlaying(2000)),
  ]);
  result.talk = { firefox: firefoxHeard, chromium: chromiumHeard };
  // The far end's meter and the stats panel, which read Firefox's getStats.
  result.firefoxMeter = await fx.$eval("#remote-level", (el) => el.value);
  result.firefoxStats = await fx.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#stats dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));

  await fx.click("#hangup");
  await fx.waitForFunction(noCalls, { timeout: 10000 });
  await cr.waitForFunction(noCalls, null, { timeout: 10000 });
  result.chromiumLog = await cr.evaluate(log);

  // Firefox makes the offer: the echo extension sends its tone back.
  await setField(fx, "#target", "echo");
  await fx.click("#call-button");
  await fx.waitForFunction(inCall, { timeout: 15000 });
  await new Promise((ok) => setTimeout(ok, 1500));
  result.echo = await fx.evaluate(() => measureRecording(document.querySelector("#audio audio").srcObject, 2500));
  await fx.click("#hangup");
  await fx.waitForFunction(noCalls, { timeout: 10000 });
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  for (const close of closers.reverse()) await close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
