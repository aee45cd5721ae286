// End to end in Debian's chromium (headless, driven by playwright-core) against the real
// server with the broker it runs itself. Run by scripts/test.sh:
//   CASHFLOW_BIN=target/debug/cashflow CASHFLOW_DIST=dist node --test web/e2e/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, freePort, openPage, startServer, stopServer } from './harness.mjs';

/** Balance of an account in minor units, from its bar (accounts open at 100.00). */
const balanceOf = (page, account) => page.evaluate((a) => {
  const el = document.querySelector(`[data-testid="balance-${a}"]`);
  return el ? Number(el.getAttribute('data-value')) : 10000;
}, account);

const allBalances = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll('[data-testid^="balance-"]')].map((e) => [e.dataset.testid, e.getAttribute('data-value')])));

test('a teacher runs the dashboard', async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  let server = await startServer(port);
  let browser;
  try {
    const opened = await openPage(port);
    browser = opened.browser;
    const { page, errors } = opened;

    // Balances appear, then change as Kafka delivers.
    await page.waitForSelector('[data-testid^="balance-"]', { timeout: 30000 });
    const first = await allBalances(page);
    await page.waitForFunction((before) => {
      const now = [...document.querySelectorAll('[data-testid^="balance-"]')];
      return now.some((e) => before[e.dataset.testid] !== e.getAttribute('data-value'));
    }, first, { timeout: 30000 });

    // The partitions panel: all 6 owned by this (only) server, records spread over several.
    await page.waitForFunction(() => {
      const ps = [...document.querySelectorAll('[data-testid^="partition-"]')];
      return ps.length === 6 && ps.every((p) => p.dataset.owned === 'true')
        && ps.filter((p) => Number(p.getAttribute('data-value')) > 0).length > 1;
    }, null, { timeout: 30000 });

    // The history chart draws one line per account once samples arrive (one a second).
    await page.waitForFunction(() => document.querySelectorAll('.lines polyline').length === 6, null, { timeout: 30000 });

    // Pause: throughput falls to 0.
    await page.click('[data-testid=pause]');
    await page.waitForFunction(() => document.querySelector('[data-testid=tps]')?.textContent.trim() === '0.0',
      null, { timeout: 20000 });
    await page.waitForSelector('[data-testid=start]:not([disabled])');

    // A manual debit changes that account by exactly its amount.
    const before = await balanceOf(page, 2);
    await page.fill('[data-testid=manual-account]', '2');
    await page.selectOption('[data-testid=manual-type]', 'Debit');
    await page.fill('[data-testid=manual-amount]', '12.34');
    await page.click('[data-testid=manual-send]');
    await page.waitForFunction((want) => document.querySelector('[data-testid="balance-2"]')?.getAttribute('data-value') === String(want),
      before - 1234, { timeout: 20000 });
    assert.equal(await balanceOf(page, 2), before - 1234);
    assert.match(await page.textContent('[data-testid=notice]'), /sent Debit 12\.34 to account 2/);

    // A bad value gets a clear error and nothing is sent.
    await page.fill('[data-testid=manual-amount]', '1.234');
    await page.click('[data-testid=manual-send]');
    await page.waitForFunction(() => /decimal places/.test(document.querySelector('[data-testid=notice]').textContent));
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });

    // The server restarts: the page shows it, disables the controls, and reconnects by itself.
    assert.equal(await stopServer(server), 0, 'graceful exit');
    await page.waitForSelector('[data-testid=status].bad', { timeout: 15000 });
    assert.ok(await page.isDisabled('[data-testid=manual-send]'), 'controls disabled while disconnected');
    server = await startServer(port);
    await page.waitForSelector('[data-testid=status].ok', { timeout: 30000 });
    await page.waitForSelector('[data-testid=manual-send]:not([disabled])');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=applied]')?.textContent) > 0,
      null, { timeout: 30000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'reconnected.png') });

    const stats = await page.evaluate(() => window.__cashflow_stats);
    console.log(`render work per frame (6 accounts): ${JSON.stringify(stats)}`);
    assert.ok(stats.frames > 10);
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    await browser?.close();
    await stopServer(server).catch(() => {});
  }
});

test('with a presenter token, the page is read-only until the presenter logs in', async () => {
  const port = await freePort();
  const server = await startServer(port, ['--presenter-token', 'class-of-2026']);
  let browser;
  try {
    const opened = await openPage(port);
    browser = opened.browser;
    const { page, errors } = opened;
    await page.waitForSelector('[data-testid=login]', { timeout: 10000 });
    assert.ok(await page.isDisabled('[data-testid=pause]'), 'read-only before login');
    // Students see the lessons and their checks, not the presenter's buttons.
    assert.ok(await page.isVisible('[data-testid=check-ordering]'), 'checks shown to students');
    for (const b of ['pause', 'do-keys-by-account', 'inject', 'start-naive', 'stop-broker', 'add-member', 'start-replay', 'slow-motion']) {
      assert.ok(await page.isHidden(`[data-testid=${b}]`), `${b} hidden before login`);
    }
    await page.fill('[data-testid=token]', 'wrong');
    await page.click('[data-testid=login]');
    await page.waitForFunction(() => /wrong presenter token/.test(document.querySelector('[data-testid=notice]').textContent));
    assert.ok(await page.isDisabled('[data-testid=pause]'), 'still read-only after a wrong token');
    await page.fill('[data-testid=token]', 'class-of-2026');
    await page.click('[data-testid=login]');
    // Pause is enabled once logged in *and* generating: a server starting its own broker in a
    // loaded CI run was not generating yet 10 s after the page opened (seen once).
    try {
      await page.waitForSelector('[data-testid=pause]:not([disabled])', { timeout: 60000 });
    } catch (e) {
      // Seen twice in clean-clone CI runs (never by hand): say what the page showed, so the
      // cause can be found, and fail.
      const shown = await page.evaluate(() => ['status', 'generator', 'notice', 'login'].map((t) =>
        `${t}: ${document.querySelector(`[data-testid=${t}]`)?.textContent}`).join(' | '));
      console.log(`PAUSE NOT ENABLED 60 s after login (${shown})\nserver log:\n${server.logTail()}`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'presenter-login-pause.png') });
      throw e;
    }
    assert.ok(await page.isVisible('[data-testid=do-keys-by-account]'), 'lesson buttons shown to the presenter');
    await page.click('[data-testid=pause]');
    const paused = () => page.waitForFunction(() => /^paused/.test(document.querySelector('[data-testid=generator]').textContent),
      null, { timeout: 15000 });
    try {
      await paused();
    } catch (e) {
      // Seen once in CI (never locally, also not under load): the click had no effect. Say
      // everything the page and the server showed, then try once more, so the cause can be
      // found without hiding that it happened.
      const shown = await page.evaluate(() => ['status', 'generator', 'notice'].map((t) =>
        `${t}: ${document.querySelector(`[data-testid=${t}]`)?.textContent}`).join(' | '));
      console.log(`RETRY: pause had no effect within 15 s (${shown}); disabled: ${await page.isDisabled('[data-testid=pause]')}\nserver log:\n${server.logTail()}`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'presenter-pause-retry.png') });
      await page.click('[data-testid=pause]');
      await paused();
    }
    assert.equal(await page.$('[data-testid=login]'), null, 'login form gone');
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await stopServer(server).catch(() => {});
  }
});
