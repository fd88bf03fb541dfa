// The IPC contract with the Rust side: one wrapper per command of src-tauri/src/commands/
// (a Rust test checks that each is here), typed with the declarations ts-rs generates from the
// Rust types into ./bindings. The UI talks to nothing else: no fetch, no network; the CSP in
// tauri.conf.json lets only `ipc:` through.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

import type { AccountInfo } from './bindings/AccountInfo';
import type { AppPaths } from './bindings/AppPaths';
import type { Attachment } from './bindings/Attachment';
import type { CommandError } from './bindings/CommandError';
import type { Conflict } from './bindings/Conflict';
import type { DoctorReport } from './bindings/DoctorReport';
import type { EditorFile } from './bindings/EditorFile';
import type { ExternalEvent } from './bindings/ExternalEvent';
import type { ListQuery } from './bindings/ListQuery';
import type { LocalStatus } from './bindings/LocalStatus';
import type { MarkdownExport } from './bindings/MarkdownExport';
import type { MarkdownImport } from './bindings/MarkdownImport';
import type { MutationId } from './bindings/MutationId';
import type { Note } from './bindings/Note';
import type { NoteDraft } from './bindings/NoteDraft';
import type { NoteId } from './bindings/NoteId';
import type { NotePage } from './bindings/NotePage';
import type { NotePatch } from './bindings/NotePatch';
import type { Notebook } from './bindings/Notebook';
import type { NotebookId } from './bindings/NotebookId';
import type { NotesChanged } from './bindings/NotesChanged';
import type { OpenOutcome } from './bindings/OpenOutcome';
import type { OutboxEntry } from './bindings/OutboxEntry';
import type { Pref } from './bindings/Pref';
import type { Resolution } from './bindings/Resolution';
import type { SearchHit } from './bindings/SearchHit';
import type { SyncErrorEntry } from './bindings/SyncErrorEntry';
import type { SyncStatus } from './bindings/SyncStatus';
import type { TransferQueue } from './bindings/TransferQueue';

export type * from './bindings/AccountInfo';
export type * from './bindings/AppPaths';
export type * from './bindings/Attachment';
export type * from './bindings/BlobQueue';
export type * from './bindings/OpenOutcome';
export type * from './bindings/TransferQueue';
export type * from './bindings/Conflict';
export type * from './bindings/Diagnosis';
export type * from './bindings/Difference';
export type * from './bindings/DoctorReport';
export type * from './bindings/EditorFile';
export type * from './bindings/EngineState';
export type * from './bindings/ExternalEvent';
export type * from './bindings/MarkdownExport';
export type * from './bindings/MarkdownImport';
export type * from './bindings/ListQuery';
export type * from './bindings/LocalStatus';
export type * from './bindings/Note';
export type * from './bindings/NoteId';
export type * from './bindings/NotePage';
export type * from './bindings/NoteSummary';
export type * from './bindings/NoteView';
export type * from './bindings/Notebook';
export type * from './bindings/NotebookId';
export type * from './bindings/NotesChanged';
export type * from './bindings/OutboxEntry';
export type * from './bindings/Pref';
export type * from './bindings/PrefLimits';
export type * from './bindings/Resolution';
export type * from './bindings/SearchHit';
export type * from './bindings/SnippetPart';
export type * from './bindings/SyncState';
export type * from './bindings/SyncErrorEntry';
export type * from './bindings/SyncStatus';

/** What every command rejects with: `{code, message}` (AppError in src-tauri/src/error.rs). */
export type AppError = CommandError;

export function isAppError(value: unknown): value is AppError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AppError).code === 'string' &&
    typeof (value as AppError).message === 'string'
  );
}

/** A message for people, whatever was thrown. */
export function errorMessage(error: unknown): string {
  if (isAppError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

// Fields of drafts, patches and queries may be left out: serde fills in the defaults.
export type NewNote = Partial<NoteDraft>;
export type NoteChanges = Partial<NotePatch>;
export type NoteQuery = Partial<ListQuery>;

// ---- Notes ----

export const listNotes = (query: NoteQuery = {}) => invoke<NotePage>('list_notes', { query });
export const countNotes = (query: NoteQuery = {}) => invoke<number>('count_notes', { query });
export const getNote = (id: NoteId) => invoke<Note>('get_note', { id });
export const createNote = (note: NewNote) => invoke<Note>('create_note', { note });
export const updateNote = (id: NoteId, patch: NoteChanges) =>
  invoke<Note>('update_note', { id, patch });
export const trashNote = (id: NoteId) => invoke<Note>('trash_note', { id });
export const restoreNote = (id: NoteId) => invoke<Note>('restore_note', { id });
export const purgeNote = (id: NoteId) => invoke<null>('purge_note', { id });
export const emptyTrash = () => invoke<number>('empty_trash');
export const searchNotes = (text: string, limit = 50) =>
  invoke<SearchHit[]>('search_notes', { text, limit });

// ---- Notebooks ----

export const listNotebooks = () => invoke<Notebook[]>('list_notebooks');
export const createNotebook = (name: string) => invoke<Notebook>('create_notebook', { name });
export const renameNotebook = (id: NotebookId, name: string) =>
  invoke<Notebook>('rename_notebook', { id, name });
export const deleteNotebook = (id: NotebookId) => invoke<null>('delete_notebook', { id });

// ---- Preferences and status ----

export const listPrefs = () => invoke<Pref[]>('list_prefs');
export const setPref = (key: string, value: unknown) => invoke<Pref>('set_pref', { key, value });
export const localStatus = () => invoke<LocalStatus>('local_status');
export const appPaths = () => invoke<AppPaths>('app_paths');

// ---- Sync ----

export const syncStatus = () => invoke<SyncStatus>('sync_status');
export const syncNow = () => invoke<null>('sync_now');
/** "Work offline": pauses syncing on this device (remembered across restarts). */
export const setWorkOffline = (on: boolean) => setPref('sync.work_offline', on);
export const listOutbox = (limit = 500) => invoke<OutboxEntry[]>('list_outbox', { limit });
export const listDeadLetters = () => invoke<OutboxEntry[]>('list_dead_letters');
export const retryDeadLetter = (mutation_id: MutationId) =>
  invoke<null>('retry_dead_letter', { mutation_id });
export const discardDeadLetter = (mutation_id: MutationId) =>
  invoke<null>('discard_dead_letter', { mutation_id });
/** The recent sync errors, newest first (a failure repeated is one entry with its count). */
export const listSyncErrors = (limit = 20) => invoke<SyncErrorEntry[]>('list_sync_errors', { limit });
export const listConflicts = () => invoke<Conflict[]>('list_conflicts');
export const resolveConflict = (note_id: NoteId, resolution: Resolution) =>
  invoke<Note>('resolve_conflict', { note_id, resolution });
export const runDoctor = (repair: boolean) => invoke<DoctorReport>('run_doctor', { repair });

// ---- Account ----

export const accountInfo = () => invoke<AccountInfo>('account_info');
export const signIn = (server_url: string, email: string, password: string, new_account: boolean) =>
  invoke<AccountInfo>('sign_in', { server_url, email, password, new_account });
export const signOut = () => invoke<null>('sign_out');

// ---- Files ----

/** Opens the note in the system's editor for .md files; its saves come back as edits. */
export const openInEditor = (id: NoteId) => invoke<EditorFile>('open_in_editor', { id });
/** Without `dir` the user picks a folder; a closed picker rejects with code `cancelled`. */
export const exportMarkdown = (dir?: string) => invoke<MarkdownExport>('export_markdown', { dir });
export const importMarkdown = (dir?: string) => invoke<MarkdownImport>('import_markdown', { dir });

// ---- Attachments ----

/** The attachments of a note (or of every note), each with where it stands. */
export const listAttachments = (note_id: NoteId | null = null) =>
  invoke<Attachment[]>('list_attachments', { note_id });
/** Attaches files by path (dropped on the window); without paths the user picks them. */
export const attachFiles = (note_id: NoteId, paths: string[] | null = null) =>
  invoke<Attachment[]>('attach_files', { note_id, paths });
/** Attaches bytes pasted or dropped in the window, sent as they are (not as JSON). */
export const attachBytes = (note_id: NoteId, name: string, bytes: Uint8Array) =>
  invoke<Attachment>('attach_bytes', bytes, {
    headers: { 'x-outpost-note': note_id, 'x-outpost-file-name': encodeURIComponent(name) },
  });
/** Opens a copy with the system's app; one not downloaded yet is asked for. */
export const openAttachment = (id: string) => invoke<OpenOutcome>('open_attachment', { id });
export const removeAttachment = (id: string) => invoke<null>('remove_attachment', { id });
/** Every failed or waiting transfer, now. */
export const retryTransfers = () => invoke<number>('retry_transfers');
export const transferQueue = () => invoke<TransferQueue>('transfer_queue');

// ---- Events ----

/** Calls `onChange` whenever the core reports that notes changed (batched). */
export function onNotesChanged(onChange: (batch: NotesChanged) => void): Promise<UnlistenFn> {
  return listen<NotesChanged>('notes-changed', (event) => onChange(event.payload));
}

/** Calls `onStatus` with every new sync status (the status bar). */
export function onSyncStatus(onStatus: (status: SyncStatus) => void): Promise<UnlistenFn> {
  return listen<SyncStatus>('sync-status', (event) => onStatus(event.payload));
}

/** Calls `onDrop` with the paths of files dropped on the window from the system. */
export function onFilesDropped(onDrop: (paths: string[]) => void): Promise<UnlistenFn> {
  return listen<{ paths: string[] }>('tauri://drag-drop', (event) => onDrop(event.payload.paths));
}

/** Calls `onEdit` when a save in an external editor was taken in (or could not be). */
export function onExternalEdit(onEdit: (event: ExternalEvent) => void): Promise<UnlistenFn> {
  return listen<ExternalEvent>('external-edit', (event) => onEdit(event.payload));
}
