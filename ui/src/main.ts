// The minimal main window: the list of notes and an input to add one. The real UI comes later;
// this proves the path UI -> command -> core -> change event -> UI re-read.
import './style.css';
import { createNote, isAppError, listNotes, onNotesChanged, type NoteSummary } from './api';

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

const form = byId<HTMLFormElement>('new-note');
const titleInput = byId<HTMLInputElement>('new-note-title');
const addButton = byId<HTMLButtonElement>('add-note');
const list = byId<HTMLUListElement>('notes');
const emptyState = byId<HTMLElement>('empty-state');
const count = byId<HTMLElement>('note-count');
const errorBox = byId<HTMLElement>('error');

const SYNC_LABELS: Record<NoteSummary['sync_state'], string> = {
  synced: 'Synced',
  pending: 'Not synced yet',
  failed: 'Sync failed',
  conflict: 'Conflict',
};

function showError(error: unknown): void {
  errorBox.textContent = isAppError(error)
    ? `${error.message} (${error.code})`
    : `Something went wrong: ${String(error)}`;
  errorBox.hidden = false;
}

function clearError(): void {
  errorBox.hidden = true;
  errorBox.textContent = '';
}

function renderNote(note: NoteSummary): HTMLLIElement {
  // textContent only: note text is user data and must never be parsed as HTML.
  const item = document.createElement('li');
  item.className = 'note';
  item.dataset.id = note.id;

  const heading = document.createElement('div');
  heading.className = 'note-heading';
  const title = document.createElement('span');
  title.className = 'note-title';
  title.textContent = note.title.trim() || 'Untitled';
  const badge = document.createElement('span');
  badge.className = `badge badge-${note.sync_state}`;
  badge.textContent = SYNC_LABELS[note.sync_state] ?? note.sync_state;
  heading.append(title, badge);

  const preview = document.createElement('p');
  preview.className = 'note-preview';
  preview.textContent = note.preview;

  const updated = document.createElement('time');
  updated.className = 'note-updated';
  const when = new Date(note.updated_ms);
  updated.dateTime = when.toISOString();
  updated.textContent = when.toLocaleString();

  item.append(heading);
  if (note.preview) item.append(preview);
  item.append(updated);
  return item;
}

function render(notes: NoteSummary[]): void {
  list.replaceChildren(...notes.map(renderNote));
  emptyState.hidden = notes.length > 0;
  list.hidden = notes.length === 0;
  count.textContent = notes.length === 1 ? '1 note' : `${notes.length} notes`;
}

// One re-read at a time; events that arrive meanwhile cause exactly one more.
let loading = false;
let reloadQueued = false;

async function refresh(): Promise<void> {
  if (loading) {
    reloadQueued = true;
    return;
  }
  loading = true;
  try {
    do {
      reloadQueued = false;
      const page = await listNotes();
      render(page.items);
    } while (reloadQueued);
  } catch (error) {
    showError(error);
  } finally {
    loading = false;
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const title = titleInput.value.trim();
  if (!title) return;
  addButton.disabled = true;
  try {
    // The list updates through the `notes-changed` event, like for any other change.
    await createNote({ title });
    titleInput.value = '';
    clearError();
  } catch (error) {
    showError(error);
  } finally {
    addButton.disabled = false;
    titleInput.focus();
  }
});

async function start(): Promise<void> {
  await onNotesChanged(() => void refresh());
  await refresh();
  document.body.dataset.ready = 'true';
}

start().catch(showError);
