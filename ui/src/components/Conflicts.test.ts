import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Conflicts from './Conflicts.svelte';
import type { Conflict } from '../api';
import { changes, ui } from '../lib/state.svelte';
import { absoluteTime } from '../lib/format';
import { appError, fakeIpc, resetState } from '../lib/testing';

const PUMP: Conflict = {
  note_id: '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b',
  title: 'Pump station 4',
  base: 'base\n',
  mine: 'mine\n',
  theirs: 'theirs\n',
  theirs_version: 7,
  created_ms: Date.now() - 3 * 60_000,
};
const BRIDGE: Conflict = {
  note_id: '0190a3c4-5b6d-7e8f-9a0b-aaaaaaaaaaaa',
  title: '  ',
  base: 'a',
  mine: 'b',
  theirs: 'c',
  theirs_version: 2,
  created_ms: Date.now() - 2 * 3_600_000,
};

beforeEach(() => {
  resetState();
  ui.panel = 'conflicts';
});

describe('Conflicts', () => {
  it('lists open conflicts with title, when, and an Open button', async () => {
    const ipc = fakeIpc({ list_conflicts: () => [PUMP, BRIDGE] });
    render(Conflicts);

    const items = await screen.findAllByTestId('conflict-item');
    expect(ipc.calls).toEqual([{ cmd: 'list_conflicts', args: {} }]);
    expect(screen.getByRole('heading', { name: 'Conflicts (2)' })).toBeTruthy();
    expect(items.map((i) => within(i).getByTestId('conflict-title').textContent)).toEqual([
      'Pump station 4',
      'Untitled',
    ]);
    const when = within(items[0]!).getByTestId('conflict-when');
    expect(when.textContent).toBe('3 min ago');
    expect(when.getAttribute('title')).toBe(absoluteTime(PUMP.created_ms));
    expect(within(items[1]!).getByTestId('conflict-when').textContent).toBe('2 h ago');
    expect(items[0]!.textContent).toContain('server version 7');
    expect(screen.getByRole('button', { name: 'Open Pump station 4' }).textContent).toBe('Open');
  });

  it('says what a conflict is when there is none', async () => {
    fakeIpc({ list_conflicts: () => [] });
    render(Conflicts);
    const empty = await screen.findByTestId('conflicts-empty');
    expect(empty.textContent?.replace(/\s+/g, ' ').trim()).toBe(
      'No conflicts. When the same note is edited on two devices and the edits overlap, it shows up here.',
    );
    expect(screen.getByRole('heading', { name: 'Conflicts' })).toBeTruthy();
  });

  it('reads the list again when the store changes', async () => {
    let list: Conflict[] = [];
    const ipc = fakeIpc({ list_conflicts: () => list });
    render(Conflicts);
    await screen.findByTestId('conflicts-empty');

    list = [PUMP];
    changes.version += 1;
    flushSync();

    await screen.findByTestId('conflict-item');
    expect(ipc.count('list_conflicts')).toBe(2);
    expect(screen.queryByTestId('conflicts-empty')).toBeNull();
  });

  it('opens the merge view and comes back to the list when resolved', async () => {
    let list = [PUMP, BRIDGE];
    const ipc = fakeIpc({
      list_conflicts: () => list,
      resolve_conflict: () => {
        list = [BRIDGE];
        return { id: PUMP.note_id };
      },
    });
    render(Conflicts);

    await fireEvent.click(await screen.findByRole('button', { name: 'Open Pump station 4' }));
    expect(ui.conflictId).toBe(PUMP.note_id);
    expect((await screen.findByTestId('merge-view')).dataset.noteId).toBe(PUMP.note_id);
    expect(screen.queryByTestId('conflict-list')).toBeNull();

    await fireEvent.click(screen.getByRole('button', { name: 'Keep theirs' }));
    await waitFor(() => expect(ui.conflictId).toBeNull());
    // App moves changes.version on the core's notes-changed event.
    changes.version += 1;
    flushSync();

    await waitFor(() => expect(screen.getAllByTestId('conflict-item')).toHaveLength(1));
    expect(screen.queryByTestId('merge-view')).toBeNull();
    expect(ui.notice).toBe('Conflict resolved: Pump station 4');
    expect(ipc.argsOf('resolve_conflict')).toEqual([
      { note_id: PUMP.note_id, resolution: { kind: 'theirs' } },
    ]);
  });

  it('opens the merge view at once when ui.conflictId is set', async () => {
    fakeIpc({ list_conflicts: () => [PUMP, BRIDGE] });
    ui.conflictId = BRIDGE.note_id;
    render(Conflicts);
    const merge = await screen.findByTestId('merge-view');
    expect(merge.dataset.noteId).toBe(BRIDGE.note_id);
    expect(screen.getByRole('heading', { name: 'Merge “Untitled”' })).toBeTruthy();
  });

  it('goes back to the list with Cancel', async () => {
    const ipc = fakeIpc({ list_conflicts: () => [PUMP] });
    ui.conflictId = PUMP.note_id;
    render(Conflicts);
    await fireEvent.click(await screen.findByRole('button', { name: 'Cancel' }));
    expect(await screen.findByTestId('conflict-list')).toBeTruthy();
    expect(ui.conflictId).toBeNull();
    expect(ipc.sent('list_conflicts')).toEqual([]);
  });

  it('shows the list when ui.conflictId names a conflict that is not open', async () => {
    fakeIpc({ list_conflicts: () => [PUMP] });
    ui.conflictId = 'ffffffff-5b6d-7e8f-9a0b-1c2d3e4f5a6b';
    render(Conflicts);
    await screen.findByTestId('conflict-list');
    expect(ui.conflictId).toBeNull();
    expect(screen.queryByTestId('merge-view')).toBeNull();
  });

  it('says so when the open conflict is resolved elsewhere', async () => {
    let list = [PUMP];
    fakeIpc({ list_conflicts: () => list });
    ui.conflictId = PUMP.note_id;
    render(Conflicts);
    await screen.findByTestId('merge-view');

    list = [];
    changes.version += 1;
    flushSync();

    expect((await screen.findByTestId('conflict-gone')).textContent).toContain('no longer open');
    expect((screen.getByTestId('merge-keep-mine') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByRole('button', { name: 'Back to the list' }));
    expect(await screen.findByTestId('conflicts-empty')).toBeTruthy();
  });

  it('offers to reload when a newer server version arrives while merging', async () => {
    let list = [PUMP];
    fakeIpc({ list_conflicts: () => list });
    ui.conflictId = PUMP.note_id;
    render(Conflicts);
    await screen.findByTestId('merge-view');

    list = [{ ...PUMP, theirs: 'newer\n', theirs_version: 8 }];
    changes.version += 1;
    flushSync();

    const banner = await screen.findByTestId('conflict-newer');
    expect(banner.textContent).toContain('newer version (8)');
    expect(screen.getByTestId('merge-label-right').textContent).toBe('Theirs (server version 7)');
    await fireEvent.click(screen.getByRole('button', { name: /Reload/ }));
    expect(screen.getByTestId('merge-label-right').textContent).toBe('Theirs (server version 8)');
    expect(screen.queryByTestId('conflict-newer')).toBeNull();
  });

  it('reports a failed read and can try again', async () => {
    let fail = true;
    const ipc = fakeIpc({
      list_conflicts: () => {
        if (fail) throw appError('store', 'database is locked');
        return [];
      },
    });
    render(Conflicts);
    await waitFor(() => expect(ui.error).toBe('database is locked'));
    fail = false;
    await fireEvent.click(await screen.findByRole('button', { name: 'Try again' }));
    expect(await screen.findByTestId('conflicts-empty')).toBeTruthy();
    expect(ipc.count('list_conflicts')).toBe(2);
  });
});
