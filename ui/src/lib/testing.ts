// For component tests only (never imported by the app): Tauri's IPC faked with mockIPC, every
// call recorded so a test can assert the exact command and arguments the UI sent.
import { mockIPC } from '@tauri-apps/api/mocks';
import type { Pref, SyncStatus } from '../api';
import { changes, sync, ui } from './state.svelte';

export type Call = { cmd: string; args: Record<string, unknown> };
type Handler = (args: Record<string, unknown>) => unknown;

/**
 * Answers each command with its handler (a handler that throws makes the command reject with
 * what it threw, as an `AppError` from Rust would); a command without one rejects.
 */
export function fakeIpc(handlers: Record<string, Handler>, options: { events?: boolean } = {}) {
  const calls: Call[] = [];
  mockIPC(
    (cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      calls.push({ cmd, args });
      const handler = handlers[cmd];
      if (!handler) throw { code: 'internal', message: `no fake for ${cmd}` };
      return handler(args);
    },
    // Events (`listen`, and `emit` from a test) go through Tauri's own mock of the event bus.
    { shouldMockEvents: options.events ?? false },
  );
  return {
    calls,
    /** The arguments of every call of `cmd`, in order. */
    argsOf: (cmd: string) => calls.filter((c) => c.cmd === cmd).map((c) => c.args),
    count: (cmd: string) => calls.filter((c) => c.cmd === cmd).length,
    /** Commands sent, in order, without the reads a test does not care about. */
    sent: (...ignore: string[]) => calls.filter((c) => !ignore.includes(c.cmd)),
  };
}

/** What the engine reports: up to date, nothing waiting, never synced, unless `over` says. */
export function syncStatus(over: Partial<SyncStatus> = {}): SyncStatus {
  return {
    state: 'up_to_date',
    pending: 0,
    failed: 0,
    conflicts: 0,
    last_success_ms: null,
    last_error: null,
    clock_skew_ms: null,
    progress: null,
    next_retry_ms: null,
    restored: [],
    ...over,
  };
}

/** The preferences as the core's registry lists them (crates/outpost-core/src/prefs.rs). */
export const PREFS: Pref[] = [
  {
    key: 'theme',
    value: 'system',
    scope: 'synced',
    is_default: true,
    help: 'colour theme',
    limits: { kind: 'one_of', options: ['system', 'light', 'dark'] },
  },
  {
    key: 'editor.font_size',
    value: 15,
    scope: 'synced',
    is_default: true,
    help: 'editor font size in points',
    limits: { kind: 'int', min: 8, max: 40 },
  },
  {
    key: 'editor.spellcheck',
    value: true,
    scope: 'synced',
    is_default: true,
    help: 'check spelling while typing',
    limits: { kind: 'bool' },
  },
  {
    key: 'sync.interval_secs',
    value: 300,
    scope: 'device',
    is_default: true,
    help: 'seconds between background syncs when nothing else triggers one',
    limits: { kind: 'int', min: 15, max: 86_400 },
  },
  {
    key: 'sync.work_offline',
    value: false,
    scope: 'device',
    is_default: true,
    help: 'pause syncing on this device',
    limits: { kind: 'bool' },
  },
];

/** An error as a command rejects with it. */
export function appError(code: string, message: string): { code: string; message: string } {
  return { code, message };
}

/** A promise the test settles by hand, to see the UI while a command runs. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The shared state back to how App starts. */
export function resetState(): void {
  ui.view = 'active';
  ui.notebookId = null;
  ui.search = '';
  ui.panel = 'notes';
  ui.selectedId = null;
  ui.conflictId = null;
  ui.focusTitle = false;
  ui.error = null;
  ui.notice = null;
  sync.status = null;
  changes.version = 0;
  changes.notes = new Set();
}
