/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`,
 * driven by playwright-core) on a live 3-node cluster. The page must list
 * the three members up with their figures, then show a stopped node down,
 * then, once the node it polls stops, nothing as live.
 * A screenshot of each moment is saved under test-output/ for a person to
 * look at. Skipped, with the reason, where Chromium is not installed
 * (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, sleep, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const CHROMIUM = process.env.RINGKV_CHROMIUM ?? '/usr/bin/chromium';
const OUTPUT = join(process.cwd(), 'test-output');
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set RINGKV_CHROMIUM)`;

describe('dashboard', { skip }, () => {
  let cluster: TestCluster;
  let browser: Browser;
  let page: Page;
  /** What the page's Content-Security-Policy refused: its own script and style must not be. */
  const refusedByPolicy: string[] = [];

  before(async () => {
    cluster = await startCluster({ count: 3, args: ['--sync', 'off'] });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 500 } });
    page.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) refusedByPolicy.push(message.text());
    });
    mkdirSync(OUTPUT, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await killAllStarted();
    await removeTempDirs();
  });

  // Page functions are given as source text: this project compiles without the DOM's types.
  /** The state each member's row shows, by URL. */
  const shownStates = (): Promise<Record<string, string>> =>
    page.evaluate(
      `Object.fromEntries([...document.querySelectorAll('tbody tr')].map((row) => [row.dataset.member, row.dataset.state]))`,
    );
  /**
   * Polls `expression` in the page for up to 10 s. Not waitForFunction: that
   * evaluates its text inside the page, which the page's policy forbids.
   */
  const waitUntil = async (expression: string): Promise<void> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      if ((await page.evaluate(expression)) === true) return;
      await sleep(100);
    }
    assert.fail(`still false after 10 s: ${expression}`);
  };

  it('shows every member up, with request rates, from any node', async () => {
    await page.goto(`${cluster.urls[0]}/`);
    const expected = Object.fromEntries(cluster.urls.map((url) => [url, 'up']));
    await waitUntil(`document.querySelectorAll('tbody tr[data-state="up"]').length === 3`);
    assert.deepEqual(await shownStates(), expected);
    assert.equal(await page.textContent('#members-up'), '3 / 3');
    // Traffic between two polls gives a rate above zero.
    for (let i = 0; i < 40; i++) {
      const answer = await httpRequest(`${cluster.urls[i % 3]}${entityPath(`k${i}`)}`, {
        method: 'PUT',
        body: `v${i}`,
      });
      assert.equal(answer.status, 201);
    }
    await waitUntil(`Number(document.getElementById('total-rate').textContent) > 0`);
    await page.screenshot({ path: join(OUTPUT, 'dashboard-all-up.png') });
    assert.deepEqual(refusedByPolicy, []);
  });

  it('shows a stopped node down, and why it cannot be reached', async () => {
    const stopped = cluster.urls[2]!;
    await stopNode(cluster.nodes[2]!);
    await waitUntil(`document.querySelector('tbody tr[data-member="${stopped}"]')?.dataset.state === 'down'`);
    const states = await shownStates();
    assert.equal(states[stopped], 'down');
    assert.equal(states[cluster.urls[0]!], 'up');
    assert.equal(states[cluster.urls[1]!], 'up');
    assert.equal(await page.textContent('#members-up'), '2 / 3');
    const note = await page.textContent(`tbody tr[data-member="${stopped}"] .note`);
    assert.match(note ?? '', /unreachable/);
    await page.screenshot({ path: join(OUTPUT, 'dashboard-one-down.png') });
  });

  it('answers 405 to other methods and serves the page at /ui too', async () => {
    const ui = await httpRequest(`${cluster.urls[0]}/ui`);
    assert.equal(ui.status, 200);
    assert.match(ui.body.toString(), /<title>ringkv<\/title>/);
    const post = await httpRequest(`${cluster.urls[0]}/ui/cluster`, { method: 'POST', body: '' });
    assert.equal(post.status, 405);
  });

  it('shows nothing as live once the node it polls stops answering', async () => {
    await stopNode(cluster.nodes[0]!);
    await waitUntil(`document.getElementById('updated').textContent.startsWith('failed')`);
    await waitUntil(
      `[...document.querySelectorAll('tbody tr')].every((row) => row.dataset.state === 'unknown')`,
    );
    assert.equal(Object.keys(await shownStates()).length, 3, 'the last rows stay, for reference');
    assert.equal(await page.textContent('#members-up'), '–');
    assert.equal(await page.textContent('#total-rate'), '–');
    assert.equal(await page.textContent('tbody tr .state span'), 'unknown');
    await page.screenshot({ path: join(OUTPUT, 'dashboard-node-gone.png') });
  });
});
