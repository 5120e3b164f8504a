// End-to-end: a short LeNet training with --dashboard, and a real headless
// Chromium on its page. Checks that the loss chart gains points as
// iterations pass and that the net graph shows conv1 with its shape.
//
// Environment: CAFFE (the caffe binary), SOLVER (a LeNet solver whose data
// exists), CHROMIUM (default /usr/bin/chromium), SHOTS (a folder for
// screenshots, optional). Prints "browser: N passed, M failed".
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const caffe = process.env.CAFFE;
const solver = process.env.SOLVER;
const shots = process.env.SHOTS || '';
if (!caffe || !solver) {
  console.error('set CAFFE and SOLVER');
  process.exit(2);
}

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok - ${name}`); } else { failed++; console.log(`not ok - ${name} ${detail}`); }
}

const train = spawn(caffe, ['train', `--solver=${solver}`, '--dashboard=127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
const url = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no dashboard address in 120 s:\n' + log)), 120000);
  train.stderr.on('data', (chunk) => {
    log += chunk;
    const m = /Dashboard: (http:\/\/[0-9.:]+\/)/.exec(log);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  train.on('exit', (code) => reject(new Error(`caffe exited (${code}) before serving:\n${log}`)));
});
console.log(`dashboard at ${url}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  const points = () => page.$eval('#chart-loss', (el) => Number(el.dataset.points));
  await page.waitForFunction(() => Number(document.querySelector('#chart-loss').dataset.points) >= 2, null, { timeout: 120000 });
  const first = await points();
  const firstIter = await page.$eval('#iter', (el) => Number(el.textContent));
  // No reload: the page must grow by itself as the solver displays.
  await page.waitForFunction((n) => Number(document.querySelector('#chart-loss').dataset.points) > n, first, { timeout: 120000 });
  const later = await points();
  const laterIter = await page.$eval('#iter', (el) => Number(el.textContent));
  check('the loss chart gains points as iterations pass', later > first && laterIter > firstIter,
    `${first} points at iteration ${firstIter}, ${later} at ${laterIter}`);
  const lines = await page.$$eval('#chart-loss polyline.series', (ps) => ps.map((p) => p.getAttribute('points').split(' ').length));
  check('raw and smoothed loss are both drawn', lines.length === 2 && lines.every((n) => n === later), JSON.stringify(lines));

  await page.waitForSelector('#net g.node.layer[data-name="conv1"]', { timeout: 60000 });
  const conv = await page.$eval('#net g.node.layer[data-name="conv1"]', (g) => ({ text: g.textContent, box: g.getBoundingClientRect().width }));
  check('the net graph shows the conv1 layer', conv.text.includes('conv1') && conv.text.includes('Convolution') && conv.box > 0, JSON.stringify(conv));
  const blob = await page.$eval('#net g.node.blob[data-name="conv1"]', (g) => ({ shape: g.dataset.shape, text: g.textContent }));
  check('conv1 is drawn with its shape', blob.shape === '64 20 24 24' && blob.text.includes('64 20 24 24 (737280)'), JSON.stringify(blob));
  const phases = await page.$eval('#net g.node.layer[data-name="accuracy"]', (g) => g.dataset.phases);
  check('the TEST-only accuracy layer is marked with its phase', phases === 'TEST', phases);

  await page.waitForSelector('#layer-times tr[data-layer="conv1"]', { timeout: 60000 });
  check('per-layer times are listed', (await page.$$('#layer-times tr[data-layer]')).length >= 9);
  await page.waitForFunction(() => Number(document.querySelector('#chart-test').dataset.points) >= 1, null, { timeout: 120000 });
  check('test outputs are charted', true);
  check('the page raised no script errors', errors.length === 0, errors.join('; '));
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: `${shots}/dashboard-full.png`, fullPage: true });
    console.log(`screenshot: ${shots}/dashboard-full.png`);
  }
} catch (e) {
  failed++;
  console.log(`not ok - ${e.message}`);
} finally {
  await browser.close();
  train.kill('SIGINT');
}
const code = await new Promise((resolve) => train.on('exit', (c) => resolve(c)));
check('training stops cleanly on SIGINT', code === 0, `exit ${code}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
