// Real-window tests of the notes themselves, on a store seeded through the core and no account:
// create, edit, search, pin, trash and restore; the IPC path and the CSP that keeps the window
// off the network.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { By, Key } from 'selenium-webdriver';
import {
  byTestId, click, openApp, removeDir, rows, screenshot, seed, tempDir, textOf, typeInto, waitFor,
} from './support.mjs';

const SEEDED = ['Pump station 4', 'Bridge inspection, north span'];

describe('the notes window', { timeout: 180_000 }, () => {
  let dataDir;
  let app;
  let driver;

  before(async () => {
    dataDir = tempDir('outpost-window-');
    seed(dataDir, SEEDED);
    app = await openApp({ OUTPOST_DATA_DIR: dataDir, OUTPOST_NO_EXTERNAL_OPEN: '1' });
    driver = app.driver;
  });

  after(async () => {
    try {
      await app?.close();
    } finally {
      if (process.exitCode && app) console.error(`tauri-driver output:\n${app.log()}`);
      removeDir(dataDir);
    }
  });

  it('lists the notes already in the store, each with its sync state', async () => {
    const shown = await waitFor('seeded notes listed', async () => {
      const r = await rows(driver);
      return r.length === SEEDED.length ? r : null;
    });
    assert.deepEqual(shown.map((r) => r.title).sort(), [...SEEDED].sort());
    // Not signed in: nothing has reached a server, and the list says so.
    assert.deepEqual(shown.map((r) => r.state), ['pending', 'pending']);
    assert.equal(await textOf(driver, 'note-count'), '2 notes');
    assert.match(await textOf(driver, 'sync-state'), /Not signed in/);
  });

  it('creates a note with Ctrl+N and saves title and body as they are typed', async () => {
    await driver.findElement(By.css('body')).sendKeys(Key.chord(Key.CONTROL, 'n'));
    await waitFor('three notes', async () => (await rows(driver)).length === 3);
    // The new row can show a moment before the editor opens on it.
    const title = await waitFor('the editor open', async () =>
      (await driver.findElements(byTestId('editor-title')))[0]);
    await waitFor('title focused', async () =>
      driver.executeScript(`return document.activeElement?.dataset.testid === 'editor-title';`));
    await title.sendKeys('Generator 7 service');
    const body = await driver.findElement(By.css('[data-testid="editor-body"]'));
    await body.click();
    await body.sendKeys('Oil changed. Coolant low on the east tank.');
    await waitFor('saved', async () => (await textOf(driver, 'save-state')) === 'Saved on this device');
    await waitFor('new title in the list', async () =>
      (await rows(driver)).some((r) => r.title === 'Generator 7 service'));
  });

  it('finds notes as the user types, with the match highlighted', async () => {
    await typeInto(driver, 'search', 'coola');
    const hits = await waitFor('a hit', async () => driver.executeScript(
      `return [...document.querySelectorAll('[data-testid="search-hit"]')].map((h) => ({
         title: h.querySelector('.title').textContent.trim(), marks: [...h.querySelectorAll('mark')].map((m) => m.textContent) }));`,
    ).then((h) => (h.length ? h : null)));
    assert.equal(hits.length, 1);
    assert.equal(hits[0].title, 'Generator 7 service');
    assert.ok(hits[0].marks.some((m) => /^coola/i.test(m)), JSON.stringify(hits));
    await screenshot(driver, 'search');
    await typeInto(driver, 'search', 'zzzz-nothing');
    await waitFor('empty search says so', async () => (await textOf(driver, 'empty-search'))?.includes('No note matches'));
    await driver.findElement(byTestId('search')).sendKeys(Key.ESCAPE);
    await waitFor('back to the list', async () => (await rows(driver)).length === 3);
  });

  it('pins a note to the top, trashes and restores it', async () => {
    const bridge = (await rows(driver)).find((r) => r.title.startsWith('Bridge'));
    await driver.findElement(By.css(`[data-testid="note-row"][data-id="${bridge.id}"]`)).click();
    await waitFor('editor shows it', async () =>
      (await driver.findElement(byTestId('editor-title')).getAttribute('value')).startsWith('Bridge'));
    await click(driver, 'pin-note');
    await waitFor('pinned first', async () => (await rows(driver))[0]?.id === bridge.id);
    await click(driver, 'trash-note');
    await waitFor('gone from Notes', async () => !(await rows(driver)).some((r) => r.id === bridge.id));
    await click(driver, 'view-trash');
    await waitFor('in the Trash', async () => (await rows(driver)).some((r) => r.id === bridge.id));
    await driver.findElement(By.css(`[data-testid="note-row"][data-id="${bridge.id}"]`)).click();
    await click(driver, 'restore-note');
    await waitFor('Trash empty again', async () => (await rows(driver)).length === 0);
    await click(driver, 'view-notes');
    await waitFor('back in Notes', async () => (await rows(driver)).some((r) => r.id === bridge.id));
    await screenshot(driver, 'notes');
  });

  it('takes in a save from an external editor, as if typed', async () => {
    const row = (await rows(driver)).find((r) => r.title === 'Generator 7 service');
    await driver.findElement(By.css(`[data-testid="note-row"][data-id="${row.id}"]`)).click();
    await waitFor('editor on it', async () =>
      (await driver.findElement(byTestId('editor-title')).getAttribute('value')) === 'Generator 7 service');
    await click(driver, 'open-in-editor');
    // No editor app under Xvfb: the window says where the file is, and the test is the editor.
    // The notice of the previous step may still be up: wait for this one's.
    const file = await waitFor('file path shown', async () =>
      (await textOf(driver, 'notice'))?.match(/Edit (.+\.md): each/)?.[1]);
    assert.ok(existsSync(file), file);
    assert.equal(readFileSync(file, 'utf8'), 'Oil changed. Coolant low on the east tank.');
    writeFileSync(file, 'Oil changed. Coolant topped up on the east tank.\n');
    await waitFor('saved from the editor', async () => (await textOf(driver, 'notice')) === 'Saved from your editor');
    await waitFor('the editor shows it', async () =>
      (await driver.findElement(byTestId('editor-body')).getText()).includes('Coolant topped up'));
  });

  it('exports every note as Markdown files and imports a folder', async () => {
    const out = path.join(dataDir, 'export');
    const done = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      window.__TAURI_INTERNALS__.invoke('export_markdown', { dir: arguments[0] }).then(done, (e) => done({ error: e }));
    `, out);
    assert.equal(done.notes, 3, JSON.stringify(done));
    assert.match(readFileSync(path.join(out, 'Generator 7 service.md'), 'utf8'), /Coolant topped up/);
    const inbox = path.join(dataDir, 'from-another-app');
    mkdirSync(path.join(inbox, 'Site visits'), { recursive: true });
    writeFileSync(path.join(inbox, 'Site visits', 'Dam 3.md'), '# Dam 3 spillway\n\nCrack at gate 2, 40 cm.\n');
    const imported = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      window.__TAURI_INTERNALS__.invoke('import_markdown', { dir: arguments[0] }).then(done, (e) => done({ error: e }));
    `, inbox);
    assert.equal(imported.imported, 1, JSON.stringify(imported));
    await waitFor('imported note listed', async () => (await rows(driver)).some((r) => r.title === 'Dam 3 spillway'));
    await waitFor('its notebook listed', async () => (await textOf(driver, 'notebooks'))?.includes('Site visits'));
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
      window.__TAURI_INTERNALS__.invoke('count_notes', { query: {} })
        .then((n) => ({ ok: n }), (e) => ({ error: JSON.stringify(e) }))
        .then((result) => setTimeout(() => {
          window.fetch = realFetch;
          document.removeEventListener('securitypolicyviolation', onViolation);
          done({ result, urls, violations });
        }, 100));
    `);
    assert.deepEqual(seen.violations, []);
    assert.ok(seen.urls.some((u) => u.startsWith('ipc://localhost/count_notes')), JSON.stringify(seen));
    assert.equal(seen.result.ok, 4, JSON.stringify(seen));
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

  it('answers a bad command with a clear {code, message}', async () => {
    const error = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      window.__TAURI_INTERNALS__.invoke('update_note', { id: 'not-a-uuid', patch: {} })
        .then(() => done(null), (e) => done(e));
    `);
    // What the window shows is the message; the code is what it can switch on. Tauri alone
    // would answer a bare string here ("invalid args `id` for command ...").
    assert.equal(typeof error, 'object', JSON.stringify(error));
    assert.equal(error.code, 'invalid_input', JSON.stringify(error));
    assert.match(error.message, /^`id` is not valid: /, JSON.stringify(error));
    const unknown = await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1];
      window.__TAURI_INTERNALS__.invoke('count_notes', { query: { folder: 'x' } })
        .then(() => done(null), (e) => done(e));
    `);
    assert.equal(unknown?.code, 'invalid_input', JSON.stringify(unknown));
    assert.match(unknown.message, /`query`.*folder/, JSON.stringify(unknown));
  });
});
