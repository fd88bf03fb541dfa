import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import NoteList from './NoteList.svelte';
import type { NoteSummary, SearchHit } from '../api';
import { changes, ui } from '../lib/state.svelte';
import { deferred, fakeIpc, resetState } from '../lib/testing';
import { PAGE_SIZE, ROW_HEIGHT } from '../lib/window';

/** Note `i` of a large notebook, made up on demand as the store would list it. */
function summary(i: number): NoteSummary {
  return {
    id: `0190a3c4-0000-7000-8000-${String(i).padStart(12, '0')}`,
    notebook_id: null,
    title: `Inspection ${i}`,
    preview: `valve ${i} checked`,
    tags: [],
    pinned: i === 0,
    archived: false,
    deleted: false,
    created_ms: 1,
    updated_ms: Date.now(),
    sync_state: i % 7 === 0 ? 'pending' : 'synced',
  };
}

/** A store of `total` notes behind list_notes and count_notes, by offset as the core pages. */
function notes(total: number, extra: Parameters<typeof fakeIpc>[0] = {}) {
  return fakeIpc({
    count_notes: () => total,
    list_notes: (args) => {
      const { offset = 0, limit = PAGE_SIZE } = args.query as { offset?: number; limit?: number };
      const items = [];
      for (let i = offset; i < Math.min(total, offset + limit); i++) items.push(summary(i));
      return { items, next: null };
    },
    ...extra,
  });
}

const rows = () => screen.queryAllByTestId('note-row');
const offsets = (ipc: ReturnType<typeof notes>) =>
  ipc.argsOf('list_notes').map((a) => (a.query as { offset: number }).offset);

beforeEach(() => {
  resetState();
});

describe('NoteList', () => {
  it('counts 100,000 notes but fetches one page and draws only the rows on screen', async () => {
    const ipc = notes(100_000);
    render(NoteList);
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('100,000 notes'));
    expect(offsets(ipc)).toEqual([0]);
    // 600 px of list: about ten rows on screen, and a few more drawn below for a fast scroll.
    expect(rows().length).toBeGreaterThan(5);
    expect(rows().length).toBeLessThan(30);
    expect(rows()[0]?.textContent).toContain('Inspection 0');
    expect(rows()[0]?.querySelector('[aria-label="Pinned"]')).toBeTruthy();
  });

  it('fetches the page it scrolls to, and no page in between', async () => {
    const ipc = notes(100_000);
    render(NoteList);
    await waitFor(() => expect(rows().length).toBeGreaterThan(0));
    const list = screen.getByLabelText('Note list');
    list.scrollTop = 50_100 * ROW_HEIGHT;
    await fireEvent.scroll(list);
    await waitFor(() => expect(screen.getByText('Inspection 50100')).toBeTruthy());
    expect(offsets(ipc)).toEqual([0, 50_000]);
    expect(rows().length).toBeLessThan(30);
  });

  it('opens a note on click and moves through the list with the arrow keys', async () => {
    notes(100);
    render(NoteList);
    await waitFor(() => expect(rows().length).toBeGreaterThan(2));
    await fireEvent.click(rows()[1]!);
    expect(ui.selectedId).toBe(summary(1).id);
    await fireEvent.keyDown(screen.getByLabelText('Note list'), { key: 'ArrowDown' });
    expect(ui.selectedId).toBe(summary(2).id);
    await fireEvent.keyDown(screen.getByLabelText('Note list'), { key: 'ArrowUp' });
    await fireEvent.keyDown(screen.getByLabelText('Note list'), { key: 'ArrowUp' });
    expect(ui.selectedId).toBe(summary(0).id);
  });

  it('says what each empty view is for', async () => {
    notes(0);
    render(NoteList);
    const empty = await screen.findByTestId('empty-state');
    expect(empty.textContent).toContain('No notes yet. Press Ctrl+N to write one');
    ui.view = 'archived';
    flushSync();
    await waitFor(() => expect(screen.getByTestId('empty-state').textContent).toContain('Nothing archived'));
    ui.view = 'trash';
    flushSync();
    await waitFor(() => expect(screen.getByTestId('empty-state').textContent).toBe('The Trash is empty.'));
  });

  it('re-reads the list when the core reports a change', async () => {
    let total = 3;
    notes(0, { count_notes: () => total });
    render(NoteList);
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('3 notes'));
    total = 4;
    changes.version += 1;
    flushSync();
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('4 notes'));
  });

  it('searches as the user types and highlights what matched', async () => {
    const hit: SearchHit = {
      note: summary(12),
      title: [{ text: 'Inspection 12', hit: false }],
      snippet: [
        { text: 'the ', hit: false },
        { text: 'valve', hit: true },
        { text: ' on the north side', hit: false },
      ],
    };
    const ipc = notes(100, { search_notes: (args) => (args.text === 'valve' ? [hit] : []) });
    render(NoteList);
    ui.search = 'valve ';
    flushSync();
    const found = await screen.findByTestId('search-hit');
    expect(found.querySelector('mark')?.textContent).toBe('valve');
    expect(found.textContent).toContain('the valve on the north side');
    expect(screen.getByTestId('search-summary').textContent?.replace(/\s+/g, ' ').trim()).toBe(
      '1 match for “valve”',
    );
    expect(ipc.argsOf('search_notes')).toEqual([{ text: 'valve', limit: 100 }]);

    await fireEvent.click(found);
    expect(ui.selectedId).toBe(summary(12).id);

    ui.search = 'gasket';
    flushSync();
    const none = await screen.findByTestId('empty-search');
    expect(none.textContent).toBe('No note matches “gasket”.');
  });

  it('shows the hits for what is typed now, however late an older search answers', async () => {
    const asked = new Map<string, ReturnType<typeof deferred<SearchHit[]>>>();
    notes(100, {
      search_notes: (args) => {
        const reply = deferred<SearchHit[]>();
        asked.set(args.text as string, reply);
        return reply.promise;
      },
    });
    render(NoteList);
    const hitFor = (i: number): SearchHit => ({ note: summary(i), title: [{ text: `Inspection ${i}`, hit: false }], snippet: [] });

    ui.search = 'val';
    flushSync();
    await waitFor(() => expect(asked.has('val')).toBe(true));
    ui.search = 'valve';
    flushSync();
    await waitFor(() => expect(asked.has('valve')).toBe(true));
    asked.get('valve')!.resolve([hitFor(12)]);
    await screen.findByTestId('search-hit');
    asked.get('val')!.resolve([hitFor(1), hitFor(2)]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(screen.getAllByTestId('search-hit').map((h) => h.dataset.id)).toEqual([summary(12).id]);

    // Cleared while a search is on its way: the list comes back and stays.
    ui.search = 'gasket';
    flushSync();
    await waitFor(() => expect(asked.has('gasket')).toBe(true));
    ui.search = '';
    flushSync();
    asked.get('gasket')!.resolve([hitFor(3)]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(screen.queryByTestId('search-hit')).toBeNull();
    expect(rows().length).toBeGreaterThan(0);
  });

  it('shows the view chosen last, however late the read of an earlier one answers', async () => {
    const trashCount = deferred<number>();
    notes(100, {
      count_notes: (args) => ((args.query as { view?: string }).view === 'trash' ? trashCount.promise : 100),
    });
    render(NoteList);
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('100 notes'));
    ui.view = 'trash';
    flushSync();
    ui.view = 'active';
    flushSync();
    await waitFor(() => expect(screen.getByTestId('note-count').textContent?.trim()).toBe('100 notes'));
    trashCount.resolve(2);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(screen.getByTestId('note-count').textContent?.trim()).toBe('100 notes');
  });
});
