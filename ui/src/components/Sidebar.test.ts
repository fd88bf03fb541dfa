import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import Sidebar from './Sidebar.svelte';
import type { Notebook } from '../api';
import { sync, ui } from '../lib/state.svelte';
import { appError, fakeIpc, resetState, syncStatus } from '../lib/testing';

const NORTH: Notebook = {
  id: '0190a3c4-1111-7000-8000-000000000001',
  name: 'North site',
  note_count: 12,
  created_ms: 1,
  updated_ms: 1,
};

/** Notebooks behind the fake IPC, changed by the commands the sidebar sends. */
function notebooks(initial: Notebook[]) {
  let list = [...initial];
  const ipc = fakeIpc({
    list_notebooks: () => list,
    create_notebook: (args) => {
      const nb = { ...NORTH, id: '0190a3c4-1111-7000-8000-000000000002', name: args.name as string, note_count: 0 };
      list = [...list, nb];
      return nb;
    },
    rename_notebook: (args) => {
      list = list.map((nb) => (nb.id === args.id ? { ...nb, name: args.name as string } : nb));
      return list.find((nb) => nb.id === args.id);
    },
    delete_notebook: (args) => {
      list = list.filter((nb) => nb.id !== args.id);
      return null;
    },
    empty_trash: () => 3,
  });
  return ipc;
}

beforeEach(() => {
  resetState();
});

describe('Sidebar', () => {
  it('lists the notebooks with their note counts, or says there are none', async () => {
    notebooks([NORTH]);
    render(Sidebar, { onNewNote: () => {} });
    const row = await screen.findByTestId('notebook');
    expect(row.textContent?.replace(/\s+/g, ' ').trim()).toBe('North site12');
    await fireEvent.click(row);
    expect(ui.notebookId).toBe(NORTH.id);
    expect(ui.view).toBe('active');

    resetState();
    notebooks([]);
    render(Sidebar, { onNewNote: () => {} });
    expect((await screen.findAllByText('No notebooks yet.')).length).toBeGreaterThan(0);
  });

  it('creates a notebook and shows it', async () => {
    const ipc = notebooks([]);
    render(Sidebar, { onNewNote: () => {} });
    await fireEvent.click(screen.getByTestId('add-notebook'));
    const name = screen.getByTestId('new-notebook-name');
    await fireEvent.input(name, { target: { value: 'Pumps' } });
    await fireEvent.submit(name.closest('form')!);
    await waitFor(() => expect(ipc.argsOf('create_notebook')).toEqual([{ name: 'Pumps' }]));
    await waitFor(() => expect(ui.notebookId).toBe('0190a3c4-1111-7000-8000-000000000002'));
  });

  it('renames a notebook on double-click', async () => {
    const ipc = notebooks([NORTH]);
    render(Sidebar, { onNewNote: () => {} });
    await fireEvent.dblClick(await screen.findByTestId('notebook'));
    const input = screen.getByLabelText('New name') as HTMLInputElement;
    expect(input.value).toBe('North site');
    await fireEvent.input(input, { target: { value: 'North site (old)' } });
    await fireEvent.submit(input.closest('form')!);
    await waitFor(() => expect(ipc.argsOf('rename_notebook')).toEqual([{ id: NORTH.id, name: 'North site (old)' }]));
    await waitFor(() => expect(screen.queryByLabelText('New name')).toBeNull());
  });

  it('deletes a notebook only after a second click, and says its notes stay', async () => {
    const ipc = notebooks([NORTH]);
    ui.notebookId = NORTH.id;
    render(Sidebar, { onNewNote: () => {} });
    await fireEvent.click(await screen.findByLabelText('Delete notebook North site'));
    expect(ipc.count('delete_notebook')).toBe(0);
    await fireEvent.click(screen.getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(ipc.argsOf('delete_notebook')).toEqual([{ id: NORTH.id }]));
    expect(ui.notice).toBe('Notebook “North site” deleted; its notes are still in Notes');
    expect(ui.notebookId).toBeNull();
  });

  it('empties the Trash only after a confirmation, and says how many went', async () => {
    const ipc = notebooks([]);
    render(Sidebar, { onNewNote: () => {} });
    expect(screen.queryByTestId('empty-trash')).toBeNull();
    await fireEvent.click(screen.getByTestId('view-trash'));
    expect(ui.view).toBe('trash');
    await fireEvent.click(screen.getByTestId('empty-trash'));
    expect(ipc.count('empty_trash')).toBe(0);
    await fireEvent.click(screen.getByTestId('confirm-empty-trash'));
    await waitFor(() => expect(ui.notice).toBe('3 notes deleted for good'));
  });

  it('shows the archive, the sync screens and their alert counts, and starts a new note', async () => {
    notebooks([]);
    const onNewNote = vi.fn();
    render(Sidebar, { onNewNote });
    await fireEvent.click(screen.getByTestId('view-archive'));
    expect(ui.view).toBe('archived');
    sync.status = syncStatus({ failed: 2, conflicts: 1 });
    await waitFor(() => expect(screen.getByTestId('open-conflicts').textContent?.trim()).toBe('Conflicts 1'));
    expect(screen.getByTestId('open-diagnostics').textContent?.trim()).toBe('Sync diagnostics 2');
    await fireEvent.click(screen.getByTestId('open-diagnostics'));
    expect(ui.panel).toBe('diagnostics');
    await fireEvent.click(screen.getByTestId('new-note'));
    expect(onNewNote).toHaveBeenCalledOnce();
  });

  it('says why a notebook could not be created', async () => {
    fakeIpc({
      list_notebooks: () => [],
      create_notebook: () => {
        throw appError('invalid_input', 'a notebook named “Pumps” exists');
      },
    });
    render(Sidebar, { onNewNote: () => {} });
    await fireEvent.click(screen.getByTestId('add-notebook'));
    const name = screen.getByTestId('new-notebook-name');
    await fireEvent.input(name, { target: { value: 'Pumps' } });
    await fireEvent.submit(name.closest('form')!);
    await waitFor(() => expect(ui.error).toBe('a notebook named “Pumps” exists'));
    expect(screen.getByTestId('new-notebook-name')).toBeTruthy();
  });
});
