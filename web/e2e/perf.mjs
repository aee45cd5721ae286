// Render cost per animation frame with many accounts and a long history (a benchmark, not a
// test). Starts the server with the broker it runs itself, opens the page in headless chromium, and
// prints window.__cashflow_stats (script time from the frame's state bump until its effects ran)
// after the history has filled for SECONDS.
//   node web/e2e/perf.mjs [SECONDS=600] [ACCOUNTS=100] [RATE=500]
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const [seconds = 600, accounts = 100, rate = 500] = process.argv.slice(2).map(Number);
const modules = process.env.CASHFLOW_NODE_MODULES ?? path.join(process.env.HOME, '.cache/cashflow/tools/npm/node_modules');
const { chromium } = createRequire(path.join(modules, 'noop.js'))('playwright-core');
const BIN = process.env.CASHFLOW_BIN ?? 'target/release/cashflow';
const server = spawn(BIN, ['--listen', '127.0.0.1:0', '--kafka-listen', '127.0.0.1:0', '--rate', String(rate),
  '--accounts', String(accounts), '--ephemeral', '--web-dir', process.env.CASHFLOW_DIST ?? 'dist'], { stdio: ['ignore', 'pipe', 'ignore'] });
const url = await new Promise((resolve) => server.stdout.on('data', (d) => {
  const m = String(d).match(/(http:\/\/\S+?)\/? /); if (m) resolve(m[1]);
}));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
await page.goto(url);
const started = Date.now();
while (Date.now() - started < seconds * 1000) {
  await new Promise((r) => setTimeout(r, Math.min(60000, seconds * 1000)));
  const s = await page.evaluate(() => window.__cashflow_stats);
  console.log(`${Math.round((Date.now() - started) / 1000)} s: ${JSON.stringify(s)}`);
}
// recent_* cover the last 120 frames, all with the full history.
const before = await page.evaluate(() => document.querySelectorAll('polyline').length);
const t0 = await page.evaluate(() => performance.now());
await page.waitForTimeout(10000);
const s = await page.evaluate(() => window.__cashflow_stats);
const samples = await page.evaluate(() => document.querySelector('.lines polyline')?.getAttribute('points')?.split(' ').length);
// The record flow is on: its dots are real records (a sample of at most 20 a second here).
const dots = await page.evaluate(() => document.querySelectorAll('[data-testid=dot]').length);
console.log(JSON.stringify({ accounts, rate, seconds, polylines: before, points_per_line: samples, flow_dots: dots, last_10s: s, t0 }));
await page.screenshot({ path: process.env.PERF_SHOT ?? '/tmp/perf.png' });
await browser.close();
server.kill('SIGTERM');
