// What the end-to-end tests share: chromium (playwright-core from the project's tools) and
// the real server binary on a free port with the Apache Kafka broker it runs itself.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';

// playwright-core lives with the project's other tools (scripts/setup.sh), not in the repo.
const modules = process.env.CASHFLOW_NODE_MODULES
  ?? path.join(process.env.HOME ?? '', '.cache/cashflow/tools/npm/node_modules');
export const { chromium } = createRequire(path.join(modules, 'noop.js'))('playwright-core');

export const BIN = process.env.CASHFLOW_BIN ?? 'target/debug/cashflow';
export const DIST = process.env.CASHFLOW_DIST ?? 'dist';
export const ARTIFACTS = process.env.CASHFLOW_ARTIFACTS ?? 'target/e2e';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

export function startServer(port, extra = []) {
  // `extra` may override the defaults' --rate and --accounts (clap refuses a flag twice).
  const defaults = [['--rate', '20'], ['--accounts', '6']].filter(([flag]) => !extra.includes(flag)).flat();
  const proc = spawn(BIN, ['--listen', `127.0.0.1:${port}`, '--kafka-listen', '127.0.0.1:0',
    ...defaults, '--web-dir', DIST, '--ephemeral', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  // The transaction lines (up to 50 a second) would push everything else out of the tail: the
  // other lines (warnings, lessons, the broker's restarts) are kept apart, the last 300.
  const events = [];
  proc.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
    for (const line of String(d).split('\n')) {
      if (line && !line.includes('cashflow::transactions')) {
        events.push(line);
        if (events.length > 300) events.shift();
      }
    }
  });
  proc.logTail = () => `${events.join('\n')}\n… the last lines:\n${log.slice(-1500)}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60000);
    proc.stdout.on('data', (d) => {
      const m = /(http:\/\/\S+?)\/? \(Kafka: (\S+)\)/.exec(String(d));
      if (m) { proc.kafka = m[2]; }
      if (String(d).includes('http://')) { clearTimeout(timer); resolve(proc); }
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}:\n${log}`)));
  });
}

export function stopServer(proc) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('server did not stop in 30 s')); }, 30000);
    proc.removeAllListeners('exit');
    proc.on('exit', (code) => { clearTimeout(timer); resolve(code); });
    proc.kill('SIGTERM');
  });
}


/** Chromium at 1280×720 on the page of a server on `port`, once it says "connected"; page
 * errors are collected in `errors`. */
export async function openPage(port) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('[data-testid=status].ok', { timeout: 30000 });
  return { browser, page, errors };
}
