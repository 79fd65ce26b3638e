// Dashboard performance in Debian's Chromium against a running node with a
// large simulated fleet (docs/benchmarks.md, "Dashboard"):
//   node perf.mjs URL PASSWORD DEVICES [SECONDS]
// Reports, as JSON: time from pressing "Log in" to every marker drawn,
// frame times while the stream updates the fleet and while panning (rAF
// intervals), the main thread's long tasks, the tab's memory (renderer
// RSS and JS heap), and what the page downloaded (gzipped as served).
import { readFileSync, readdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, password, devicesArg, secondsArg] = process.argv.slice(2);
const devices = Number(devicesArg);
const seconds = Number(secondsArg ?? 10);
if (!url || !password || !(devices > 0)) {
  console.error('usage: node perf.mjs URL PASSWORD DEVICES [SECONDS]');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
const page = await context.newPage();
let downloaded = 0;
page.on('response', async (response) => {
  const length = Number(response.headers()['content-length'] ?? 0);
  if (response.url().startsWith(url) && !response.url().includes('/api/')) downloaded += length;
});

// When the stream's snapshot arrives, to split the time to all markers
// into the server's part and the page's.
await page.addInitScript(() => {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__wsOpened = performance.now();
      this.addEventListener('message', () => { window.__snapshotAt ??= performance.now(); }, { once: true });
    }
  };
});
await page.goto(url + '/');
await page.getByTestId('login-username').fill('admin');
await page.getByTestId('login-password').fill(password);
const t0 = Date.now();
await page.getByTestId('login-submit').click();
await page.waitForFunction(
  (n) => Number(document.querySelector('[data-testid="map"]')?.getAttribute('data-marker-count')) >= n,
  devices, { timeout: 120_000, polling: 'raf' });
const loginToMarkers = Date.now() - t0;
const markersAt = await page.evaluate(() => performance.now());
const stream = await page.evaluate(() => ({ opened: window.__wsOpened, snapshot: window.__snapshotAt }));

/// rAF intervals and long tasks over `ms`, while `act` runs.
async function frames(ms, act) {
  await page.evaluate((ms) => {
    window.__frames = [];
    window.__long = [];
    new PerformanceObserver((list) => window.__long.push(...list.getEntries().map((e) => e.duration)))
      .observe({ type: 'longtask', buffered: false });
    let last = performance.now();
    const end = last + ms;
    const tick = (now) => {
      window.__frames.push(now - last);
      last = now;
      if (now < end) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, ms);
  await act();
  await page.waitForTimeout(ms + 200);
  const { frames, long } = await page.evaluate(() => ({ frames: window.__frames, long: window.__long }));
  frames.sort((a, b) => a - b);
  const pick = (q) => frames[Math.min(frames.length - 1, Math.floor(q * frames.length))];
  const total = frames.reduce((a, b) => a + b, 0);
  return {
    fps: Math.round((frames.length / total) * 1000 * 10) / 10,
    frame_ms_p50: Math.round(pick(0.5) * 10) / 10,
    frame_ms_p95: Math.round(pick(0.95) * 10) / 10,
    frame_ms_max: Math.round(frames[frames.length - 1] * 10) / 10,
    long_tasks: long.length,
  };
}

const streaming = await frames(seconds * 1000, async () => {});
const box = await page.locator('[data-testid="map"] canvas').boundingBox();
const panning = await frames(seconds * 1000, async () => {
  const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
  const end = Date.now() + seconds * 1000;
  let direction = 1;
  while (Date.now() < end) {
    await page.mouse.move(cx - 150 * direction, cy);
    await page.mouse.down();
    await page.mouse.move(cx + 150 * direction, cy + 40 * direction, { steps: 30 });
    await page.mouse.up();
    direction = -direction;
  }
});

const cdp = await context.newCDPSession(page);
await cdp.send('Performance.enable');
const metrics = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));

/// Resident memory of the renderer processes (the tab), from /proc.
function rendererRss() {
  let kib = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--type=renderer') || cmd.includes('--extension-process')) continue;
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kib += rss ? Number(rss[1]) : 0;
    } catch { /* the process ended */ }
  }
  return Math.round(kib / 1024);
}

console.log(JSON.stringify({
  devices,
  markers: Number(await page.getByTestId('map').getAttribute('data-marker-count')),
  login_to_all_markers_ms: loginToMarkers,
  stream_open_to_snapshot_ms: Math.round(stream.snapshot - stream.opened),
  snapshot_to_markers_ms: Math.round(markersAt - stream.snapshot),
  streaming,
  panning,
  renderer_rss_mib: rendererRss(),
  js_heap_mib: Math.round(metrics.JSHeapUsedSize / 1048576),
  downloaded_kib: Math.round(downloaded / 1024),
}, null, 2));
await browser.close();
