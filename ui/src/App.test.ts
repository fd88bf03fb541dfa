import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { emit } from '@tauri-apps/api/event';
import { mockWindows } from '@tauri-apps/api/mocks';
import App from './App.svelte';
import type { Note, NotesChanged } from './api';
import { ui } from './lib/state.svelte';
import { fakeIpc, resetState, syncStatus } from './lib/testing';

const STATUS = syncStatus();

const NEW_NOTE: Note = {
  id: '0190a3c4-2222-7000-8000-000000000001',
  notebook_id: null,
  title: '',
  body: '',
  tags: [],
  pinned: false,
  archived: false,
  deleted: false,
  created_ms: 1,
  updated_ms: 1,
  server_version: null,
  sync_state: 'pending',
};

/** The whole window over a fake core: an empty store that can create one note. */
function app(count = () => 0) {
  mockWindows('main');
  return fakeIpc(
    {
      list_prefs: () => [],
      sync_status: () => STATUS,
      count_notes: count,
      list_notes: () => ({ items: [], next: null }),
      list_notebooks: () => [],
      create_note: (args) => ({ ...NEW_NOTE, notebook_id: (args.note as Partial<Note>).notebook_id ?? null }),
      get_note: () => NEW_NOTE,
      sync_now: () => null,
    },
    { events: true },
  );
}

const ready = () => waitFor(() => expect(document.body.dataset.ready).toBe('true'));

beforeEach(() => {
  resetState();
  delete document.body.dataset.ready;
});

describe('App', () => {
  it('Ctrl+N writes a new note in the notebook shown and puts the cursor in its title', async () => {
    const ipc = app();
    ui.notebookId = '0190a3c4-1111-7000-8000-000000000001';
    ui.search = 'valve';
    render(App);
    await ready();
    await fireEvent.keyDown(window, { key: 'n', ctrlKey: true });
    await waitFor(() => expect(ui.selectedId).toBe(NEW_NOTE.id));
    expect(ipc.argsOf('create_note')).toEqual([{ note: { notebook_id: '0190a3c4-1111-7000-8000-000000000001' } }]);
    expect(ui.search).toBe('');
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId('editor-title')));
  });

  it('Ctrl+K goes to the search box from anywhere, and Escape there clears it', async () => {
    app();
    ui.panel = 'diagnostics';
    render(App);
    await ready();
    const search = screen.getByTestId('search') as HTMLInputElement;
    await fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    expect(document.activeElement).toBe(search);
    expect(ui.panel).toBe('notes');
    await fireEvent.input(search, { target: { value: 'gasket' } });
    expect(ui.search).toBe('gasket');
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(ui.search).toBe('');
  });

  it('Ctrl+Shift+S syncs now', async () => {
    const ipc = app();
    render(App);
    await ready();
    expect(ipc.count('sync_now')).toBe(0);
    await fireEvent.keyDown(window, { key: 'S', ctrlKey: true, shiftKey: true });
    await waitFor(() => expect(ipc.count('sync_now')).toBe(1));
  });

  it('shows what the sync-status event says, and re-reads the list on notes-changed', async () => {
    let notes = 0;
    const ipc = app(() => notes);
    render(App);
    await ready();
    await waitFor(() => expect(screen.getByTestId('sync-state').textContent?.trim()).toBe('Up to date'));

    await emit('sync-status', syncStatus({ state: 'offline', pending: 3 }));
    await waitFor(() =>
      expect(screen.getByTestId('sync-state').textContent?.trim()).toBe('Offline: changes are kept on this device'),
    );
    expect(screen.getByTestId('pending-count').textContent?.trim()).toBe('3 waiting to sync');

    const counted = ipc.count('count_notes');
    notes = 1;
    const batch: NotesChanged = {
      changes: [{ notes: [NEW_NOTE.id], notebooks: [], prefs: [], outbox: true, queued: true }],
      complete: true,
    };
    await emit('notes-changed', batch);
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('1 note'));
    expect(ipc.count('count_notes')).toBeGreaterThan(counted);
  });
});
