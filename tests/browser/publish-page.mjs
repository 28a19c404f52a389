// Drives headless Chromium through Reel's own /publish page: fills nothing by hand (the
// WHIP URL and token ride after `#`), presses Start, waits for "recording", reads the
// preview's pixels, presses Stop.
// Usage: node publish-page.mjs <reelBaseUrl> <whipUrl> <token> <seconds>
// Prints one JSON line: {sessionId, publishedFor, preview: {mean, std, width, height}, status}.
import { launchChromium } from "./chromium.mjs";

const [base, whipUrl, token, seconds] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const p = await browser.newPage();
  p.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  const hash = new URLSearchParams({ whip: whipUrl, token }).toString();
  await p.goto(`${base}/publish#${hash}`);
  await p.click("#start");
  await p.waitForFunction(() => document.getElementById("status").textContent === "recording",
    null, { timeout: 20000 }).catch(async (e) => {
      throw new Error(`${e.message}; status: ${await p.textContent("#status")}`);
    });
  const started = Date.now();
  await p.waitForTimeout(Number(seconds) * 1000);
  // What the person sees in the preview: luma mean and spread over a small copy of it.
  const preview = await p.evaluate(() => {
    const v = document.getElementById("preview");
    const c = document.createElement("canvas");
    c.width = 64; c.height = 48;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, 64, 48);
    const d = g.getImageData(0, 0, 64, 48).data;
    let sum = 0, sq = 0, n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      sum += y; sq += y * y; n++;
    }
    const mean = sum / n;
    return { mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), width: v.videoWidth, height: v.videoHeight };
  });
  await p.click("#stop");
  const publishedFor = (Date.now() - started) / 1000;
  await p.waitForFunction(() => document.getElementById("status").textContent === "stopped", null, { timeout: 10000 });
  const sessionId = await p.$eval("#session", (e) => e.dataset.session);
  const status = await p.textContent("#status");
  console.log(JSON.stringify({ sessionId, publishedFor, preview, status }));
} finally {
  await browser.close();
}
