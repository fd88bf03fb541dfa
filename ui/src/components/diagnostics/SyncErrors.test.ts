import { beforeEach, describe, expect, it } from 'vitest';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import SyncErrors from './SyncErrors.svelte';
import type { SyncErrorEntry } from '../../api';
import { absoluteTime } from '../../lib/format';
import { sync } from '../../lib/state.svelte';
import { deferred, fakeIpc, resetState, syncStatus as status } from '../../lib/testing';

beforeEach(() => {
  resetState();
});

describe('Diagnostics: recent sync errors', () => {
  it('lists the recent errors, newest first, a repeated one once with its count', async () => {
    const now = Date.now();
    const night: SyncErrorEntry = {
      message: 'cannot reach the server',
      count: 214,
      first_ms: now - 9 * 3_600_000,
      last_ms: now - 2 * 60_000,
    };
    const once: SyncErrorEntry = { message: 'server error 500', count: 1, first_ms: now - 10 * 3_600_000, last_ms: now - 10 * 3_600_000 };
    const ipc = fakeIpc({ list_sync_errors: () => [night, once] });
    sync.status = status({ state: 'offline', last_error: 'cannot reach the server' });
    render(SyncErrors, { now: Date.now() });
    const rows = await screen.findAllByTestId('sync-error');
    expect(ipc.argsOf('list_sync_errors')).toEqual([{ limit: 20 }]);
    expect(rows.map((r) => r.querySelector('.message')?.textContent)).toEqual([
      'cannot reach the server',
      'server error 500',
    ]);
    expect(rows[0]!.querySelector('time')?.textContent).toBe('2 min ago');
    expect(within(rows[0]!).getByTestId('sync-error-repeats').textContent).toBe(
      `214 times since ${absoluteTime(night.first_ms)}`,
    );
    expect(within(rows[1]!).queryByTestId('sync-error-repeats')).toBeNull();
  });

  it('reads the error log again when a sync fails, and says when none ever did', async () => {
    let errors: SyncErrorEntry[] = [];
    const ipc = fakeIpc({ list_sync_errors: () => errors });
    sync.status = status();
    render(SyncErrors, { now: Date.now() });
    expect((await screen.findByTestId('sync-errors-empty')).textContent).toBe('No sync has failed on this device.');
    errors = [{ message: 'server error 500', count: 1, first_ms: Date.now(), last_ms: Date.now() }];
    sync.status = status({ state: 'error', last_error: 'server error 500' });
    flushSync();
    await waitFor(() => expect(screen.getAllByTestId('sync-error')).toHaveLength(1));
    expect(ipc.count('list_sync_errors')).toBe(2);
  });

  it('shows the newest read when an older one answers last', async () => {
    const first = deferred<SyncErrorEntry[]>();
    const second = deferred<SyncErrorEntry[]>();
    const replies = [first.promise, second.promise];
    fakeIpc({ list_sync_errors: () => replies.shift() });
    sync.status = status();
    render(SyncErrors, { now: Date.now() });
    sync.status = status({ state: 'error', last_error: 'server error 500' });
    flushSync();

    const now = Date.now();
    second.resolve([{ message: 'server error 500', count: 1, first_ms: now, last_ms: now }]);
    await screen.findByTestId('sync-error');
    // The read from before the failure answers late, with an empty log: it is dropped.
    first.resolve([]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(screen.queryByTestId('sync-errors-empty')).toBeNull();
    expect(screen.getAllByTestId('sync-error')).toHaveLength(1);
  });
});
