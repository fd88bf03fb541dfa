// The window's shared state (Svelte 5 runes): what is selected, what the status bar shows, and
// a counter that moves whenever the core reports a change, so every view re-reads from the
// store (the source of truth) instead of patching copies.
import type { NoteId, NotebookId, NoteView, SyncStatus } from '../api';

export type Panel = 'notes' | 'conflicts' | 'diagnostics' | 'settings';

export const ui = $state({
  /** Which list the note list shows. */
  view: 'active' as NoteView,
  /** Notebook filter of the list; null is every notebook. */
  notebookId: null as NotebookId | null,
  /** What the main area shows. */
  panel: 'notes' as Panel,
  selectedId: null as NoteId | null,
  /** Search as you type: non-empty replaces the list with hits. */
  search: '',
  /** The last error, shown in a banner until dismissed. */
  error: null as string | null,
  /** A passing message ("Saved from your editor"). */
  notice: null as string | null,
  /** Put the cursor in the title once the selected note is open (a new note). */
  focusTitle: false,
  /** Conflict to open in the merge view. */
  conflictId: null as NoteId | null,
});

export const sync = $state({ status: null as SyncStatus | null });

/** Moves on every `notes-changed` batch; views read it inside `$effect` to re-read. */
export const changes = $state({ version: 0, notes: new Set<string>() });

export function noteChanged(ids: string[], complete: boolean): void {
  changes.notes = complete ? new Set(ids) : new Set(['*']);
  changes.version += 1;
}

export function showError(message: string): void {
  ui.error = message;
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
export function showNotice(message: string, ms = 4000): void {
  ui.notice = message;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (ui.notice = null), ms);
}

/** Work to finish before the window closes (the editor's unsaved keystrokes). */
const beforeClose = new Set<() => Promise<void>>();

export function onBeforeClose(flush: () => Promise<void>): () => void {
  beforeClose.add(flush);
  return () => beforeClose.delete(flush);
}

export async function finishBeforeClose(): Promise<void> {
  await Promise.allSettled([...beforeClose].map((flush) => flush()));
}
