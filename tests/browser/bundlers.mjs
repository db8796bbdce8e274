// Loads the example app as each bundler built it (tests/bundlers/build.sh)
// in Debian's headless Chromium, each folder served on its own origin, and
// prints one JSON line: each app's outcome (registered, the echo answered,
// packets both ways) or its error.
//
//   node bundlers.mjs '{"apps":{"vite":"/out/vite/dist",…},"query":{"server":"ws://…",
//     "uri":"sip:…","password":"…","target":"sip:echo@…"},"mic":"/tmp/tone.wav"}'

import { launch, serve } from "./chromium.mjs";

const cfg = JSON.parse(process.argv[2]);
const browser = await launch(cfg.mic);
const out = {};
try {
  for (const [name, folder] of Object.entries(cfg.apps)) {
    const server = await serve({ "/": `${folder}/index.html`, "*": folder });
    const page = await browser.context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // What the app failed to load, by URL (not the browser's own favicon).
    page.on("response", (r) => {
      if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) errors.push(`${r.status()} ${r.url()}`);
    });
    try {
      await page.goto(`${server.origin}?${new URLSearchParams(cfg.query)}`);
      await page.waitForFunction(() => window.result !== undefined, null, { timeout: 15000 });
      out[name] = await page.evaluate(() => window.result);
    } catch (e) {
      out[name] = { error: String(e) };
    }
    if (errors.length > 0) out[name].pageErrors = errors;
    await page.close();
    server.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
