// The desktop app's benchmarks (BENCHMARKS.md, "Desktop app"): cold start to an interactive
// list with N notes, typing latency in the editor on a 1 MB note, and the memory (PSS) of all
// the app's processes idle with N notes. The real app under Xvfb, driven by tauri-driver.
//
//   cargo build --release -p outpost-app -p outpost-cli --example seed_notes
//   OUTPOST_APP_BIN=$CARGO_TARGET_DIR/release/outpost-app OUTPOST_BIN_DIR=$CARGO_TARGET_DIR/release \
//     xvfb-run -a -s '-screen 0 1280x800x24' node bench/app.mjs          # OUTPOST_BENCH_NOTES=100000
//
// Cold start is measured from the app process's start (its /proc start time) to the moment the
// first rows of the list were painted (two animation frames after they were rendered). The
// data directory is seeded once; each start is a new process on the same files (the page cache
// is warm after the first, as on a user's machine after a reboot and a first start).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { By, Key } from 'selenium-webdriver';
import { bin, byTestId, openApp, removeDir, sleep, tempDir, waitFor } from '../e2e/support.mjs';

const NOTES = Number(process.env.OUTPOST_BENCH_NOTES ?? 100_000);
const STARTS = Number(process.env.OUTPOST_BENCH_STARTS ?? 5);
const KEYS = 60;
const SAVE_DELAY_MS = 400; // the editor's (Editor.svelte)

const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const bootMs = Number(/btime (\d+)/.exec(readFileSync('/proc/stat', 'utf8'))[1]) * 1000;

/** Wall-clock start of a process, from /proc (10 ms resolution). */
function startedAtMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return bootMs + (Number(fields[19]) / ticks) * 1000;
}

function children(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

function processName(pid) {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return '?'; }
}

/** The app's pid: the newest process running our binary. */
function appPid() {
  const name = path.basename(process.env.OUTPOST_APP_BIN).slice(0, 15);
  const pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number)
    .filter((pid) => processName(pid) === name);
  return pids.sort((a, b) => startedAtMs(b) - startedAtMs(a))[0];
}

/** PSS in KiB of a process and all its descendants (WebKit's web and network processes). */
function pssTree(pid) {
  const rows = [];
  const walk = (p) => {
    try {
      const kb = Number(/Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))[1]);
      rows.push({ pid: p, name: processName(p), kb });
    } catch { /* gone */ }
    for (const c of children(p)) walk(c);
  };
  walk(pid);
  return rows;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

const dir = tempDir('outpost-bench-app-');
try {
  console.log(`machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  let t = Date.now();
  execFileSync(bin('outpost'), ['--data-dir', dir, 'seed', String(NOTES)], { stdio: 'ignore' });
  // One note of 1 MB for the typing test (Markdown-ish lines).
  const line = 'Inspection log: valve 12 checked, pressure nominal, gasket replaced on the north side.\n';
  const big = line.repeat(Math.ceil((1 << 20) / line.length));
  execFileSync(bin('outpost'), ['--data-dir', dir, 'note', 'add', '--title', 'One megabyte', '--body-file', '-'], { input: big });
  console.log(`seeded ${NOTES.toLocaleString()} notes + one of ${(big.length / 2 ** 20).toFixed(2)} MB in ${((Date.now() - t) / 1000).toFixed(1)} s; database ${(statSync(path.join(dir, 'outpost.db')).size / 2 ** 20).toFixed(0)} MiB`);

  const starts = [];
  let app;
  for (let i = 0; i < STARTS; i++) {
    app = await openApp({ OUTPOST_DATA_DIR: dir });
    const pid = appPid();
    const readyAt = Number(await waitFor('first rows painted', () => app.driver.executeScript('return document.body.dataset.firstListAt;'), 60_000));
    const rows = await app.driver.executeScript(`return document.querySelectorAll('[data-testid="note-row"]').length;`);
    const ms = readyAt - startedAtMs(pid);
    starts.push(ms);
    // Where the time went, from the page's own clock: when WebKit began loading the page, when
    // our script ran, when the count and the first page came back.
    const marks = await app.driver.executeScript(`
      const nav = performance.getEntriesByType('navigation')[0];
      const at = (name) => performance.getEntriesByName(name)[0]?.startTime;
      return { origin: performance.timeOrigin, dom: nav?.domInteractive, script: at('outpost:script'),
               mounted: at('outpost:mounted'), asked: at('outpost:count-asked'), counted: at('outpost:counted'), page: at('outpost:first-page') };`);
    const rel = (t) => (t === undefined || t === null ? '?' : (marks.origin + t - startedAtMs(pid)).toFixed(0));
    console.log(`start ${i + 1}: ${ms.toFixed(0)} ms to ${rows} rows painted of ${NOTES.toLocaleString()} ` +
      `(page load began ${rel(0)}, DOM ${rel(marks.dom)}, script ${rel(marks.script)}, mounted ${rel(marks.mounted)}, count asked ${rel(marks.asked)}, counted ${rel(marks.counted)}, first page ${rel(marks.page)})`);
    if (i < STARTS - 1) await app.close();
  }

  // Memory, idle: the list shown, nothing happening for 10 s.
  await sleep(10_000);
  const tree = pssTree(appPid());
  const totalMiB = tree.reduce((s, r) => s + r.kb, 0) / 1024;
  console.log(`PSS idle with ${NOTES.toLocaleString()} notes: ${totalMiB.toFixed(0)} MiB (${tree.map((r) => `${r.name} ${(r.kb / 1024).toFixed(0)}`).join(', ')})`);

  // Typing: from each keydown to the frame that shows it, in a 1 KB note and in the 1 MB one
  // (compare the two: the machine's own speed cancels out).
  const driver = app.driver;
  await driver.executeScript(`
    window.__lat = [];
    document.addEventListener('keydown', () => {
      const t0 = performance.now();
      requestAnimationFrame(() => setTimeout(() => window.__lat.push(performance.now() - t0), 0));
    }, true);`);
  // `pauseEvery`: a pause longer than the save delay after that many keys, so saves (and what
  // follows them: the change event, the list's re-read) run between keystrokes.
  const typeKeys = async (pauseEvery = 0) => {
    await driver.executeScript('window.__lat = [];');
    const body = await driver.findElement(byTestId('editor-body'));
    await body.click();
    await body.sendKeys(Key.END);
    for (let i = 0; i < KEYS; i++) {
      await body.sendKeys(String.fromCharCode(97 + (i % 26)));
      if (pauseEvery && i % pauseEvery === pauseEvery - 1) await sleep(SAVE_DELAY_MS + 20);
    }
    await sleep(1500); // the debounced save runs meanwhile, as it does for a user
    return (await driver.executeScript('return window.__lat;')).slice(-KEYS);
  };
  const loaded = (min) => waitFor('its text loaded', async () => (await driver.executeScript(
    `return document.querySelector('[data-testid="editor-body"]')?.textContent.length ?? 0;`)) >= min, 30_000);
  await (await waitFor('a row', async () => (await driver.findElements(byTestId('note-row')))[1])).click();
  await loaded(100);
  const small = await typeKeys();
  await driver.findElement(byTestId('search')).sendKeys('megabyte');
  const hit = await waitFor('the big note found', async () => (await driver.findElements(byTestId('search-hit')))[0]);
  await hit.click();
  await loaded(1000);
  const typed = await typeKeys();
  const saving = await typeKeys(5);
  const stats = (what, xs) => `${what}: median ${median(xs).toFixed(1)} ms, p95 ${pct(xs, 0.95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
  console.log(`typing, ${KEYS} keys each (keydown to the next frame): ${stats('1 KB note', small)}; ${stats('1 MB note', typed)}; ${stats('1 MB note, saved every 5 keys', saving)}`);
  await app.close();

  console.log(`\nsummary: cold start median ${median(starts).toFixed(0)} ms (min ${Math.min(...starts).toFixed(0)}, max ${Math.max(...starts).toFixed(0)}, ${STARTS} starts); PSS ${totalMiB.toFixed(0)} MiB; typing on 1 MB median ${median(typed).toFixed(1)} ms, p95 ${pct(typed, 0.95).toFixed(1)} ms (1 KB: median ${median(small).toFixed(1)} ms; 1 MB saving every 5 keys: median ${median(saving).toFixed(1)}, p95 ${pct(saving, 0.95).toFixed(1)} ms)`);
} finally {
  removeDir(dir);
}
