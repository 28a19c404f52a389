// Debian's Chromium, headless, with fake camera and microphone: the one launch every
// browser test here shares. No WebRTC flag a user would not have (no loopback pairing, no
// mDNS switch): the tests run where the server offers a real interface address.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run", "--disable-quic",
    ],
    // launch() gives every run a fresh, empty profile of its own.
    headless: true,
  });
}
