// Drives headless Chromium over a running hub's status page and checks what
// a person would see: the fleet table, a cluster page, a commit page, the
// links between them, and that no script runs. tests/tests/page.rs starts a
// real hub and spokes, writes the expectations file, and runs:
//
//   node check-page.mjs EXPECT.json
//
// EXPECT.json: { "base": "http://127.0.0.1:PORT", "screenshots": DIR,
//   "chromium": "/usr/bin/chromium",
//   "clusters": [{ "name", "env", "sync", "health", "revision" }],
//   "drifted": { "cluster", "object" }, "renderError": { "cluster", "file" },
//   "commit": { "id", "title", "running": [names] },
//   "rollout": { "cluster", "env", "wave" } }
//
// Exit 0 when every check passed; otherwise 1, naming the check, the page
// and what it found. Screenshots go to DIR/{fleet,cluster,commit}.png.

import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const want = JSON.parse(readFileSync(process.argv[2], 'utf8'));
mkdirSync(want.screenshots, { recursive: true });

let failures = 0;
function check(ok, what, found) {
  if (ok) {
    console.log(`ok: ${what}`);
  } else {
    failures++;
    console.log(`FAILED: ${what}; found: ${JSON.stringify(found)}`);
  }
}

const browser = await chromium.launch({
  executablePath: want.chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  // The fleet at a glance.
  let resp = await page.goto(want.base + '/');
  check(resp.status() === 200, 'GET / answers 200', resp.status());
  check((resp.headers()['content-type'] || '').startsWith('text/html'), '/ is HTML', resp.headers()['content-type']);
  const refresh = await page.getAttribute('meta[http-equiv="refresh"]', 'content');
  check(Number(refresh) > 0, '/ reloads itself (meta refresh)', refresh);
  check(await page.evaluate(() => document.scripts.length) === 0, '/ has no script', 'a <script>');
  for (const c of want.clusters) {
    const row = page.locator(`tr[data-cluster="${c.name}"]`);
    check(await row.count() === 1, `/ lists ${c.name}`, await row.count());
    if (await row.count() !== 1) continue;
    const sync = (await row.locator('.sync').textContent()).trim();
    check(sync === c.sync, `${c.name} sync is ${c.sync}`, sync);
    const health = (await row.locator('.health').textContent()).trim();
    check(health === c.health, `${c.name} health is ${c.health}`, health);
    const text = await row.textContent();
    check(text.includes(c.revision), `${c.name} runs ${c.revision}`, text);
    const env = await page.locator(`h2#env-${c.env}`).count();
    check(env === 1, `${c.name} sits under env ${c.env}`, env);
  }
  const hubRev = await page.locator('#hub-revision').textContent();
  check(hubRev.includes(want.commit.id.slice(0, 8)), 'the hub revision is shown', hubRev);
  check(hubRev.includes(want.commit.title), 'the commit title is shown as text, escaped', hubRev);
  await page.screenshot({ path: join(want.screenshots, 'fleet.png'), fullPage: true });

  // Fleet -> cluster, by the link a person would click.
  const d = want.drifted;
  await page.click(`tr[data-cluster="${d.cluster}"] td:first-child a`);
  await page.waitForURL(`**/clusters/${d.cluster}`);
  check((await page.textContent('h1#cluster')).trim() === d.cluster, `the link opens ${d.cluster}'s page`, page.url());
  const drift = await page.locator('#drift').textContent();
  check(drift.includes(d.object), `${d.cluster} shows drifted ${d.object}`, drift);
  const e = want.renderError;
  const errs = e.cluster === d.cluster ? await page.locator('#render-errors').textContent() : '';
  check(errs.includes(e.file), `${e.cluster} shows the render error in ${e.file}`, errs);
  const history = await page.locator('#history').textContent();
  check(history.includes(want.commit.id.slice(0, 8)), `${d.cluster}'s history names the commit it applied`, history);
  check(await page.locator('h3.app').count() >= 1, `${d.cluster} lists its apps`, await page.locator('h3.app').count());
  const r = want.rollout;
  const rollout = await page.locator('#rollout').textContent();
  check(rollout.includes(r.env), `${r.cluster} shows the ${r.env} rollout`, rollout);
  const wave = await page.locator('table.waves tr', { hasText: r.wave }).locator('strong').textContent();
  check(wave === r.cluster, `${r.cluster} is marked in wave ${r.wave}`, wave);
  await page.screenshot({ path: join(want.screenshots, 'cluster.png'), fullPage: true });

  // Cluster -> commit.
  await page.click('table.revisions tr:first-child a');
  await page.waitForURL(`**/commits/${want.commit.id}`);
  check((await page.textContent('h1#commit')).trim() === want.commit.id, 'the applied revision links its commit page', page.url());
  const running = await page.locator('#running tr[data-cluster]').evaluateAll((rows) => rows.map((r) => r.dataset.cluster));
  check(JSON.stringify(running) === JSON.stringify(want.commit.running), `commit runs on ${want.commit.running}`, running);
  await page.screenshot({ path: join(want.screenshots, 'commit.png'), fullPage: true });

  // Commit -> cluster -> back to the fleet.
  await page.click(`#running tr[data-cluster="${want.commit.running[0]}"] a`);
  await page.waitForURL(`**/clusters/${want.commit.running[0]}`);
  await page.click('nav a[href="/"]');
  await page.waitForURL(want.base + '/');
  check(await page.locator('tr[data-cluster]').count() === want.clusters.length, 'the nav leads back to the fleet', page.url());

  check(consoleErrors.length === 0, 'no console errors (CSP violations included)', consoleErrors);

  // Bad input gets a page that says what was wrong.
  resp = await page.goto(want.base + '/clusters/no-such-cluster');
  const body = await page.textContent('body');
  check(resp.status() === 404 && body.includes('no-such-cluster'), 'an unknown cluster is a 404 naming it', [resp.status(), body]);
  resp = await page.goto(want.base + '/commits/not-hex');
  check(resp.status() === 400 && (await page.textContent('body')).includes('hexadecimal'), 'a malformed commit id is a 400 saying why', resp.status());
} finally {
  await browser.close();
}
if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log(`all checks passed; screenshots in ${want.screenshots}`);
