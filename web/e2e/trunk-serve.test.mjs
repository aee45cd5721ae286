// The front-end workflow as the README documents it: `trunk serve` builds the page, serves it
// with hot reload and proxies /api, /health and /ws to a running server; chromium opens trunk's
// page and sees live balances through the proxy. Trunk.toml's proxies point at port 8080 and
// trunk listens on 8081; this test runs the same configuration on free ports (a copy of
// Trunk.toml with only the two ports changed), so it never collides with a running demo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ARTIFACTS, CHROMIUM_ARGS, chromium, freePort, startServer, stopServer } from './harness.mjs';

test('trunk serve shows live balances through its proxy', async () => {
  const serverPort = await freePort();
  const trunkPort = await freePort();
  const config = readFileSync('Trunk.toml', 'utf8')
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${serverPort}`)
    .replace(/^port = 8081$/m, `port = ${trunkPort}`);
  assert.notEqual(config, readFileSync('Trunk.toml', 'utf8'), 'Trunk.toml has the ports this test moves');
  const configFile = '.trunk-serve-test.toml';
  const dist = `dist-serve-test-${trunkPort}`;
  writeFileSync(configFile, config);
  const server = await startServer(serverPort, ['--allow-origin', `http://127.0.0.1:${trunkPort}`]);
  const trunk = spawn('trunk', ['--config', configFile, 'serve', '--dist', dist], { stdio: ['ignore', 'pipe', 'pipe'] });
  let trunkLog = '';
  const keep = (d) => { trunkLog = (trunkLog + d).slice(-20000); };
  trunk.stdout.on('data', keep);
  trunk.stderr.on('data', keep);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  try {
    // The first build of the page in debug mode takes a while on a cold cache.
    const deadline = Date.now() + 300_000;
    for (;;) {
      assert.ok(trunk.exitCode === null, `trunk serve exited:\n${trunkLog}`);
      assert.ok(Date.now() < deadline, `trunk serve did not serve the page in 300 s:\n${trunkLog}`);
      const ok = await fetch(`http://127.0.0.1:${trunkPort}/`).then((r) => r.ok && r.text()).catch(() => false);
      if (ok && ok.includes('.wasm')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    // The API through the proxy is the server's.
    const health = await fetch(`http://127.0.0.1:${trunkPort}/health`).then((r) => r.json());
    assert.ok(health.broker, JSON.stringify(health));
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${trunkPort}/`);
    await page.waitForSelector('[data-testid=status].ok', { timeout: 60000 });
    await page.waitForSelector('[data-testid^="balance-"]', { timeout: 30000 });
    const applied = async () => Number(await page.textContent('[data-testid=applied]'));
    const before = await applied();
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=applied]')?.textContent) > n + 10,
      before, { timeout: 30000 });
    await page.screenshot({ path: `${ARTIFACTS}/trunk-serve.png` });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    trunk.kill('SIGTERM');
    await stopServer(server).catch(() => {});
    rmSync(configFile, { force: true });
    rmSync(dist, { recursive: true, force: true });
  }
});
