// The dashboard end to end in Debian's Chromium, against a real node with
// simulated trackers. Started by tests/e2e/dashboard.rs, which passes:
//   DROVER_URL         the node's HTTP address
//   DROVER_PASSWORD    user admin's password
//   DROVER_DEVICES     how many simulated devices report
//   DROVER_SCREENSHOTS where screenshots go
//   DROVER_CONTROL     a directory: writing `restart` there makes the
//                      harness restart the node (it answers `restarted`)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.DROVER_URL;
const PASSWORD = process.env.DROVER_PASSWORD;
const DEVICES = Number(process.env.DROVER_DEVICES);
const SHOTS = process.env.DROVER_SCREENSHOTS;
const CONTROL = process.env.DROVER_CONTROL;
const WAIT = { timeout: 30_000 };

let browser;
let token;

before(async () => {
  assert.ok(BASE && PASSWORD && DEVICES > 0 && SHOTS, 'DROVER_* environment');
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  token = (await api('POST', '/api/v1/auth/login', { username: 'admin', password: PASSWORD })).token;
});

after(async () => {
  await browser?.close();
});

async function api(method, path, body, bearer = token) {
  const response = await fetch(BASE + path, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/// Every device the API lists, page by page.
async function allDevices() {
  const devices = [];
  let cursor = '';
  for (;;) {
    const page = await api('GET', `/api/v1/devices?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    devices.push(...page.devices);
    if (!page.next_cursor) return devices;
    cursor = encodeURIComponent(page.next_cursor);
  }
}

/// A fresh browser context (its own storage), logged in as `user`.
async function loggedIn(user = 'admin', password = PASSWORD) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error('page error:', error));
  await page.goto(BASE + '/');
  await page.getByTestId('login-username').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('map').waitFor(WAIT);
  return { context, page };
}

async function markerCount(page) {
  return Number(await page.getByTestId('map').getAttribute('data-marker-count'));
}

/// Opens a device that reports a moving fix, from the list.
async function openMovingDevice(page) {
  const moving = (await allDevices()).find((d) => d.state?.kinematics?.moving);
  assert.ok(moving, 'a simulated device is moving');
  await page.getByTestId('device-search').fill(moving.id);
  await page.locator(`[data-testid="device-row"][data-device="${moving.id}"]`).click();
  await page.locator(`[data-testid="device-panel"][data-device="${moving.id}"]`).waitFor(WAIT);
  await page.getByTestId('device-search').fill('');
  return moving.id;
}

test('a wrong password shows an error and stays on the login page', async () => {
  const page = await browser.newPage();
  await page.goto(BASE + '/');
  await page.getByTestId('login-username').fill('admin');
  await page.getByTestId('login-password').fill('not the password');
  await page.getByTestId('login-submit').click();
  const error = page.getByTestId('login-error');
  await error.waitFor(WAIT);
  assert.match(await error.textContent(), /wrong user name or password/i);
  assert.equal(await page.getByTestId('map').count(), 0);
  await page.close();
});

test('every device is a marker, the list matches the API, a moving device moves', async () => {
  const { context, page } = await loggedIn();
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid="map"]')?.getAttribute('data-marker-count')) >= n,
    DEVICES, WAIT);
  assert.equal(await markerCount(page), DEVICES);

  const listed = (await allDevices()).length;
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid="device-list"]')?.getAttribute('data-count')) === n,
    listed, WAIT);
  // Virtualized: only the rows in sight are in the page.
  const rows = await page.getByTestId('device-row').count();
  assert.ok(rows > 0 && rows <= listed, `${rows} rows of ${listed}`);

  const id = await openMovingDevice(page);
  const panel = page.locator(`[data-testid="device-panel"][data-device="${id}"]`);
  const where = async () => [
    await panel.getByTestId('device-lat').textContent(),
    await panel.getByTestId('device-lon').textContent(),
    await panel.getByTestId('device-time').textContent(),
  ];
  const first = await where();
  assert.match(first[0], /^-?\d+\.\d{6}$/);
  await page.waitForFunction(
    ([sel, time]) => document.querySelector(sel)?.textContent !== time,
    [`[data-testid="device-panel"] [data-testid="device-time"]`, first[2]], WAIT);
  const later = await where();
  assert.notDeepEqual(later.slice(0, 2), first.slice(0, 2), 'the position changed');
  await page.screenshot({ path: `${SHOTS}/dashboard.png` });
  await context.close();
});

test('the list searches, filters by status and moves with the keyboard', async () => {
  const { context, page } = await loggedIn();
  const list = page.getByTestId('device-list');
  const count = async () => Number(await list.getAttribute('data-count'));
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="device-list"]')?.getAttribute('data-count')) >= n, DEVICES, WAIT);
  const ids = (await allDevices()).map((d) => d.id).sort();
  // Searching by the end of an IMEI finds that device alone.
  await page.getByTestId('device-search').fill(ids[5].slice(-6));
  await page.waitForFunction(() => document.querySelector('[data-testid="device-list"]')?.getAttribute('data-count') === '1', null, WAIT);
  assert.equal(await page.getByTestId('device-row').getAttribute('data-device'), ids[5]);
  await page.getByTestId('device-search').fill('no such device');
  await page.waitForFunction(() => document.querySelector('[data-testid="device-list"]')?.getAttribute('data-count') === '0', null, WAIT);
  await page.getByTestId('device-search').fill('');
  // Status filters partition the fleet.
  let sum = 0;
  for (const status of ['moving', 'parked', 'offline', 'alarm']) {
    await page.getByTestId('device-status-filter').selectOption(status);
    await page.waitForTimeout(300);
    sum += await count();
  }
  await page.getByTestId('device-status-filter').selectOption('');
  assert.ok(Math.abs(sum - ids.length) <= 2, `statuses add up to ${sum} of ${ids.length} (devices change state meanwhile)`);
  // Arrow keys move the selection along the list, opening each device.
  await page.locator(`[data-testid="device-row"][data-device="${ids[0]}"]`).click();
  await list.focus();
  await page.keyboard.press('ArrowDown');
  await page.locator(`[data-testid="device-panel"][data-device="${ids[1]}"]`).waitFor(WAIT);
  await page.keyboard.press('ArrowUp');
  await page.locator(`[data-testid="device-panel"][data-device="${ids[0]}"]`).waitFor(WAIT);
  await context.close();
});

test('a device panel charts its history and replays its trip', async () => {
  const { context, page } = await loggedIn();
  const id = await openMovingDevice(page);
  const speed = page.getByTestId('chart-speed');
  await speed.waitFor(WAIT);
  assert.ok(Number(await speed.getAttribute('data-points')) > 1, 'the speed chart has points');

  const trip = page.getByTestId('trip-row').first();
  await trip.waitFor(WAIT);
  await trip.getByTestId('trip-replay').click();
  const replay = page.getByTestId('replay');
  await replay.waitFor(WAIT);
  assert.equal(await page.getByTestId('replay-time').getAttribute('data-index'), '0');
  await page.getByTestId('replay-play').click();
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid="replay-time"]')?.getAttribute('data-index')) > 0,
    null, WAIT);
  await page.screenshot({ path: `${SHOTS}/replay.png` });
  assert.ok(id);
  await context.close();
});

test('an alert appears live, is acknowledged, and the API agrees', async () => {
  const { context, page } = await loggedIn();
  await page.getByTestId('tab-alerts').click();
  const moving = (await allDevices()).find((d) => d.state?.kinematics?.moving && d.state.kinematics.speed_kmh > 5);
  assert.ok(moving, 'a device drives');
  // Registered with a limit it is bound to exceed: an overspeed alert.
  await api('PATCH', `/api/v1/devices/${moving.id}`, { speed_limit_kmh: 1 }).catch(async () =>
    api('POST', '/api/v1/devices', { id: moving.id, speed_limit_kmh: 1 }));
  const row = page.locator(`[data-testid="alert-row"][data-alert^="${moving.id}-overspeed"]`).first();
  await row.waitFor(WAIT);
  const badge = Number(await page.getByTestId('alerts-badge').getAttribute('data-count'));
  assert.ok(badge >= 1, `badge ${badge}`);
  const alertId = await row.getAttribute('data-alert');
  await row.getByTestId('alert-ack').click();
  await page.locator(`[data-testid="alert-row"][data-alert="${alertId}"][data-state="acknowledged"]`).waitFor(WAIT);
  const stored = await api('GET', `/api/v1/alerts?device=${moving.id}&kind=overspeed`);
  assert.equal(stored.alerts.find((a) => a.id === alertId)?.state, 'acknowledged');
  await context.close();
});

// Logged in, on the geofences tab with `tool` ('circle' or 'polygon')
// chosen, and the map's centre in page coordinates.
async function drawing(tool) {
  const { context, page } = await loggedIn();
  await page.getByTestId('tab-geofences').click();
  await page.getByTestId(`geofence-draw-${tool}`).click();
  const box = await page.locator('[data-testid="map"] canvas').boundingBox();
  return { context, page, x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

test('a geofence drawn on the map is in the API', async () => {
  const { context, page, x, y } = await drawing('circle');
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + 40, y, { steps: 4 });
  await page.mouse.move(x + 80, y, { steps: 4 });
  await page.mouse.up();
  await page.getByTestId('geofence-name').fill('drawn in the browser');
  await page.getByTestId('geofence-save').click();
  await page.locator('[data-testid="geofence-row"]', { hasText: 'drawn in the browser' }).waitFor(WAIT);
  const fences = (await api('GET', '/api/v1/geofences')).geofences;
  const drawn = fences.find((f) => f.name === 'drawn in the browser');
  assert.ok(drawn, JSON.stringify(fences));
  assert.equal(drawn.geometry.type, 'Point');
  assert.ok(drawn.radius_m > 1, `radius ${drawn.radius_m}`);
  await context.close();
});

test('a polygon drawn corner by corner is in the API', async () => {
  const { context, page, x, y } = await drawing('polygon');
  for (const [dx, dy] of [[-60, -40], [60, -40], [0, 50]]) {
    await page.mouse.click(x + dx, y + dy);
  }
  await page.getByTestId('geofence-name').fill('yard');
  await page.getByTestId('geofence-limit').fill('20');
  await page.getByTestId('geofence-save').click();
  await page.locator('[data-testid="geofence-row"]', { hasText: 'yard' }).waitFor(WAIT);
  const yard = (await api('GET', '/api/v1/geofences')).geofences.find((f) => f.name === 'yard');
  assert.equal(yard?.geometry.type, 'Polygon');
  // Three corners, the ring closed by repeating the first.
  assert.equal(yard.geometry.coordinates[0].length, 4);
  assert.equal(yard.speed_limit_kmh, 20);
  // Deleting it from the list removes it from the API.
  page.once('dialog', (dialog) => dialog.accept());
  await page.locator(`[data-testid="geofence-row"][data-geofence="${yard.id}"]`).getByTestId('geofence-delete').click();
  await page.locator(`[data-testid="geofence-row"][data-geofence="${yard.id}"]`).waitFor({ state: 'detached', ...WAIT });
  const left = (await api('GET', '/api/v1/geofences')).geofences.map((f) => f.id);
  assert.ok(!left.includes(yard.id));
  await context.close();
});

test('an admin registers and disables a device from the admin page', async () => {
  const { context, page } = await loggedIn();
  await page.getByTestId('tab-admin').click();
  await page.getByTestId('admin-device-id').fill('359000000000777');
  await page.getByTestId('admin-device-name').fill('Van 777');
  await page.getByTestId('admin-device-register').click();
  const row = page.locator('[data-testid="admin-device-row"][data-device="359000000000777"]');
  await row.waitFor(WAIT);
  assert.equal((await api('GET', '/api/v1/devices/359000000000777')).name, 'Van 777');
  await row.getByTestId('admin-device-disable').click();
  for (let i = 0; i < 50; i++) {
    if ((await api('GET', '/api/v1/devices/359000000000777')).disabled) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal((await api('GET', '/api/v1/devices/359000000000777')).disabled, true);
  await context.close();
});

test('a command sent from the panel is answered by the simulated tracker', async () => {
  const { context, page } = await loggedIn();
  await openMovingDevice(page);
  await page.getByTestId('command-type').selectOption('engine_stop');
  await page.getByTestId('command-send').click();
  // Cutting an engine asks first.
  await page.getByTestId('command-confirm').click();
  await page.locator('[data-testid="command-row"][data-status="answered"]').first().waitFor(WAIT);
  await context.close();
});

test('a session that stops working goes back to the login page with a message', async () => {
  await api('POST', '/api/v1/users', { username: 'brief', password: 'brief password', role: 'viewer' });
  const { context, page } = await loggedIn('brief', 'brief password');
  await api('DELETE', '/api/v1/users/brief');
  // The live stream may notice first; otherwise the next request (the
  // geofence list) answers 401.
  const notice = page.getByTestId('login-notice');
  if (!(await notice.isVisible())) {
    await page.getByTestId('tab-geofences').click({ timeout: 5_000 }).catch(() => {});
  }
  await notice.waitFor(WAIT);
  assert.match(await page.getByTestId('login-notice').textContent(), /expired/i);
  assert.equal(await page.evaluate(() => localStorage.getItem('drover.session')), null);
  await context.close();
});

test('after the node restarts, the dashboard reconnects and resyncs', async () => {
  const { context, page } = await loggedIn();
  const link = page.getByTestId('link-state');
  await page.waitForFunction(() => document.querySelector('[data-testid="link-state"]')?.textContent === 'live', null, WAIT);
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid="map"]')?.getAttribute('data-marker-count')) >= n,
    DEVICES, WAIT);
  writeFileSync(`${CONTROL}/restart`, '');
  await page.waitForFunction(() => /reconnecting|connecting/.test(document.querySelector('[data-testid="link-state"]')?.textContent), null, WAIT);
  for (let i = 0; i < 600 && !existsSync(`${CONTROL}/restarted`); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(existsSync(`${CONTROL}/restarted`), 'the harness restarted the node');
  await page.waitForFunction(() => document.querySelector('[data-testid="link-state"]')?.textContent === 'live', null, WAIT);
  // The new connection's snapshot brings the whole fleet back.
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid="map"]')?.getAttribute('data-marker-count')) >= n,
    DEVICES, WAIT);
  assert.equal(await markerCount(page), DEVICES);
  assert.equal(await link.textContent(), 'live');
  // The session survived: the same token works on the restarted node.
  assert.equal(await page.getByTestId('login-submit').count(), 0);
  await context.close();
});
