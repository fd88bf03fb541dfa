// The IPC contract with the Rust side: the commands in src-tauri/src/commands.rs, the types of
// crates/outpost-core/src/model.rs as serde writes them. The UI talks to nothing else: no fetch,
// no network; the CSP in tauri.conf.json lets only `ipc:` through.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

export type SyncState = 'synced' | 'pending' | 'failed' | 'conflict';

export interface NoteSummary {
  id: string;
  title: string;
  preview: string;
  notebook_id: string | null;
  tags: string[];
  pinned: boolean;
  archived: boolean;
  deleted: boolean;
  created_ms: number;
  updated_ms: number;
  sync_state: SyncState;
}

export interface NotePage {
  items: NoteSummary[];
  next: string | null;
}

/** What every command rejects with (AppError in src-tauri/src/error.rs). */
export interface AppError {
  code: string;
  message: string;
}

export function isAppError(value: unknown): value is AppError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AppError).code === 'string' &&
    typeof (value as AppError).message === 'string'
  );
}

export function listNotes(): Promise<NotePage> {
  return invoke<NotePage>('list_notes');
}

/** A new note; fields left out take the core's defaults (NoteDraft). */
export interface NoteDraft {
  title?: string;
  body?: string;
  notebook_id?: string | null;
  tags?: string[];
  pinned?: boolean;
}

export function createNote(note: NoteDraft): Promise<unknown> {
  return invoke('create_note', { note });
}

/** What the core reports after a committed write (outpost-core `Change`). */
export interface Change {
  notes: string[];
  notebooks: string[];
  prefs: string[];
  outbox: boolean;
}

/**
 * Payload of the `notes-changed` event (src-tauri/src/main.rs). `complete` is false when some
 * changes were dropped on the way: re-read everything shown.
 */
export interface NotesChanged {
  changes: Change[];
  complete: boolean;
}

/** Calls `onChange` whenever the core reports that notes changed. */
export function onNotesChanged(onChange: (batch: NotesChanged) => void): Promise<UnlistenFn> {
  return listen<NotesChanged>('notes-changed', (event) => onChange(event.payload));
}
