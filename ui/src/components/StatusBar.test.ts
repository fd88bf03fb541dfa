import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import StatusBar from './StatusBar.svelte';
import type { SyncStatus } from '../api';
import { sync, ui } from '../lib/state.svelte';
import { appError, fakeIpc, resetState, syncStatus } from '../lib/testing';

/** The engine reports `status` (last synced 5 min ago), as a `sync-status` event would. */
function report(status: Partial<SyncStatus>) {
  sync.status = syncStatus({ last_success_ms: Date.now() - 5 * 60_000, ...status });
  flushSync();
}

const text = (testId: string) => screen.getByTestId(testId).textContent?.replace(/\s+/g, ' ').trim();

beforeEach(() => {
  resetState();
});

describe('StatusBar', () => {
  it('says it is starting until the engine first reports', () => {
    fakeIpc({});
    render(StatusBar);
    expect(text('sync-state')).toBe('Starting…');
    expect(screen.getByTestId('status-bar').dataset.state).toBe('starting');
  });

  it('shows up to date, nothing waiting and when it last synced', () => {
    fakeIpc({});
    render(StatusBar);
    report({});
    expect(text('sync-state')).toBe('Up to date');
    expect(text('pending-count')).toBe('Nothing waiting');
    expect(text('last-sync')).toBe('Last synced 5 min ago');
    expect(screen.queryByTestId('sync-progress')).toBeNull();
    expect(screen.queryByTestId('clock-skew')).toBeNull();
  });

  it('shows offline with what waits, and never synced on a new device', () => {
    fakeIpc({});
    render(StatusBar);
    report({ state: 'offline', pending: 1234, last_success_ms: null });
    expect(text('sync-state')).toBe('Offline: changes are kept on this device');
    expect(text('pending-count')).toBe('1,234 waiting to sync');
    expect(text('last-sync')).toBe('Never synced');
  });

  it('shows a progress bar on a long first sync', () => {
    fakeIpc({});
    render(StatusBar);
    report({ state: 'syncing', progress: { done: 2500, total: 10_000 }, last_success_ms: null });
    expect(text('sync-state')).toBe('Syncing…');
    const bar = screen.getByTestId('sync-progress');
    expect((bar.querySelector('progress') as HTMLProgressElement).value).toBe(25);
    expect(text('sync-progress')).toBe('2,500 of 10,000');

    report({ state: 'up_to_date', progress: null });
    expect(screen.queryByTestId('sync-progress')).toBeNull();
  });

  it('says how far the clock is off, and which way, when the server reported it', () => {
    fakeIpc({});
    render(StatusBar);
    report({ clock_skew_ms: 10 * 60_000 });
    expect(text('clock-skew')).toBe("This computer's clock is 10 min behind the server");
    report({ clock_skew_ms: -2 * 3_600_000 });
    expect(text('clock-skew')).toBe("This computer's clock is 2 h ahead of the server");
  });

  it('shows a sync error with its reason', () => {
    fakeIpc({});
    render(StatusBar);
    report({ state: 'error', last_error: 'the server answered 500: database is locked' });
    expect(text('sync-state')).toBe('Sync error');
    expect(screen.getByText('the server answered 500: database is locked')).toBeTruthy();
  });

  it('opens diagnostics from the refused count and conflicts from the conflict count', async () => {
    fakeIpc({});
    render(StatusBar);
    report({ failed: 2, conflicts: 1 });
    expect(text('failed-count')).toBe('2 refused');
    expect(text('conflict-count')).toBe('1 conflict');
    await fireEvent.click(screen.getByTestId('failed-count'));
    expect(ui.panel).toBe('diagnostics');
    await fireEvent.click(screen.getByTestId('conflict-count'));
    expect(ui.panel).toBe('conflicts');
  });

  it('"Sync now" asks the engine to sync, and is off while working offline or signed out', async () => {
    const ipc = fakeIpc({ sync_now: () => null });
    render(StatusBar);
    report({});
    const button = screen.getByTestId('sync-now') as HTMLButtonElement;
    await fireEvent.click(button);
    expect(ipc.sent('transfer_queue')).toEqual([{ cmd: 'sync_now', args: {} }]);

    report({ state: 'paused' });
    expect(button.disabled).toBe(true);
    expect(text('sync-state')).toBe('Working offline');
    report({ state: 'signed_out' });
    expect(button.disabled).toBe(true);
    expect(text('sync-state')).toBe('Not signed in: notes stay on this device');
  });

  it('"Work offline" sets the preference the engine pauses on, and shows when it is on', async () => {
    const ipc = fakeIpc({ set_pref: (args) => ({ key: args.key, value: args.value }) });
    render(StatusBar);
    report({});
    const toggle = screen.getByTestId('work-offline') as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    await fireEvent.click(toggle);
    expect(ipc.argsOf('set_pref')).toEqual([{ key: 'sync.work_offline', value: true }]);
    report({ state: 'paused' });
    expect(toggle.checked).toBe(true);
  });

  it('says why when "Sync now" fails', async () => {
    fakeIpc({
      sync_now: () => {
        throw appError('store_unavailable', 'the notes database is in use by another Outpost');
      },
    });
    render(StatusBar);
    report({});
    await fireEvent.click(screen.getByTestId('sync-now'));
    await waitFor(() => expect(ui.error).toBe('the notes database is in use by another Outpost'));
  });

  it('counts the attachments waiting to go up, and those that failed', async () => {
    fakeIpc({
      transfer_queue: () => ({
        queue: { bytes_to_upload: 4_100_000, uploads: 2, failed: 1, downloads: 0 },
        max_file_bytes: 268_435_456,
      }),
    });
    render(StatusBar);
    report({});
    await waitFor(() => expect(text('upload-queue')).toBe('2 attachments (4.1 MB) to upload'));
    await fireEvent.click(screen.getByTestId('failed-attachments'));
    expect(ui.panel).toBe('diagnostics');
  });
});
