// Real-window tests of sync, with the real server on 127.0.0.1 and the CLI as a second device:
// sign in, see pending become synced; the server goes away (offline), edits go on, the server
// comes back and they sync; a conflict made on the second device is resolved in the merge
// view; a change the server refuses is fixed and retried.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { By, Key } from 'selenium-webdriver';
import {
  bin, byTestId, click, freePort, openApp, outpost, outpostJson, removeDir, rows, screenshot,
  keys, selectAll, SyncServer, tempDir, textOf, typeInto, waitFor, PASSWORD,
} from './support.mjs';

const EMAIL = 'field-team@example.org';

describe('syncing from the window', { timeout: 300_000 }, () => {
  let server;
  let serverDir;
  let dataDir;
  let phoneDir; // the second device: the CLI
  let app;
  let driver;

  const syncState = () => driver.executeScript(
    `return document.querySelector('[data-testid="status-bar"]')?.dataset.state;`);
  const rowOf = async (title) => (await rows(driver)).find((r) => r.title === title);
  const openNote = async (title) => {
    const row = await waitFor(`"${title}" listed`, () => rowOf(title));
    await driver.findElement(By.css(`[data-testid="note-row"][data-id="${row.id}"]`)).click();
    await waitFor('editor shows it', async () =>
      (await driver.findElement(byTestId('editor-title')).getAttribute('value')) === title);
    return row.id;
  };
  /** Replaces the whole editor text through real key presses. */
  const typeBody = async (text) => {
    const body = await driver.findElement(byTestId('editor-body'));
    await body.click();
    await selectAll(driver);
    await body.sendKeys(Key.BACK_SPACE, ...keys(text));
    await waitFor('saved', async () => (await textOf(driver, 'save-state')) === 'Saved on this device');
  };

  before(async () => {
    serverDir = tempDir('outpost-window-server-');
    dataDir = tempDir('outpost-window-sync-');
    phoneDir = tempDir('outpost-window-phone-');
    server = new SyncServer(await freePort(), serverDir);
    await server.start();
    app = await openApp({ OUTPOST_DATA_DIR: dataDir });
    driver = app.driver;
  });

  after(async () => {
    try {
      await app?.close();
      await server?.stop();
    } finally {
      if (process.exitCode) console.error(`tauri-driver output:\n${app?.log()}\nserver:\n${server?.log}`);
      for (const dir of [serverDir, dataDir, phoneDir]) removeDir(dir);
    }
  });

  it('creates an account from Settings and syncs what was written before', async () => {
    await click(driver, 'new-note');
    await typeInto(driver, 'editor-title', 'Tower 12 climb log');
    await typeBody('Harness checked.\nAnchor bolts torqued.\nLadder cage: rust on rung 30.');
    assert.equal((await rowOf('Tower 12 climb log')).state, 'pending');
    assert.match(await textOf(driver, 'pending-count'), /1 waiting to sync/);

    await click(driver, 'open-settings');
    await typeInto(driver, 'sign-in-server', server.url);
    await typeInto(driver, 'sign-in-email', EMAIL);
    await typeInto(driver, 'sign-in-password', PASSWORD);
    await click(driver, 'create-account');
    await waitFor('signed in', async () => (await textOf(driver, 'account-signed-in'))?.includes(EMAIL));
    await screenshot(driver, 'settings');
    await click(driver, 'view-notes');
    await waitFor('up to date', async () => (await syncState()) === 'up_to_date', 20_000);
    await waitFor('the note shows synced', async () => (await rowOf('Tower 12 climb log'))?.state === 'synced');
    assert.match(await textOf(driver, 'pending-count'), /Nothing waiting/);
    assert.match(await textOf(driver, 'last-sync'), /Last synced just now/);
  });

  it('shows offline when the server goes away, keeps editing, and syncs when it is back', async () => {
    await server.stop();
    await openNote('Tower 12 climb log');
    await typeBody('Harness checked.\nAnchor bolts torqued.\nLadder cage: rust on rung 30, photographed.');
    await waitFor('offline shown', async () => (await syncState()) === 'offline', 20_000);
    assert.match(await textOf(driver, 'sync-state'), /Offline: changes are kept on this device/);
    assert.equal((await rowOf('Tower 12 climb log')).state, 'pending');
    assert.match(await textOf(driver, 'pending-count'), /1 waiting to sync/);
    await screenshot(driver, 'offline');

    await server.start();
    // No click: the engine retries by itself (backoff of a few seconds after a short outage).
    await waitFor('back up to date', async () => (await syncState()) === 'up_to_date', 45_000);
    await waitFor('synced again', async () => (await rowOf('Tower 12 climb log'))?.state === 'synced');
    // What the server has now is what the window shows: ask the second device.
    outpost(phoneDir, ['login', '--server', server.url, '--email', EMAIL]);
    outpost(phoneDir, ['sync']);
    const notes = outpostJson(phoneDir, ['note', 'ls']);
    const tower = notes.items.find((n) => n.title === 'Tower 12 climb log');
    assert.ok(tower, JSON.stringify(notes));
    const full = outpostJson(phoneDir, ['note', 'show', tower.id]);
    assert.match(full.body, /photographed/);
  });

  it('resolves a conflict from the second device in the merge view', async () => {
    const id = await openNote('Tower 12 climb log');
    // This computer goes offline on purpose and edits line 3; the phone edits the same line.
    await click(driver, 'work-offline');
    await waitFor('paused', async () => (await syncState()) === 'paused');
    await typeBody('Harness checked.\nAnchor bolts torqued.\nLadder cage: rung 30 replaced.');
    outpost(phoneDir, ['note', 'edit', id, '--body', 'Harness checked.\nAnchor bolts torqued.\nLadder cage: rung 30 needs a welder.']);
    outpost(phoneDir, ['sync']);

    await click(driver, 'work-offline');
    await waitFor('conflict counted', async () => (await textOf(driver, 'conflict-count'))?.startsWith('1 conflict'), 20_000);
    await waitFor('note marked', async () => (await rowOf('Tower 12 climb log'))?.state === 'conflict');
    await click(driver, 'conflict-count');
    await click(driver, 'conflict-open');
    await driver.wait(async () => (await driver.findElements(byTestId('merge-view'))).length > 0, 10_000);
    await screenshot(driver, 'merge');
    const mine = await driver.findElement(byTestId('merge-mine'));
    await mine.click();
    await selectAll(driver);
    await mine.sendKeys(Key.BACK_SPACE,
      ...keys('Harness checked.\nAnchor bolts torqued.\nLadder cage: rung 30 replaced; welder booked for the cage.'));
    await click(driver, 'merge-save');
    await waitFor('conflict gone', async () => (await driver.findElements(byTestId('conflict-count'))).length === 0, 20_000);
    await click(driver, 'view-notes');
    await waitFor('synced', async () => (await rowOf('Tower 12 climb log'))?.state === 'synced', 20_000);
    outpost(phoneDir, ['sync']);
    const full = outpostJson(phoneDir, ['note', 'show', id]);
    assert.equal(full.body, 'Harness checked.\nAnchor bolts torqued.\nLadder cage: rung 30 replaced; welder booked for the cage.');
  });

  it('shows a change the server refused, and retries it after the fix', async () => {
    await click(driver, 'work-offline');
    await waitFor('paused', async () => (await syncState()) === 'paused');
    await click(driver, 'new-note');
    await typeInto(driver, 'editor-title', 'Substation B fence');
    await typeInto(driver, 'editor-tags', 'fence');
    await waitFor('saved', async () => (await textOf(driver, 'save-state')) === 'Saved on this device');
    const id = (await waitFor('listed', () => rowOf('Substation B fence'))).id;
    // An older build queued a tag the server refuses.
    await waitFor('the queued change poisoned', () => {
      execFileSync(bin('examples/poison_outbox'), [dataDir, id], { stdio: 'pipe' });
      return true;
    });
    await click(driver, 'work-offline');
    await waitFor('refused shown', async () => (await textOf(driver, 'failed-count'))?.startsWith('1 refused'), 20_000);
    // The status bar and the list read the store apart: the row follows within a moment.
    await waitFor('the note marked refused', async () => (await rowOf('Substation B fence'))?.state === 'failed', 10_000);

    await click(driver, 'failed-count');
    const reason = await waitFor('reason shown', () => textOf(driver, 'dead-letter-reason'));
    assert.match(reason, /tags/);
    // The outage of the earlier test is in the error log, though syncs have worked since.
    await waitFor('the outage in the error log', async () => {
      const logged = await Promise.all((await driver.findElements(byTestId('sync-error'))).map((e) => e.getText()));
      return logged.some((t) => /offline:/.test(t));
    });
    await screenshot(driver, 'diagnostics');
    await click(driver, 'dead-letter-edit');
    await waitFor('editor on the note', async () =>
      (await driver.findElement(byTestId('editor-title')).getAttribute('value')) === 'Substation B fence');
    await typeInto(driver, 'editor-tags', 'fence-repair');
    await waitFor('saved', async () => (await textOf(driver, 'save-state')) === 'Saved on this device');
    await click(driver, 'open-diagnostics');
    await click(driver, 'dead-letter-retry');
    await waitFor('nothing refused', async () => (await driver.findElements(byTestId('failed-count'))).length === 0, 20_000);
    await click(driver, 'view-notes');
    await waitFor('synced', async () => (await rowOf('Substation B fence'))?.state === 'synced', 20_000);
    outpost(phoneDir, ['sync']);
    const phone = outpostJson(phoneDir, ['note', 'show', id]);
    assert.deepEqual(phone.tags, ['fence-repair']);
    assert.equal(phone.title, 'Substation B fence');
  });

  it('takes a photo pasted into a note: shown in it and in its list, synced, whole on the phone', async () => {
    await openNote('Tower 12 climb log');
    // A real PNG (16x12, red), pasted into the text as a file, as a screenshot tool leaves it.
    const png = 'iVBORw0KGgoAAAANSUhEUgAAABAAAAAMCAIAAADkharWAAAAFUlEQVR4nGM4oaFBEmIY1TCqATsCALRr0gH04WUkAAAAAElFTkSuQmCC';
    await driver.executeScript(`
      const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], 'rung-30.png', { type: 'image/png' }));
      document.querySelector('[data-testid="editor-body"]').dispatchEvent(
        new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));`, png);
    const stateOf = () => driver.executeScript(`
      const li = document.querySelector('[data-testid="attachment"][data-name="rung-30.png"]');
      return li ? li.dataset.state : null;`);
    await waitFor('the photo listed under the note', async () => (await stateOf()) !== null);
    // Its line in the text, and the picture under it, from the thumbnail in its record.
    await waitFor('the link in the text', async () =>
      (await textOf(driver, 'editor-body')).includes('![rung-30.png](attachment:'));
    await waitFor('the picture in the note', async () =>
      (await driver.findElements(byTestId('inline-image'))).length === 1);
    await waitFor('the photo synced', async () => (await stateOf()) === 'synced', 30_000);
    await screenshot(driver, 'attachments');

    outpost(phoneDir, ['sync']);
    const listed = outpostJson(phoneDir, ['attachments']).find((a) => a.name === 'rung-30.png');
    assert.ok(listed, 'the phone lists the photo');
    assert.equal(listed.state, 'not_downloaded');
    assert.ok(listed.thumbnail.startsWith('data:image/jpeg;base64,'), 'its thumbnail came with the note');
    const dest = join(phoneDir, 'rung-30-copy.png');
    outpost(phoneDir, ['attachment', 'get', listed.id, dest]);
    assert.deepEqual(readFileSync(dest), Buffer.from(png, 'base64'));
  });

  it('runs the sync doctor: this device and the server agree', async () => {
    await click(driver, 'open-diagnostics');
    await click(driver, 'doctor-check');
    const verdict = await waitFor('doctor result', () => textOf(driver, 'doctor-check-result-agrees'), 30_000);
    assert.match(verdict, /agree/);
  });
});
