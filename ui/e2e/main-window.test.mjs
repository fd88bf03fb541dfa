// Real-window smoke test: the built app under Xvfb, driven through tauri-driver and WebKitWebDriver.
//
// Run by scripts/test-all as:  xvfb-run -a node --test e2e/
// Needs: OUTPOST_APP_BIN (the built app), OUTPOST_SEED_BIN (the seed_notes example).
// Optional: OUTPOST_SCREENSHOT (where to save a PNG of the window; default e2e/.artifacts/main.png),
//           TAURI_DRIVER (default: tauri-driver on PATH or in ~/.cargo/bin),
//           WEBKIT_WEBDRIVER (default /usr/bin/WebKitWebDriver).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Builder, By, Capabilities, Key, until } from 'selenium-webdriver';

const here = path.dirname(fileURLToPath(import.meta.url));
const DRIVER_PORT = 4444; // tauri-driver
const NATIVE_PORT = 4445; // WebKitWebDriver, started by tauri-driver
const SEEDED = ['Pump station 4', 'Bridge inspection, north span'];

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/test-all sets it)`);
  if (!existsSync(value)) throw new Error(`${name}=${value} does not exist`);
  return value;
}

function tauriDriverPath() {
  if (process.env.TAURI_DRIVER) return process.env.TAURI_DRIVER;
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin', 'tauri-driver');
  return existsSync(cargoBin) ? cargoBin : 'tauri-driver';
}

// Resolves once something accepts TCP connections on the port; no fixed sleeps.
async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('main window', { timeout: 120_000 }, () => {
  let dataDir;
  let driverProcess;
  let driverLog = '';
  let driver;

  before(async () => {
    const appBin = required('OUTPOST_APP_BIN');
    const seedBin = required('OUTPOST_SEED_BIN');
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'outpost-window-'));
    execFileSync(seedBin, [dataDir, ...SEEDED], { stdio: 'inherit' });

    // The app inherits this environment through tauri-driver and WebKitWebDriver.
    driverProcess = spawn(
      tauriDriverPath(),
      ['--port', String(DRIVER_PORT), '--native-port', String(NATIVE_PORT),
        '--native-driver', process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver'],
      { env: { ...process.env, OUTPOST_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    driverProcess.stdout.on('data', (d) => { driverLog += d; });
    driverProcess.stderr.on('data', (d) => { driverLog += d; });
    await waitForPort(DRIVER_PORT, 15_000);
    await waitForPort(NATIVE_PORT, 15_000);

    const capabilities = new Capabilities();
    capabilities.setBrowserName('wry');
    capabilities.set('tauri:options', { application: appBin });
    driver = await new Builder()
      .usingServer(`http://127.0.0.1:${DRIVER_PORT}/`)
      .withCapabilities(capabilities)
      .build();
    await driver.wait(until.elementLocated(By.css('body[data-ready="true"]')), 20_000);
  });

  after(async () => {
    try {
      await driver?.quit();
    } finally {
      driverProcess?.kill();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (process.exitCode && driverLog) console.error(`tauri-driver output:\n${driverLog}`);
    }
  });

  // Read in one script: the list is re-rendered on every change, so element handles go stale.
  function titles() {
    return driver.executeScript(
      "return [...document.querySelectorAll('#notes .note-title')].map((e) => e.textContent);",
    );
  }

  it('lists the notes that are already in the store', async () => {
    const shown = await titles();
    for (const title of SEEDED) assert.ok(shown.includes(title), `${title} not in ${JSON.stringify(shown)}`);
    assert.equal(await driver.findElement(By.id('empty-state')).isDisplayed(), false);
    const badges = await driver.findElements(By.css('#notes .badge'));
    assert.equal(badges.length, SEEDED.length);
  });

  it('adds a note typed into the input', async () => {
    const title = 'Added through the window';
    const input = await driver.findElement(By.id('new-note-title'));
    await input.sendKeys(title, Key.ENTER);
    // The list re-reads on the `notes-changed` event, so this also proves the event path.
    await driver.wait(async () => (await titles()).includes(title), 10_000, `"${title}" never appeared`);
    assert.equal(await input.getAttribute('value'), '');
    assert.equal(await driver.findElement(By.id('error')).isDisplayed(), false);
  });

  it('lets the IPC through on its own scheme, without the postMessage fallback', async () => {
    // Tauri's IPC script calls the global fetch on `ipc://localhost/<cmd>` and falls back to
    // postMessage for good if that fails (e.g. a CSP that blocks `ipc:`). Watch one command.
    const seen = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      const violations = [];
      const onViolation = (e) => violations.push(e.effectiveDirective + ' ' + e.blockedURI);
      document.addEventListener('securitypolicyviolation', onViolation);
      const urls = [];
      const realFetch = window.fetch;
      window.fetch = (input, init) => { urls.push(String(input)); return realFetch(input, init); };
      window.__TAURI_INTERNALS__.invoke('list_notes')
        .then((page) => ({ ok: page.items.length }), (e) => ({ error: JSON.stringify(e) }))
        .then((result) => setTimeout(() => {
          window.fetch = realFetch;
          document.removeEventListener('securitypolicyviolation', onViolation);
          done({ result, urls, violations });
        }, 100));
    `);
    assert.deepEqual(seen.violations, []);
    assert.ok(seen.urls.some((u) => u.startsWith('ipc://localhost/list_notes')), JSON.stringify(seen));
    assert.equal(seen.result.ok, SEEDED.length + 1, JSON.stringify(seen));
  });

  it('cannot reach the network: the CSP blocks fetch', async () => {
    // A loopback address that nothing needs to serve: the CSP must refuse it before any socket.
    const directive = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      document.addEventListener('securitypolicyviolation', (e) => done(e.effectiveDirective), { once: true });
      fetch('http://127.0.0.1:9/csp-probe').catch(() => {});
      setTimeout(() => done('no violation'), 3000);
    `);
    assert.equal(directive, 'connect-src');
  });

  it('saves a screenshot', async () => {
    // Two animation frames, or the screenshot can show the page before the last render.
    await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      requestAnimationFrame(() => requestAnimationFrame(() => done()));
    `);
    const file = process.env.OUTPOST_SCREENSHOT ?? path.join(here, '.artifacts', 'main.png');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, Buffer.from(await driver.takeScreenshot(), 'base64'));
    console.log(`screenshot: ${file}`);
  });
});
