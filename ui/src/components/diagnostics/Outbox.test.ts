import { describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import Outbox from './Outbox.svelte';
import { absoluteTime } from '../../lib/format';
import { entry, NOTE_ID, QUEUED, REFUSED, SENT } from './fixtures';

describe('Diagnostics: outbox', () => {
  it('shows what waits, with a count, fields, times, attempts, errors and whether sent', () => {
    render(Outbox, { entries: [QUEUED, SENT, REFUSED], now: Date.now() });

    const rows = screen.getAllByTestId('outbox-row');
    // Refused changes are listed with the dead letters, not as waiting.
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync (2)');
    expect(rows).toHaveLength(2);
    const cells = within(rows[0]!).getAllByRole('cell').map((c) => c.textContent?.trim());
    expect(cells).toEqual([
      'Note 1c2d3e4f5a6b',
      'note.put',
      'title, body',
      '3 min ago',
      '2',
      'cannot reach the server',
      'Not yet',
    ]);
    expect(within(rows[0]!).getByText('3 min ago').getAttribute('title')).toBe(absoluteTime(QUEUED.created_ms));
    expect(within(rows[0]!).getAllByRole('cell')[0]!.getAttribute('title')).toBe(NOTE_ID);
    const second = within(rows[1]!).getAllByRole('cell').map((c) => c.textContent?.trim());
    expect(second[0]).toBe('Notebook bbbbbbbbbbbb');
    expect(second[5]).toBe('—');
    expect(second[6]).toBe('Yes, awaiting the answer');
  });

  it('says when nothing waits', () => {
    render(Outbox, { entries: [], now: Date.now() });
    expect(screen.getByTestId('outbox-empty').textContent?.trim()).toBe(
      'Nothing waiting: every change on this device is on the server.',
    );
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync (0)');
  });

  it('says when it shows only the oldest of more', () => {
    const full = Array.from({ length: 500 }, (_, i) => entry({ seq: i + 1, mutation_id: `m${i}` }));
    render(Outbox, { entries: full, now: Date.now() });
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync (500+)');
    expect(screen.getByText('Showing the oldest 500.')).toBeTruthy();
  });

  it('says it is loading before the first read', () => {
    render(Outbox, { entries: null, now: Date.now() });
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync');
    expect(screen.getByText('Loading…')).toBeTruthy();
  });
});
