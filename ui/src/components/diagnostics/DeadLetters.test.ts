import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import DeadLetters from './DeadLetters.svelte';
import type { OutboxEntry } from '../../api';
import { ui } from '../../lib/state.svelte';
import { appError, fakeIpc, resetState } from '../../lib/testing';
import { NOTE_ID, REFUSED, SENT } from './fixtures';

/** The panel as Diagnostics shows it; counts the times it asks for the outbox to be read again. */
function renderLetters(letters: OutboxEntry[]) {
  const changed = { count: 0 };
  render(DeadLetters, { letters, now: Date.now(), onchanged: () => (changed.count += 1) });
  return changed;
}

beforeEach(() => {
  resetState();
  ui.panel = 'diagnostics';
});

describe('Diagnostics: refused changes', () => {
  it('lists them with the reason', () => {
    renderLetters([REFUSED]);
    const letter = screen.getByTestId('dead-letter');
    expect(letter.dataset.mutationId).toBe(REFUSED.mutation_id);
    expect(within(letter).getByTestId('dead-letter-reason').textContent?.trim()).toBe('title must not be empty');
    expect(screen.getByTestId('dead-letters-heading').textContent?.trim()).toBe('Refused by the server (1)');
  });

  it('says when the server refused nothing', () => {
    renderLetters([]);
    expect(screen.getByTestId('dead-letters-empty').textContent).toBe('The server has refused no change.');
    expect(screen.getByTestId('dead-letters-heading').textContent?.trim()).toBe('Refused by the server');
  });

  it('retries one', async () => {
    const ipc = fakeIpc({ retry_dead_letter: () => null });
    const changed = renderLetters([REFUSED]);
    await fireEvent.click(screen.getByRole('button', { name: 'Retry' }));

    await waitFor(() => expect(changed.count).toBe(1));
    expect(ipc.sent()).toEqual([{ cmd: 'retry_dead_letter', args: { mutation_id: REFUSED.mutation_id } }]);
    expect(ui.notice).toBe('Sending again: Note 1c2d3e4f5a6b');
  });

  it('opens the note to edit it', async () => {
    const ipc = fakeIpc({});
    renderLetters([REFUSED]);
    await fireEvent.click(screen.getByRole('button', { name: 'Edit' }));
    expect(ui.selectedId).toBe(NOTE_ID);
    expect(ui.panel).toBe('notes');
    expect(ipc.sent()).toEqual([]);
  });

  it('offers Edit only for notes', () => {
    renderLetters([{ ...SENT, state: 'failed', last_error: 'name taken' }]);
    expect(screen.queryByRole('button', { name: 'Edit' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Retry' })).toBeTruthy();
  });

  it('discards one only after a yes on the page', async () => {
    const ipc = fakeIpc({ discard_dead_letter: () => null });
    const changed = renderLetters([REFUSED]);

    await fireEvent.click(screen.getByRole('button', { name: 'Discard' }));
    const confirm = screen.getByRole('alertdialog', { name: 'Discard this change?' });
    expect(confirm.textContent).toContain("The note's title goes back to the server's version.");
    expect(ipc.sent()).toEqual([]);

    await fireEvent.click(within(confirm).getByRole('button', { name: 'Keep it' }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(ipc.sent()).toEqual([]);

    await fireEvent.click(screen.getByRole('button', { name: 'Discard' }));
    await fireEvent.click(screen.getByTestId('dead-letter-confirm-discard'));

    await waitFor(() => expect(changed.count).toBe(1));
    expect(ipc.sent()).toEqual([{ cmd: 'discard_dead_letter', args: { mutation_id: REFUSED.mutation_id } }]);
    expect(ui.notice).toBe('Change discarded: Note 1c2d3e4f5a6b');
    await waitFor(() => expect(screen.queryByRole('alertdialog')).toBeNull());
  });

  it('shows why a retry failed and keeps the entry', async () => {
    fakeIpc({
      retry_dead_letter: () => {
        throw appError('not_found', 'no dead letter 0190a3c4');
      },
    });
    const changed = renderLetters([REFUSED]);
    await fireEvent.click(screen.getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(ui.error).toBe('no dead letter 0190a3c4'));
    expect(screen.getByTestId('dead-letter')).toBeTruthy();
    expect((screen.getByRole('button', { name: 'Retry' }) as HTMLButtonElement).disabled).toBe(false);
    expect(changed.count).toBe(0);
  });
});
