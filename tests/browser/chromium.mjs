// What the browser scripts share: a static file server on 127.0.0.1 and
// Debian's headless Chromium (never a downloaded browser) with a fake
// microphone playing a WAV file.

import { readFile, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };

/**
 * Serves `routes` ({ "/": file, "/pkg/": folder }) on a free port; returns
 * { origin, close }. A prefix ending in "/" maps to a folder; "*", when
 * given, is the folder every other path is served from.
 */
export async function serve(routes) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x").pathname;
    let file = routes[url];
    if (!file) {
      const prefix = Object.keys(routes).find((p) => p.endsWith("/") && p !== "/" && url.startsWith(p));
      if (prefix && !url.includes("..")) file = path.join(routes[prefix], url.slice(prefix.length));
      else if (routes["*"] && !url.includes("..")) file = path.join(routes["*"], url);
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/**
 * Launches Chromium with `mic` (a WAV file) as its microphone, or with no
 * fake microphone file when `mic` is omitted (pages that need no audio);
 * returns { context, close }.
 */
export async function launch(mic, executablePath = "/usr/bin/chromium") {
  const profile = await mkdtemp(path.join(tmpdir(), "sipline-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      ...(mic ? [`--use-file-for-fake-audio-capture=${mic}`] : []),
      "--allow-loopback-in-peer-connection",
      "--autoplay-policy=no-user-gesture-required",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
