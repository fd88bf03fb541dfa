import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { EditorView } from '@codemirror/view';
import MergeView from './MergeView.svelte';
import type { Conflict } from '../api';
import { ui } from '../lib/state.svelte';
import { appError, deferred, fakeIpc, resetState } from '../lib/testing';

const CONFLICT: Conflict = {
  note_id: '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b',
  title: 'Pump station 4',
  base: 'Valve A: open\nValve B: closed\n',
  mine: 'Valve A: open\nValve B: half open\n',
  theirs: 'Valve A: shut\nValve B: closed\n',
  theirs_version: 7,
  created_ms: Date.now() - 3 * 60_000,
};

function editor(testid: string): EditorView {
  const content = screen.getByTestId(testid);
  const view = EditorView.findFromDOM(content);
  if (!view) throw new Error(`no editor around ${testid}`);
  return view;
}

/** Types at the end of the left side, as the user would. */
function typeInMine(text: string) {
  const mine = editor('merge-mine');
  mine.dispatch({
    changes: { from: mine.state.doc.length, insert: text },
    userEvent: 'input.type',
  });
}

beforeEach(() => {
  resetState();
  ui.panel = 'conflicts';
  ui.conflictId = CONFLICT.note_id;
});

describe('MergeView', () => {
  it('shows mine editable on the left and theirs read-only on the right', () => {
    fakeIpc({});
    render(MergeView, { props: { conflict: CONFLICT } });

    expect(screen.getByRole('heading', { name: 'Merge “Pump station 4”' })).toBeTruthy();
    expect(screen.getByTestId('merge-label-mine').textContent).toBe('Mine (this device)');
    expect(screen.getByTestId('merge-label-right').textContent).toBe('Theirs (server version 7)');
    const mine = editor('merge-mine');
    const theirs = editor('merge-theirs');
    expect(mine.state.doc.toString()).toBe(CONFLICT.mine);
    expect(theirs.state.doc.toString()).toBe(CONFLICT.theirs);
    expect(mine.state.readOnly).toBe(false);
    expect(theirs.state.readOnly).toBe(true);
    expect(screen.getByTestId('merge-theirs').getAttribute('contenteditable')).toBe('false');
    expect(screen.getByLabelText('Mine (this device), editable')).toBeTruthy();
  });

  it('highlights what differs', () => {
    fakeIpc({});
    const { container } = render(MergeView, { props: { conflict: CONFLICT } });
    // Both lines differ on one side or the other: the merge view marks them as changed.
    expect(container.querySelectorAll('.cm-merge-a .cm-changedLine').length).toBe(2);
    expect(container.querySelectorAll('.cm-merge-b .cm-changedLine').length).toBe(2);
    expect(container.querySelector('.cm-merge-a .cm-changedText')?.textContent).toBeTruthy();
  });

  it('keeps mine', async () => {
    const ipc = fakeIpc({ resolve_conflict: () => ({ id: CONFLICT.note_id }) });
    render(MergeView, { props: { conflict: CONFLICT } });

    await fireEvent.click(screen.getByRole('button', { name: 'Keep mine' }));

    await waitFor(() => expect(ui.conflictId).toBeNull());
    expect(ipc.calls).toEqual([
      { cmd: 'resolve_conflict', args: { note_id: CONFLICT.note_id, resolution: { kind: 'mine' } } },
    ]);
    expect(ui.notice).toBe('Conflict resolved: Pump station 4');
    expect(ui.error).toBeNull();
  });

  it('keeps theirs', async () => {
    const ipc = fakeIpc({ resolve_conflict: () => ({ id: CONFLICT.note_id }) });
    render(MergeView, { props: { conflict: CONFLICT } });

    await fireEvent.click(screen.getByRole('button', { name: 'Keep theirs' }));

    await waitFor(() => expect(ui.conflictId).toBeNull());
    expect(ipc.argsOf('resolve_conflict')).toEqual([
      { note_id: CONFLICT.note_id, resolution: { kind: 'theirs' } },
    ]);
    expect(ui.notice).toBe('Conflict resolved: Pump station 4');
  });

  it('saves the left side as edited, enabled only once it was edited', async () => {
    const ipc = fakeIpc({ resolve_conflict: () => ({ id: CONFLICT.note_id }) });
    render(MergeView, { props: { conflict: CONFLICT } });
    const save = screen.getByRole('button', { name: 'Save merged' }) as HTMLButtonElement;
    expect(save.disabled).toBe(true);

    typeInMine('Checked by Ana.\n');
    await waitFor(() => expect(save.disabled).toBe(false));
    await fireEvent.click(save);

    await waitFor(() => expect(ui.conflictId).toBeNull());
    expect(ipc.calls).toEqual([
      {
        cmd: 'resolve_conflict',
        args: {
          note_id: CONFLICT.note_id,
          resolution: { kind: 'text', text: `${CONFLICT.mine}Checked by Ana.\n` },
        },
      },
    ]);
  });

  it('copies a part of theirs into mine with the arrows', async () => {
    const ipc = fakeIpc({ resolve_conflict: () => ({ id: CONFLICT.note_id }) });
    const { container } = render(MergeView, { props: { conflict: CONFLICT } });
    // The arrows are placed after a measure, on the next animation frame.
    const arrow = await waitFor(() => {
      const button = container.querySelector<HTMLButtonElement>('.cm-merge-revert button');
      if (!button) throw new Error('no arrow yet');
      return button;
    });
    expect(arrow.getAttribute('title')).toBe('Use this part in mine');

    await fireEvent.mouseDown(arrow);
    expect(editor('merge-mine').state.doc.toString()).toBe(CONFLICT.theirs);

    await fireEvent.click(screen.getByRole('button', { name: 'Save merged' }));
    await waitFor(() => expect(ipc.count('resolve_conflict')).toBe(1));
    expect(ipc.argsOf('resolve_conflict')[0]).toEqual({
      note_id: CONFLICT.note_id,
      resolution: { kind: 'text', text: CONFLICT.theirs },
    });
  });

  it('shows the original on the right and back', async () => {
    fakeIpc({});
    render(MergeView, { props: { conflict: CONFLICT } });
    const toggle = screen.getByRole('button', { name: 'Show original' });
    expect(toggle.getAttribute('aria-pressed')).toBe('false');

    await fireEvent.click(toggle);
    expect(screen.getByTestId('merge-label-right').textContent).toBe('Original (before both edits)');
    expect(editor('merge-original').state.doc.toString()).toBe(CONFLICT.base);
    expect(screen.getByLabelText('Original (before both edits), read-only')).toBeTruthy();
    expect(toggle.getAttribute('aria-pressed')).toBe('true');
    // The left side is not touched by it.
    expect(editor('merge-mine').state.doc.toString()).toBe(CONFLICT.mine);
    expect((screen.getByRole('button', { name: 'Save merged' }) as HTMLButtonElement).disabled).toBe(true);

    await fireEvent.click(screen.getByRole('button', { name: 'Show theirs' }));
    expect(editor('merge-theirs').state.doc.toString()).toBe(CONFLICT.theirs);
    expect(screen.getByTestId('merge-label-right').textContent).toBe('Theirs (server version 7)');
  });

  it('keeps the edited text when resolving fails, and says why', async () => {
    const ipc = fakeIpc({
      resolve_conflict: () => {
        throw appError('invalid_input', 'body is longer than 1 MB');
      },
    });
    render(MergeView, { props: { conflict: CONFLICT } });
    typeInMine('more');
    const save = screen.getByRole('button', { name: 'Save merged' }) as HTMLButtonElement;
    await waitFor(() => expect(save.disabled).toBe(false));

    await fireEvent.click(save);

    await waitFor(() => expect(ui.error).toBe('body is longer than 1 MB'));
    expect(ipc.count('resolve_conflict')).toBe(1);
    expect(ui.conflictId).toBe(CONFLICT.note_id);
    expect(ui.notice).toBeNull();
    expect(editor('merge-mine').state.doc.toString()).toBe(`${CONFLICT.mine}more`);
    expect(save.disabled).toBe(false);
  });

  it('disables the buttons while resolving', async () => {
    const pending = deferred<unknown>();
    fakeIpc({ resolve_conflict: () => pending.promise });
    render(MergeView, { props: { conflict: CONFLICT } });

    await fireEvent.click(screen.getByRole('button', { name: 'Keep theirs' }));
    expect(screen.getByTestId('merge-keep-theirs').textContent?.trim()).toBe('Saving…');
    for (const id of ['merge-keep-mine', 'merge-keep-theirs', 'merge-save', 'merge-cancel']) {
      expect((screen.getByTestId(id) as HTMLButtonElement).disabled).toBe(true);
    }
    pending.resolve({ id: CONFLICT.note_id });
    await waitFor(() => expect(ui.conflictId).toBeNull());
  });

  it('cancels straight away when nothing was edited', async () => {
    const ipc = fakeIpc({});
    render(MergeView, { props: { conflict: CONFLICT } });
    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(ui.conflictId).toBeNull();
    expect(ipc.calls).toEqual([]);
  });

  it('asks before dropping edits on cancel', async () => {
    const ipc = fakeIpc({});
    render(MergeView, { props: { conflict: CONFLICT } });
    typeInMine('draft');

    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(screen.getByRole('alertdialog').textContent).toContain('Leave without saving?');
    await fireEvent.click(screen.getByRole('button', { name: 'Keep editing' }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(ui.conflictId).toBe(CONFLICT.note_id);

    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    await fireEvent.click(screen.getByRole('button', { name: 'Leave' }));
    expect(ui.conflictId).toBeNull();
    expect(ipc.calls).toEqual([]);
  });

  it('destroys the editors when it goes away', () => {
    fakeIpc({});
    const { unmount } = render(MergeView, { props: { conflict: CONFLICT } });
    const mine = editor('merge-mine');
    const theirs = editor('merge-theirs');
    const destroy = vi.spyOn(EditorView.prototype, 'destroy'); // watched, not replaced
    unmount();
    expect(destroy.mock.contexts).toEqual(expect.arrayContaining([mine, theirs]));
    expect(mine.dom.isConnected).toBe(false);
    expect(theirs.dom.isConnected).toBe(false);
    destroy.mockRestore();
  });

  it('follows the theme while open', async () => {
    fakeIpc({});
    document.documentElement.dataset.theme = 'light';
    render(MergeView, { props: { conflict: CONFLICT } });
    const mine = editor('merge-mine');
    expect(mine.state.facet(EditorView.darkTheme)).toBe(false);
    document.documentElement.dataset.theme = 'dark';
    await waitFor(() => expect(mine.state.facet(EditorView.darkTheme)).toBe(true));
    expect(editor('merge-theirs').state.facet(EditorView.darkTheme)).toBe(true);
    delete document.documentElement.dataset.theme;
  });
});
