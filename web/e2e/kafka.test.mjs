// The Kafka panels end to end in Debian's chromium against the real server (the Apache Kafka broker it runs itself):
// pausing the calculator makes the broker's lag rise, resuming drains it; adding a member
// makes the broker rebalance and the page shows the new owners; an account followed from its
// bar sits on the partition murmur2 says, which is where the server read it from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, freePort, openPage, startServer, stopServer } from './harness.mjs';

const calcGroup = '[data-testid^="group-"][data-testid$="-balance"]';
const lagOf = (page) => page.evaluate((sel) => Number(document.querySelector(sel)?.dataset.lag ?? -1), calcGroup);
const membersShown = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll('[data-testid^="member-"]')]
    .map((m) => [m.dataset.testid, m.dataset.partitions ? m.dataset.partitions.split(',').map(Number) : []])));

test('the class watches lag, members and rebalances on the page', async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  const server = await startServer(port);
  let browser;
  try {
    const opened = await openPage(port);
    browser = opened.browser;
    const { page, errors } = opened;
    await page.waitForSelector(calcGroup, { timeout: 30000 });
    await page.waitForFunction(() =>
      document.querySelectorAll('[data-testid^="partition-"][data-end]:not([data-end="0"])').length > 1,
    null, { timeout: 30000 });

    // Pause consuming: the producer goes on writing, the broker reports the lag growing.
    await page.click('[data-testid=pause-consumption]');
    await page.waitForSelector('[data-testid=resume-consumption]', { timeout: 10000 });
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.lag) > 20, calcGroup, { timeout: 30000 });
    // The invariant line says how far the calculator is behind the producer's acknowledgements.
    await page.waitForFunction(() => {
      const m = /catching up \(lag (\d+)\)/.exec(document.querySelector('[data-testid=invariant]')?.textContent ?? '');
      return m && Number(m[1]) > 20;
    }, null, { timeout: 30000 });
    const lag1 = await lagOf(page);
    await page.waitForFunction(([sel, before]) => Number(document.querySelector(sel)?.dataset.lag) > before,
      [calcGroup, lag1], { timeout: 30000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'kafka-paused.png') });
    // Resume, with the generator paused so the end stops moving: the lag drains to exactly 0
    // (committed = end), whatever the machine's speed. (While records keep coming, the lag at
    // rest is whatever a second of auto-commit and the view's refresh leave, which varies.)
    await page.click('[data-testid=pause]');
    await page.waitForSelector('[data-testid=start]:not([disabled])', { timeout: 10000 });
    const peak = await lagOf(page);
    assert.ok(peak > 20, `lag while paused: ${peak}`);
    await page.click('[data-testid=resume-consumption]');
    await page.waitForSelector('[data-testid=pause-consumption]', { timeout: 10000 });
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.lag) === 0, calcGroup, { timeout: 30000 });
    await page.click('[data-testid=start]');

    // Add a member: two members, each partition owned exactly once, shown on the lanes too.
    await page.click('[data-testid=add-member]');
    await page.waitForFunction(() => {
      const ms = [...document.querySelectorAll('[data-testid^="member-"]')];
      const parts = ms.flatMap((m) => (m.dataset.partitions ? m.dataset.partitions.split(',') : []).map(Number)).sort();
      return ms.length === 2 && ms.every((m) => m.dataset.partitions) && parts.join() === '0,1,2,3,4,5';
    }, null, { timeout: 30000 });
    const two = await membersShown(page);
    for (const [m, parts] of Object.entries(two)) {
      const n = Number(m.split('-')[1]);
      for (const p of parts) {
        assert.equal(await page.getAttribute(`[data-testid=partition-${p}]`, 'data-member'), String(n), `p${p} owned by ${m}`);
      }
    }
    await page.waitForSelector('[data-testid=rebalance][data-cause="member 2 added"]', { timeout: 10000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'kafka-two-members-1280.png') });
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'kafka-two-members-1920.png') });
    await page.setViewportSize({ width: 1280, height: 720 });

    // Remove it again: one member owns all six.
    await page.click('[data-testid=remove-member]');
    await page.waitForFunction(() => {
      const ms = [...document.querySelectorAll('[data-testid^="member-"]')];
      return ms.length === 1 && ms[0].dataset.partitions === '0,1,2,3,4,5';
    }, null, { timeout: 30000 });

    // With the generator paused, everything acknowledged gets applied: the invariant holds.
    await page.click('[data-testid=pause]');
    await page.waitForSelector('[data-testid=invariant][data-state=Holds]', { timeout: 30000 });
    assert.match(await page.textContent('[data-testid=invariant]'), /✓ holds/);
    await page.click('[data-testid=start]');

    // Slow motion: every record is drawn; each dot's partition and offset hold, in the topic
    // as a separate client (Python's confluent-kafka) reads it, the very record the dot shows.
    await page.click('[data-testid=slow-motion]');
    await page.waitForFunction(() => /0\.5 tx\/s/.test(document.querySelector('[data-testid=generator]')?.textContent), null, { timeout: 10000 });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=dot][data-applied=true]').length >= 10, null, { timeout: 30000 });
    const dots = await page.evaluate(() => [...document.querySelectorAll('[data-testid=dot]')].map((d) => ({
      partition: Number(d.dataset.partition), offset: Number(d.dataset.offset), account: Number(d.dataset.account),
      title: d.querySelector('title').textContent })));
    const records = JSON.parse(execFileSync('python3', [path.join(import.meta.dirname, 'read_records.py'), server.kafka, 'transactions',
      JSON.stringify(dots.map((d) => [d.partition, d.offset]))], { encoding: 'utf8', timeout: 120000 }));
    for (const d of dots) {
      const r = records[`${d.partition}@${d.offset}`];
      assert.ok(r, `dot ${d.partition}@${d.offset} is a record in the topic`);
      assert.equal(r.account, d.account, `dot ${d.partition}@${d.offset}`);
      assert.ok(d.title.includes(`${r.transaction_type} `), `${d.title} vs ${JSON.stringify(r)}`);
    }
    await page.locator('svg.flow').screenshot({ path: path.join(ARTIFACTS, 'flow.png') });
    await page.click('[data-testid=pause]');

    // Follow an account: the page names its partition by murmur2, which is where it was read.
    const bar = await page.waitForSelector('[data-testid^="balance-"]', { timeout: 30000 });
    const account = Number((await bar.getAttribute('data-testid')).split('-')[1]);
    await bar.click();
    await page.waitForFunction((a) => document.querySelector('[data-testid=follow]')?.textContent.includes(`murmur2("${a}") mod 6`), account);
    const text = await page.textContent('[data-testid=follow]');
    const shown = Number(/→ partition (\d+)/.exec(text)[1]);
    const balances = await page.evaluate(async () => (await fetch('/api/balances')).json());
    const read = balances.accounts.find((a) => a.account === account).partition;
    assert.equal(shown, read, `account ${account}: ${text}`);
    assert.equal(await page.getAttribute(`[data-testid=partition-${shown}]`, 'class'), 'owned followed');
    // Pointing at another account shows its path while the pointer is there; the pinned one
    // comes back after.
    const other = account === 1 ? 2 : 1;
    await page.hover(`[data-testid=balance-${other}]`);
    await page.waitForFunction((a) => document.querySelector('[data-testid=follow]')?.textContent.startsWith(`account ${a}:`), other);
    await page.mouse.move(5, 5);
    await page.waitForFunction((a) => document.querySelector('[data-testid=follow]')?.textContent.startsWith(`account ${a}:`), account);

    // The projector theme is a preference kept in local storage: it survives a reload.
    await page.check('[data-testid=dark-theme]');
    await page.reload();
    await page.waitForSelector('.page.dark [data-testid=status].ok', { timeout: 30000 });
    assert.ok(await page.isChecked('[data-testid=dark-theme]'));
    assert.ok(!(await page.isChecked('[data-testid=large-text]')));
    await page.waitForSelector('[data-testid^="member-"]', { timeout: 30000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'kafka-dark.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    await browser?.close();
    await stopServer(server).catch(() => {});
  }
});
