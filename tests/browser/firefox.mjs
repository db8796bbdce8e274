// Debian's Firefox ESR, headless, driven by puppeteer-core over WebDriver
// BiDi (never a downloaded browser), with Firefox's fake microphone
// playing a sine tone.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

/** Launches Firefox whose microphone plays `toneHz`; returns { browser, close }. */
export async function launchFirefox(toneHz, executablePath = "/usr/bin/firefox-esr") {
  const profile = await mkdtemp(path.join(tmpdir(), "sipline-firefox-"));
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath,
    headless: true,
    userDataDir: profile,
    extraPrefsFirefox: {
      "media.navigator.streams.fake": true,
      "media.navigator.audio.fake_frequency": toneHz,
      "media.navigator.permission.disabled": true,
      // As for a site the user allowed the microphone: without a stored
      // permission (the fake device does not count as capturing) Firefox
      // gathers only the default route's address, never 127.0.0.1.
      "permissions.default.microphone": 1,
      // Firefox leaves out loopback candidates unless told, and the tests
      // stay on 127.0.0.1.
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "media.autoplay.default": 0,
    },
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
