// Shared by the real-window tests: the built app under Xvfb, driven through tauri-driver and
// WebKitWebDriver, and real Outpost processes beside it (the sync server, the CLI as a second
// device). Nothing is mocked.
//
// Needs: OUTPOST_APP_BIN (the built app), OUTPOST_BIN_DIR (where outpost, outpost-server and the
// seed_notes example are). Optional: OUTPOST_SCREENSHOT_DIR (default e2e/.artifacts),
// TAURI_DRIVER, WEBKIT_WEBDRIVER.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Builder, By, Capabilities, Key, until } from 'selenium-webdriver';

const here = path.dirname(fileURLToPath(import.meta.url));
const DRIVER_PORT = 4444; // tauri-driver
const NATIVE_PORT = 4445; // WebKitWebDriver, started by tauri-driver
export const PASSWORD = 'correct horse battery';

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/test-all sets it)`);
  if (!existsSync(value)) throw new Error(`${name}=${value} does not exist`);
  return value;
}

export function bin(name) {
  const file = path.join(required('OUTPOST_BIN_DIR'), name);
  if (!existsSync(file)) throw new Error(`${file} is not built`);
  return file;
}

function tauriDriverPath() {
  if (process.env.TAURI_DRIVER) return process.env.TAURI_DRIVER;
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin', 'tauri-driver');
  return existsSync(cargoBin) ? cargoBin : 'tauri-driver';
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves once something accepts TCP connections on the port; no fixed sleeps.
export async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Resolves true once nothing accepts connections on the port (false after `timeoutMs`). */
async function portClosed(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (!open) return true;
    await sleep(100);
  }
  return false;
}

/** A port nothing listens on right now (the server restarts on the same one). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix) {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The real sync server on 127.0.0.1:port with its own SQLite directory. */
export class SyncServer {
  constructor(port, dataDir) {
    this.port = port;
    this.dataDir = dataDir;
    this.url = `http://127.0.0.1:${port}`;
    this.log = '';
  }

  async start() {
    this.process = spawn(bin('outpost-server'), ['--data-dir', this.dataDir, '--listen', `127.0.0.1:${this.port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process.stdout.on('data', (d) => { this.log += d; });
    this.process.stderr.on('data', (d) => { this.log += d; });
    await waitForPort(this.port, 20_000);
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((r) => this.process.once('exit', r));
    this.process.kill('SIGKILL');
    await exited;
  }
}

/** `outpost --data-dir DIR ...`: a second device, as a QA script drives it. */
export function outpost(dir, args, input) {
  return execFileSync(bin('outpost'), ['--data-dir', dir, ...args], {
    env: { ...process.env, OUTPOST_PASSWORD: PASSWORD, DBUS_SESSION_BUS_ADDRESS: 'disabled:' },
    input,
    encoding: 'utf8',
  });
}

export function outpostJson(dir, args) {
  return JSON.parse(outpost(dir, [...args, '--json']));
}

/** Seeds a data dir through the core (notes with their outbox entries), before the app starts. */
export function seed(dir, titles) {
  execFileSync(bin(path.join('examples', 'seed_notes')), [dir, ...titles], { stdio: 'inherit' });
}

/** tauri-driver plus a session on the built app with `env` (e.g. OUTPOST_DATA_DIR). */
export async function openApp(env) {
  const appBin = required('OUTPOST_APP_BIN');
  let log = '';
  const driverProcess = spawn(
    tauriDriverPath(),
    ['--port', String(DRIVER_PORT), '--native-port', String(NATIVE_PORT),
      '--native-driver', process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver'],
    // The token goes to the data dir's 0600 file: no keychain daemon runs under Xvfb.
    { env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'disabled:', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  driverProcess.stdout.on('data', (d) => { log += d; });
  driverProcess.stderr.on('data', (d) => { log += d; });
  await waitForPort(DRIVER_PORT, 15_000);
  await waitForPort(NATIVE_PORT, 15_000);
  const capabilities = new Capabilities();
  capabilities.setBrowserName('wry');
  capabilities.set('tauri:options', { application: appBin });
  const driver = await new Builder()
    .usingServer(`http://127.0.0.1:${DRIVER_PORT}/`)
    .withCapabilities(capabilities)
    .build();
  await driver.wait(until.elementLocated(By.css('body[data-ready="true"]')), 30_000);
  return {
    driver,
    log: () => log,
    async close() {
      try {
        await driver.quit();
      } finally {
        const exited = new Promise((r) => driverProcess.once('exit', r));
        driverProcess.kill();
        await Promise.race([exited, sleep(5000)]);
        // tauri-driver's WebKitWebDriver can outlive it for a moment; the next session needs
        // its port (one session at a time), so wait for it to go, and end it if it lingers.
        if (!(await portClosed(NATIVE_PORT, 3000))) {
          try { execFileSync('pkill', ['-f', `WebKitWebDriver.*${NATIVE_PORT}`]); } catch { /* gone */ }
          await portClosed(NATIVE_PORT, 3000);
        }
      }
    },
  };
}

export const byTestId = (id) => By.css(`[data-testid="${id}"]`);

/** Waits until `check()` is truthy (polling), failing with `what` and the last value. */
export async function waitFor(what, check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: still not true after ${timeoutMs} ms (last: ${String(last)})`);
    await sleep(150);
  }
}

/** Text of the first element with the test id, or null. */
export async function textOf(driver, id) {
  return driver.executeScript(
    `const e = document.querySelector('[data-testid="${id}"]'); return e ? e.textContent.trim() : null;`,
  );
}

export async function click(driver, id) {
  const element = await driver.wait(until.elementLocated(byTestId(id)), 10_000);
  await driver.wait(until.elementIsEnabled(element), 10_000);
  await element.click();
}

/** Replaces the text of an input through real key presses. */
export async function typeInto(driver, id, text) {
  const element = await driver.wait(until.elementLocated(byTestId(id)), 10_000);
  await element.clear();
  await element.sendKeys(text);
  return element;
}

/** Titles and sync states of the note rows on screen. */
export async function rows(driver) {
  return driver.executeScript(`return [...document.querySelectorAll('[data-testid="note-row"]')].map((r) => ({
    id: r.dataset.id,
    title: r.querySelector('.note-title')?.textContent ?? '',
    state: r.querySelector('[data-testid="sync-badge"]')?.dataset.state ?? '',
  }));`);
}

export async function screenshot(driver, name) {
  // Two animation frames, or the screenshot can show the page before the last render.
  await driver.executeAsyncScript(`
    const done = arguments[arguments.length - 1];
    requestAnimationFrame(() => requestAnimationFrame(() => done()));
  `);
  const dir = process.env.OUTPOST_SCREENSHOT_DIR ?? path.join(here, '.artifacts');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  // WebKitWebDriver takes the screenshot at the next paint. With compositing off (the app's
  // default on Linux) a still page paints nothing, and the merge screen waited 50 s for the
  // status bar's clock; a dot (invisible: 1 px, 1-2% grey) repainted every 50 ms makes the paint.
  await driver.executeScript(`
    const dot = document.createElement('div');
    dot.id = '__repaint';
    dot.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;pointer-events:none;background:rgba(0,0,0,0.01)';
    document.body.append(dot);
    let on = false;
    window.__repaint = setInterval(() => { on = !on; dot.style.background = on ? 'rgba(0,0,0,0.02)' : 'rgba(0,0,0,0.01)'; }, 50);`);
  writeFileSync(file, Buffer.from(await driver.takeScreenshot(), 'base64'));
  await driver.executeScript(`clearInterval(window.__repaint); document.getElementById('__repaint')?.remove();`);
  return file;
}

export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Ctrl+A as real key presses (W3C actions: a chord through sendKeys can leave Ctrl held). */
export async function selectAll(driver) {
  await driver.actions().keyDown(Key.CONTROL).sendKeys('a').keyUp(Key.CONTROL).perform();
}

/** Text as key presses, each line break an Enter. */
export function keys(text) {
  return text.split('\n').flatMap((line, i) => (i === 0 ? [line] : [Key.ENTER, line]));
}
