// Real-window test of quitting and starting again: the window comes back at the size it was
// left at, and an edit made with no server stays queued across the quit (the engine stops
// cleanly, and the log says so). Single instance is not tested here: on Linux it goes through
// the D-Bus session bus, and none runs under Xvfb in CI.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  byTestId, click, openApp, removeDir, required, rows, sleep, tempDir, textOf, typeInto, waitFor,
} from './support.mjs';

/** The processes of the app under test: this build's binary with this test's data directory
 * (not an app a developer started by hand from the same build). */
function appPids(dataDir) {
  const bin = required('OUTPOST_APP_BIN');
  const pids = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] !== bin) continue;
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (environ.includes(`OUTPOST_DATA_DIR=${dataDir}`)) pids.push(Number(pid));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

describe('quitting and starting again', { timeout: 180_000 }, () => {
  let dataDir;
  let xdgDir;
  let app;
  let env;

  before(() => {
    dataDir = tempDir('outpost-window-restart-');
    // The platform dirs (window state in the config dir, logs in the data dir) kept apart too.
    xdgDir = tempDir('outpost-window-xdg-');
    env = {
      OUTPOST_DATA_DIR: dataDir,
      XDG_CONFIG_HOME: path.join(xdgDir, 'config'),
      XDG_DATA_HOME: path.join(xdgDir, 'data'),
    };
  });

  after(async () => {
    try {
      await app?.close();
    } finally {
      if (process.exitCode && app) console.error(`tauri-driver output:\n${app.log()}`);
      removeDir(dataDir);
      removeDir(xdgDir);
    }
  });

  it('comes back at the size it was left at, with the unsent edit still waiting', async () => {
    app = await openApp(env);
    let driver = app.driver;
    await driver.manage().window().setRect({ width: 1010, height: 690 });
    await waitFor('resized', async () => {
      const rect = await driver.manage().window().getRect();
      return rect.width === 1010 && rect.height === 690;
    });
    await click(driver, 'new-note');
    await typeInto(driver, 'editor-title', 'Generator 3 oil change');
    await waitFor('saved', async () => (await textOf(driver, 'save-state')) === 'Saved on this device');
    assert.match(await textOf(driver, 'pending-count'), /1 waiting to sync/);

    // Quit as a logout or `kill` does; the window's close button takes the same path out.
    const pids = appPids(dataDir);
    assert.equal(pids.length, 1, `app processes: ${pids}`);
    process.kill(pids[0], 'SIGTERM');
    await waitFor('the app quit', async () => appPids(dataDir).length === 0, 15_000);
    await app.close().catch(() => {}); // the session went with the app
    const logs = path.join(env.XDG_DATA_HOME, 'app.outpost.notes', 'logs');
    const log = readdirSync(logs).map((f) => readFileSync(path.join(logs, f), 'utf8')).join('');
    assert.match(log, /SIGTERM: quitting/);
    assert.match(log, /Outpost quit/);

    await sleep(500);
    app = await openApp(env);
    driver = app.driver;
    const rect = await driver.manage().window().getRect();
    assert.deepEqual({ width: rect.width, height: rect.height }, { width: 1010, height: 690 });
    const note = await waitFor('the note listed', async () =>
      (await rows(driver)).find((r) => r.title === 'Generator 3 oil change'));
    assert.equal(note.state, 'pending');
    assert.match(await textOf(driver, 'pending-count'), /1 waiting to sync/);
    assert.equal((await driver.findElements(byTestId('note-row'))).length, 1);
  });
});
