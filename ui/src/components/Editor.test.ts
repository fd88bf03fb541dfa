import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import { EditorView } from '@codemirror/view';
import Editor from './Editor.svelte';
import type { Note } from '../api';
import { changes, ui } from '../lib/state.svelte';
import { PLAIN_TEXT_ABOVE } from '../lib/note-editor';
import { fakeIpc, resetState } from '../lib/testing';

const VALVE: Note = {
  id: '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b',
  notebook_id: null,
  title: 'Valve 12',
  body: '# Checked\npressure nominal\n',
  tags: ['north'],
  pinned: false,
  archived: false,
  deleted: false,
  created_ms: 1,
  updated_ms: 2,
  server_version: 3,
  sync_state: 'synced',
};

/** The CodeMirror view of the body, once the editor has loaded it. */
async function bodyView(): Promise<EditorView> {
  const content = await screen.findByTestId('editor-body');
  const view = EditorView.findFromDOM(content);
  if (!view) throw new Error('no CodeMirror view on the body');
  return view;
}

/** The store behind the fake IPC: get_note answers what update_note last saved. */
function noteStore(initial: Note) {
  let note = { ...initial };
  const ipc = fakeIpc({
    get_note: () => note,
    list_notebooks: () => [],
    update_note: (args) => {
      note = { ...note, ...(args.patch as Partial<Note>), sync_state: 'pending' };
      return note;
    },
  });
  return {
    ipc,
    /** Another device's edit arriving through sync. */
    changeElsewhere: (patch: Partial<Note>) => {
      note = { ...note, ...patch };
      changes.notes = new Set([note.id]);
      changes.version += 1;
      flushSync();
    },
  };
}

beforeEach(() => {
  resetState();
});

describe('Editor', () => {
  it('says how to start when no note is selected', () => {
    fakeIpc({ list_notebooks: () => [] });
    render(Editor);
    expect(screen.getByTestId('no-note').textContent).toContain('Select a note');
  });

  it('opens the selected note: title, tags and body', async () => {
    const { ipc } = noteStore(VALVE);
    ui.selectedId = VALVE.id;
    render(Editor);

    const view = await bodyView();
    await waitFor(() => expect(view.state.doc.toString()).toBe(VALVE.body));
    expect((screen.getByTestId('editor-title') as HTMLInputElement).value).toBe('Valve 12');
    expect((screen.getByTestId('editor-tags') as HTMLInputElement).value).toBe('north');
    expect(screen.getByTestId('sync-badge').dataset.state).toBe('synced');
    expect(ipc.argsOf('get_note')).toEqual([{ id: VALVE.id }]);
    expect(screen.queryByTestId('plain-text')).toBeNull();
  });

  it('saves what is typed in the body once the typing pauses, the body alone', async () => {
    const { ipc } = noteStore(VALVE);
    ui.selectedId = VALVE.id;
    render(Editor);
    const view = await bodyView();
    await waitFor(() => expect(view.state.doc.length).toBe(VALVE.body.length));

    for (const ch of 'ok.') {
      view.dispatch({ changes: { from: view.state.doc.length, insert: ch } });
    }
    flushSync();
    expect(screen.getByTestId('save-state').textContent).toBe('Editing…');
    expect(ipc.count('update_note')).toBe(0);

    await waitFor(() => expect(screen.getByTestId('save-state').textContent).toBe('Saved on this device'));
    expect(ipc.argsOf('update_note')).toEqual([{ id: VALVE.id, patch: { body: `${VALVE.body}ok.` } }]);
    expect(screen.getByTestId('sync-badge').dataset.state).toBe('pending');
  });

  it('puts the cursor in the title of a new note once it is open', async () => {
    noteStore({ ...VALVE, title: '', body: '' });
    ui.focusTitle = true;
    ui.selectedId = VALVE.id;
    render(Editor);
    const title = await screen.findByTestId('editor-title');
    await waitFor(() => expect(document.activeElement).toBe(title));
    expect(ui.focusTitle).toBe(false);
  });

  it('saves a title edit as the title alone', async () => {
    const { ipc } = noteStore(VALVE);
    ui.selectedId = VALVE.id;
    render(Editor);
    const title = await screen.findByTestId('editor-title');
    await fireEvent.input(title, { target: { value: 'Valve 12 (north)' } });
    await fireEvent.blur(title);
    await waitFor(() => expect(ipc.count('update_note')).toBe(1));
    expect(ipc.argsOf('update_note')).toEqual([{ id: VALVE.id, patch: { title: 'Valve 12 (north)' } }]);
  });

  it('takes in an edit from another device without saving it back', async () => {
    const store = noteStore(VALVE);
    ui.selectedId = VALVE.id;
    render(Editor);
    const view = await bodyView();
    await waitFor(() => expect(view.state.doc.toString()).toBe(VALVE.body));

    store.changeElsewhere({ body: 'rewritten on the laptop\n', title: 'Valve 12b' });
    await waitFor(() => expect(view.state.doc.toString()).toBe('rewritten on the laptop\n'));
    expect((screen.getByTestId('editor-title') as HTMLInputElement).value).toBe('Valve 12b');
    // Past the save delay: nothing was sent, the text came from the store.
    await new Promise((r) => setTimeout(r, 600));
    expect(store.ipc.count('update_note')).toBe(0);
    expect(screen.getByTestId('save-state').textContent).toBe('');
  });

  it('keeps a note in the Trash read-only, text and title, until it is restored', async () => {
    const store = noteStore({ ...VALVE, deleted: true });
    ui.selectedId = VALVE.id;
    render(Editor);
    const view = await bodyView();
    await waitFor(() => expect(view.state.readOnly).toBe(true));
    expect(view.contentDOM.getAttribute('contenteditable')).toBe('false');
    expect((screen.getByTestId('editor-title') as HTMLInputElement).readOnly).toBe(true);
    expect(screen.getByTestId('restore-note')).toBeTruthy();

    store.changeElsewhere({ deleted: false });
    await waitFor(() => expect(view.state.readOnly).toBe(false));
    expect(view.contentDOM.getAttribute('contenteditable')).toBe('true');
    expect((screen.getByTestId('editor-title') as HTMLInputElement).readOnly).toBe(false);
  });

  it('edits a very large note as plain text, and says so', async () => {
    const big = { ...VALVE, body: `${'pressure nominal, gasket replaced\n'.repeat(PLAIN_TEXT_ABOVE / 30)}` };
    expect(big.body.length).toBeGreaterThan(PLAIN_TEXT_ABOVE);
    noteStore(big);
    ui.selectedId = big.id;
    render(Editor);
    const hint = await screen.findByTestId('plain-text');
    expect(hint.textContent).toBe('Plain text (large note)');
    expect(hint.getAttribute('title')).toContain('typing stays fast');
  });
});
