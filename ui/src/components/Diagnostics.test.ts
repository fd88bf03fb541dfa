import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Diagnostics from './Diagnostics.svelte';
import type { OutboxEntry, SyncErrorEntry } from '../api';
import { changes, ui } from '../lib/state.svelte';
import { appError, fakeIpc, resetState } from '../lib/testing';
import { QUEUED, REFUSED, SENT } from './diagnostics/fixtures';

// Each panel has its own tests beside it (diagnostics/*.test.ts); these are the screen's own:
// it reads the outbox once for the two panels that show it.

const PATHS = { data_dir: '/home/ana/.local/share/outpost', log_dir: '/home/ana/.local/share/outpost/logs' };

const READS = ['list_outbox', 'list_dead_letters', 'app_paths', 'list_sync_errors', 'list_attachments'];

function reads(outbox: OutboxEntry[] = [], dead: OutboxEntry[] = [], errors: SyncErrorEntry[] = []) {
  return {
    list_outbox: () => outbox,
    list_dead_letters: () => dead,
    app_paths: () => PATHS,
    list_sync_errors: () => errors,
    list_attachments: () => [],
  };
}

beforeEach(() => {
  resetState();
  ui.panel = 'diagnostics';
});

describe('Diagnostics', () => {
  it('shows every panel, in order', async () => {
    fakeIpc(reads());
    render(Diagnostics);
    const sections = [...screen.getByTestId('diagnostics-panel').querySelectorAll('section')];
    expect(sections.map((s) => s.dataset.testid)).toEqual([
      'diag-status',
      'sync-errors',
      'outbox',
      'dead-letters',
      'transfers',
      'doctor',
      'paths',
    ]);
    await screen.findByTestId('outbox-empty');
  });

  it('reads what waits (the oldest 500) and what was refused, for their panels', async () => {
    const ipc = fakeIpc(reads([QUEUED, SENT, REFUSED], [REFUSED]));
    render(Diagnostics);
    expect(await screen.findAllByTestId('outbox-row')).toHaveLength(2);
    expect(ipc.argsOf('list_outbox')).toEqual([{ limit: 500 }]);
    expect(ipc.argsOf('list_dead_letters')).toEqual([{}]);
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync (2)');
    expect(screen.getByTestId('dead-letters-heading').textContent?.trim()).toBe('Refused by the server (1)');
  });

  it('reads again when the store changes', async () => {
    let outbox: OutboxEntry[] = [QUEUED];
    const ipc = fakeIpc({ ...reads(), list_outbox: () => outbox });
    render(Diagnostics);
    await screen.findByTestId('outbox-row');

    outbox = [];
    changes.version += 1;
    flushSync();

    await screen.findByTestId('outbox-empty');
    expect(ipc.count('list_outbox')).toBe(2);
    expect(ipc.count('list_dead_letters')).toBe(2);
  });

  it('reports a failed read', async () => {
    fakeIpc({
      ...reads(),
      list_outbox: () => {
        throw appError('store', 'database is locked');
      },
    });
    render(Diagnostics);
    await waitFor(() => expect(ui.error).toBe('database is locked'));
  });

  it('reads again once a refused change is sent again', async () => {
    let dead = [REFUSED];
    const ipc = fakeIpc({
      ...reads(),
      list_dead_letters: () => dead,
      retry_dead_letter: () => {
        dead = [];
        return null;
      },
    });
    render(Diagnostics);
    await fireEvent.click(await screen.findByRole('button', { name: 'Retry' }));

    expect(await screen.findByTestId('dead-letters-empty')).toBeTruthy();
    expect(ipc.sent(...READS)).toEqual([
      { cmd: 'retry_dead_letter', args: { mutation_id: REFUSED.mutation_id } },
    ]);
    expect(ui.notice).toBe('Sending again: Note 1c2d3e4f5a6b');
  });

  it('reads again once a refused change is discarded', async () => {
    let dead = [REFUSED];
    const ipc = fakeIpc({
      ...reads(),
      list_dead_letters: () => dead,
      discard_dead_letter: () => {
        dead = [];
        return null;
      },
    });
    render(Diagnostics);
    await fireEvent.click(await screen.findByRole('button', { name: 'Discard' }));
    await fireEvent.click(screen.getByTestId('dead-letter-confirm-discard'));

    expect(await screen.findByTestId('dead-letters-empty')).toBeTruthy();
    expect(ipc.sent(...READS)).toEqual([
      { cmd: 'discard_dead_letter', args: { mutation_id: REFUSED.mutation_id } },
    ]);
    expect(ui.notice).toBe('Change discarded: Note 1c2d3e4f5a6b');
  });
});
