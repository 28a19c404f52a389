// Drives headless Chromium to publish through WHIP.
// Usage: node publish.mjs <whipUrl> <token> <camera|screen> <seconds>
// Prints one JSON line: {sessionId, location, deleteStatus, publishedFor}.
import { launchChromium } from "./chromium.mjs";
import http from "node:http";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const [whipUrl, token, kind, seconds] = process.argv.slice(2);
const page = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "publish.html"));
// Served from localhost: a secure context, so getUserMedia is allowed; and another origin
// than Reel's, so CORS is exercised as it is for a real application.
const server = http.createServer((_, res) => { res.writeHead(200, { "Content-Type": "text/html" }); res.end(page); });
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://localhost:${server.address().port}/`;

const browser = await launchChromium();
try {
  const p = await browser.newPage();
  p.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
  await p.goto(url);
  const result = await p.evaluate((o) => window.publish(o), { whipUrl, token, kind, seconds: Number(seconds) });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  server.close();
}
