// Drives the demo phone page (demo/, served by the relay) in Debian's
// headless Chromium the way a person would: fills the form, clicks, types,
// and reads what the page shows. Prints one JSON line.
//
//   node demo.mjs '{"url":"http://127.0.0.1:8080/","mic":"/tmp/tone.wav",
//                   "password":"alice-demo","target":"echo","screenshot":"/tmp/demo.png"}'
//
// It connects with the prefilled form (plus the password, and "uri" when
// given), calls the target, waits until the call is up, reads the meters
// and stats the page shows for a few seconds, with "listen" measures what
// the page plays (spectrum.js), takes the screenshot, then hangs up. With
// "record" it presses Record once the call is up, and after the hang-up
// waits for the recording in the page's list and loads its audio.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";

const spectrumJs = path.join(path.dirname(fileURLToPath(import.meta.url)), "spectrum.js");

const cfg = JSON.parse(process.argv[2]);
const browser = await launch(cfg.mic, cfg.chromium);
const result = {};
try {
  const page = await browser.context.newPage();
  page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.setViewportSize({ width: 1100, height: 860 });
  await page.goto(cfg.url);
  // The form is prefilled from /api/config.
  await page.waitForFunction(() => document.querySelector("input[name=server]").value !== "");
  result.prefilled = await page.evaluate(() => ({
    server: document.querySelector("input[name=server]").value,
    uri: document.querySelector("input[name=uri]").value,
  }));
  if (cfg.uri) await page.fill("input[name=uri]", cfg.uri);
  await page.fill("input[name=password]", cfg.password);
  await page.click("#connect-button");
  await page.waitForFunction(() => document.getElementById("status").dataset.state !== "busy", null, { timeout: 10000 });
  result.connected = await page.textContent("#status");
  await page.fill("#target", cfg.target);
  await page.click("#call-button");
  await page.waitForFunction(() => /in call/.test(document.getElementById("active-title")?.textContent ?? ""), null, { timeout: 10000 });
  if (cfg.record) {
    await page.click("#record");
    await page.waitForFunction(() => document.getElementById("record").textContent === "Stop recording", null, { timeout: 5000 });
    result.recordButton = await page.textContent("#record");
  }
  // Meters and stats refresh once a second: take the best of a few.
  let remote = 0;
  let mic = 0;
  for (let i = 0; i < 6; i++) {
    await page.waitForTimeout(700);
    remote = Math.max(remote, await page.evaluate(() => document.getElementById("remote-level").value));
    mic = Math.max(mic, await page.evaluate(() => document.getElementById("mic-level").value));
  }
  result.meters = { mic, remote };
  result.stats = await page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#stats dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  if (cfg.listen) {
    await page.addScriptTag({ path: spectrumJs });
    result.heard = await page.evaluate(() => measurePagePlaying(2000));
  }
  result.calls = await page.evaluate(() => [...document.querySelectorAll("#call-list button")].map((b) => b.textContent));
  if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
  await page.click("#hangup");
  await page.waitForFunction(() => document.getElementById("no-calls").hidden === false, null, { timeout: 10000 });
  result.log = await page.evaluate(() => [...document.querySelectorAll("#message-list li")].map((li) => li.textContent));
  if (cfg.record) {
    await page.waitForSelector("#recording-list li audio", { timeout: 10000 });
    result.recording = await page.evaluate(async () => {
      const li = document.querySelector("#recording-list li");
      const audio = li.querySelector("audio");
      const loaded = new Promise((ok, fail) => {
        audio.addEventListener("loadedmetadata", ok, { once: true });
        audio.addEventListener("error", () => fail(new Error("the recording does not load")), { once: true });
      });
      audio.load();
      await loaded;
      return { title: li.querySelector("p").textContent, src: audio.getAttribute("src"), seconds: audio.duration };
    });
  }
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
