// Drives a headless browser through Reel's own /publish page: fills nothing by hand (the
// WHIP URL and token ride after `#`), presses Start, waits for "recording", reads the
// preview's pixels, presses Stop.
// Usage: node publish-page.mjs <chromium|firefox> <reelBaseUrl> <whipUrl> <token> <seconds>
// Prints one JSON line: {sessionId, publishedFor, preview: {mean, std, width, height}, status}.
import { launchChromium } from "./chromium.mjs";
import { launchFirefox } from "./firefox.mjs";

const [which, base, whipUrl, token, seconds] = process.argv.slice(2);
const browser = await (which === "firefox" ? launchFirefox() : launchChromium());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Only page.evaluate and click: the same steps drive Playwright and Puppeteer.
async function waitForStatus(p, want, ms) {
  const until = Date.now() + ms;
  let status;
  while (Date.now() < until) {
    status = await p.evaluate(() => document.getElementById("status").textContent);
    if (status === want) return;
    await sleep(200);
  }
  throw new Error(`status never became ${want}: ${status}`);
}
try {
  const p = await browser.newPage();
  p.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  const hash = new URLSearchParams({ whip: whipUrl, token }).toString();
  await p.goto(`${base}/publish#${hash}`);
  await p.click("#start");
  await waitForStatus(p, "recording", 20000);
  const started = Date.now();
  await sleep(Number(seconds) * 1000);
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
  await waitForStatus(p, "stopped", 10000);
  const sessionId = await p.evaluate(() => document.getElementById("session").dataset.session);
  const status = await p.evaluate(() => document.getElementById("status").textContent);
  console.log(JSON.stringify({ sessionId, publishedFor, preview, status }));
} finally {
  await browser.close();
}
