import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Diagnostics from './Diagnostics.svelte';
import type { Diagnosis, DoctorReport, OutboxEntry, SyncErrorEntry } from '../api';
import { changes, sync, ui } from '../lib/state.svelte';
import { absoluteTime } from '../lib/format';
import { appError, deferred, fakeIpc, resetState, syncStatus } from '../lib/testing';

const NOTE_ID = '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b';
const PATHS = { data_dir: '/home/ana/.local/share/outpost', log_dir: '/home/ana/.local/share/outpost/logs' };

function entry(over: Partial<OutboxEntry>): OutboxEntry {
  return {
    seq: 1,
    mutation_id: '0190a3c4-0000-7000-8000-000000000001',
    mutation_number: 1,
    name: 'note.put',
    schema_version: 1,
    entity: 'note',
    entity_id: NOTE_ID,
    fields: {
      title: { value: 'Pump', stamp: 's1' },
      body: { value: 'text', stamp: 's1' },
    },
    base_version: 3,
    created_ms: Date.now() - 3 * 60_000,
    updated_ms: Date.now() - 3 * 60_000,
    attempts: 2,
    last_error: 'cannot reach the server',
    state: 'queued',
    sent: false,
    ...over,
  };
}

const QUEUED = entry({});
const SENT = entry({
  seq: 2,
  mutation_id: '0190a3c4-0000-7000-8000-000000000002',
  entity: 'notebook',
  entity_id: '0190a3c4-5b6d-7e8f-9a0b-bbbbbbbbbbbb',
  name: 'notebook.put',
  fields: { name: { value: 'Work', stamp: 's2' } },
  attempts: 1,
  last_error: null,
  sent: true,
});
const REFUSED = entry({
  seq: 3,
  mutation_id: '0190a3c4-0000-7000-8000-000000000003',
  fields: { title: { value: '', stamp: 's3' } },
  last_error: 'title must not be empty',
  state: 'failed',
  sent: true,
});

const status = syncStatus;

function diagnosis(over: Partial<Diagnosis> = {}): Diagnosis {
  const counts = { notes: 42, notes_in_trash: 1, notebooks: 3, prefs: 2 };
  return {
    server_cursor: 10,
    device_cursor: 10,
    server: counts,
    device: counts,
    buckets_differing: 0,
    pending: 0,
    differences: [],
    ...over,
  };
}

const READS = ['list_outbox', 'list_dead_letters', 'app_paths', 'list_sync_errors'];

function reads(outbox: OutboxEntry[] = [], dead: OutboxEntry[] = [], errors: SyncErrorEntry[] = []) {
  return {
    list_outbox: () => outbox,
    list_dead_letters: () => dead,
    app_paths: () => PATHS,
    list_sync_errors: () => errors,
  };
}

beforeEach(() => {
  resetState();
  ui.panel = 'diagnostics';
});

describe('Diagnostics: outbox', () => {
  it('shows what waits, with a count, fields, times, attempts, errors and whether sent', async () => {
    const ipc = fakeIpc(reads([QUEUED, SENT, REFUSED], [REFUSED]));
    render(Diagnostics);

    const rows = await screen.findAllByTestId('outbox-row');
    expect(ipc.argsOf('list_outbox')).toEqual([{ limit: 500 }]);
    expect(ipc.argsOf('list_dead_letters')).toEqual([{}]);
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

  it('says when nothing waits', async () => {
    fakeIpc(reads());
    render(Diagnostics);
    expect((await screen.findByTestId('outbox-empty')).textContent?.trim()).toBe(
      'Nothing waiting: every change on this device is on the server.',
    );
    expect(screen.getByTestId('outbox-heading').textContent?.trim()).toBe('Waiting to sync (0)');
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
});

describe('Diagnostics: refused changes', () => {
  it('lists them with the reason', async () => {
    fakeIpc(reads([REFUSED], [REFUSED]));
    render(Diagnostics);
    const letter = await screen.findByTestId('dead-letter');
    expect(letter.dataset.mutationId).toBe(REFUSED.mutation_id);
    expect(within(letter).getByTestId('dead-letter-reason').textContent?.trim()).toBe('title must not be empty');
    expect(screen.getByTestId('dead-letters-heading').textContent?.trim()).toBe('Refused by the server (1)');
  });

  it('retries one', async () => {
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

  it('opens the note to edit it', async () => {
    const ipc = fakeIpc(reads([], [REFUSED]));
    render(Diagnostics);
    await fireEvent.click(await screen.findByRole('button', { name: 'Edit' }));
    expect(ui.selectedId).toBe(NOTE_ID);
    expect(ui.panel).toBe('notes');
    expect(ipc.sent(...READS)).toEqual([]);
  });

  it('offers Edit only for notes', async () => {
    fakeIpc(reads([], [{ ...SENT, state: 'failed', last_error: 'name taken' }]));
    render(Diagnostics);
    await screen.findByTestId('dead-letter');
    expect(screen.queryByRole('button', { name: 'Edit' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Retry' })).toBeTruthy();
  });

  it('discards one only after a yes on the page', async () => {
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
    const confirm = screen.getByRole('alertdialog', { name: 'Discard this change?' });
    expect(confirm.textContent).toContain("The note's title goes back to the server's version.");
    expect(ipc.sent(...READS)).toEqual([]);

    await fireEvent.click(within(confirm).getByRole('button', { name: 'Keep it' }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(ipc.sent(...READS)).toEqual([]);

    await fireEvent.click(screen.getByRole('button', { name: 'Discard' }));
    await fireEvent.click(screen.getByTestId('dead-letter-confirm-discard'));

    expect(await screen.findByTestId('dead-letters-empty')).toBeTruthy();
    expect(ipc.sent(...READS)).toEqual([
      { cmd: 'discard_dead_letter', args: { mutation_id: REFUSED.mutation_id } },
    ]);
    expect(ui.notice).toBe('Change discarded: Note 1c2d3e4f5a6b');
  });

  it('shows why a retry failed and keeps the entry', async () => {
    fakeIpc({
      ...reads([], [REFUSED]),
      retry_dead_letter: () => {
        throw appError('not_found', 'no dead letter 0190a3c4');
      },
    });
    render(Diagnostics);
    await fireEvent.click(await screen.findByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(ui.error).toBe('no dead letter 0190a3c4'));
    expect(screen.getByTestId('dead-letter')).toBeTruthy();
    expect((screen.getByRole('button', { name: 'Retry' }) as HTMLButtonElement).disabled).toBe(false);
  });
});

describe('Diagnostics: last sync', () => {
  it('shows the last error, the next try and the last success', async () => {
    fakeIpc(reads());
    const now = Date.now();
    sync.status = status({
      state: 'offline',
      last_error: 'cannot reach the server',
      next_retry_ms: now + 40_400,
      last_success_ms: now - 5 * 60_000,
    });
    render(Diagnostics);
    expect(screen.getByTestId('diag-last-error').textContent).toBe('cannot reach the server');
    expect(screen.getByTestId('diag-next-retry').textContent?.trim()).toMatch(/^Next try in (40|39) s$/);
    const last = screen.getByTestId('diag-last-success');
    expect(last.textContent?.trim()).toBe('5 min ago');
    expect(within(last).getByText('5 min ago').getAttribute('title')).toBe(absoluteTime(now - 5 * 60_000));
    await screen.findByTestId('outbox-empty');
  });

  it('says when it never synced and nothing failed', async () => {
    fakeIpc(reads());
    sync.status = status({ state: 'signed_out' });
    render(Diagnostics);
    expect(screen.getByTestId('diag-last-success').textContent?.trim()).toBe('Never');
    expect(screen.getByTestId('diag-last-error-none').textContent).toBe('None');
    expect(screen.queryByTestId('diag-next-retry')).toBeNull();
    await screen.findByTestId('outbox-empty');
  });

  it('lists the recent errors, newest first, a repeated one once with its count', async () => {
    const now = Date.now();
    const night: SyncErrorEntry = {
      message: 'cannot reach the server',
      count: 214,
      first_ms: now - 9 * 3_600_000,
      last_ms: now - 2 * 60_000,
    };
    const once: SyncErrorEntry = { message: 'server error 500', count: 1, first_ms: now - 10 * 3_600_000, last_ms: now - 10 * 3_600_000 };
    const ipc = fakeIpc(reads([], [], [night, once]));
    sync.status = status({ state: 'offline', last_error: 'cannot reach the server' });
    render(Diagnostics);
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
    const ipc = fakeIpc({ ...reads(), list_sync_errors: () => errors });
    sync.status = status();
    render(Diagnostics);
    expect((await screen.findByTestId('sync-errors-empty')).textContent).toBe('No sync has failed on this device.');
    errors = [{ message: 'server error 500', count: 1, first_ms: Date.now(), last_ms: Date.now() }];
    sync.status = status({ state: 'error', last_error: 'server error 500' });
    flushSync();
    await waitFor(() => expect(screen.getAllByTestId('sync-error')).toHaveLength(1));
    expect(ipc.count('list_sync_errors')).toBe(2);
  });

  it('follows the status as App updates it', async () => {
    fakeIpc(reads());
    sync.status = status();
    render(Diagnostics);
    expect(screen.queryByTestId('diag-last-error')).toBeNull();
    sync.status = status({ state: 'error', last_error: 'server error 500' });
    flushSync();
    expect(screen.getByTestId('diag-last-error').textContent).toBe('server error 500');
    await screen.findByTestId('outbox-empty');
  });
});

describe('Diagnostics: sync doctor', () => {
  it('checks and reports agreement', async () => {
    const running = deferred<DoctorReport>();
    const ipc = fakeIpc({ ...reads(), run_doctor: () => running.promise });
    render(Diagnostics);
    const repair = screen.getByRole('button', { name: 'Repair' }) as HTMLButtonElement;
    expect(repair.disabled).toBe(true);

    await fireEvent.click(screen.getByRole('button', { name: 'Check with server' }));
    expect(screen.getByTestId('doctor-running').textContent?.trim()).toBe('Checking with the server…');
    expect((screen.getByTestId('doctor-check') as HTMLButtonElement).disabled).toBe(true);

    running.resolve({ diagnosis: diagnosis(), repair: null, after: null });
    const agrees = await screen.findByTestId('doctor-check-result-agrees');
    expect(agrees.textContent?.trim()).toBe('This device and the server agree on all 42 notes.');
    expect(screen.queryByTestId('doctor-running')).toBeNull();
    expect(repair.disabled).toBe(true);
    expect(ipc.sent(...READS)).toEqual([{ cmd: 'run_doctor', args: { repair: false } }]);
  });

  it('lists differences in words, with counts and what was left out, then repairs', async () => {
    const found = diagnosis({
      device: { notes: 41, notes_in_trash: 1, notebooks: 3, prefs: 2 },
      pending: 2,
      differences: [
        { entity: 'note', id: NOTE_ID, title: null, problem: 'missing_on_device', device_version: null, server_version: 4 },
        { entity: 'note', id: 'n2', title: 'Bridge inspection', problem: 'missing_on_server', device_version: 2, server_version: null },
        { entity: 'note', id: 'n3', title: 'Old log', problem: 'purged_on_server', device_version: 5, server_version: null },
        { entity: 'notebook', id: 'b1', title: 'Work', problem: 'differs', device_version: 1, server_version: 2 },
      ],
    });
    const repairing = deferred<DoctorReport>();
    const ipc = fakeIpc({
      ...reads(),
      run_doctor: (args) =>
        args.repair ? repairing.promise : { diagnosis: found, repair: null, after: null },
    });
    render(Diagnostics);

    await fireEvent.click(screen.getByRole('button', { name: 'Check with server' }));
    const items = await screen.findAllByTestId('doctor-difference');
    expect(items.map((i) => i.textContent?.replace(/\s+/g, ' ').trim())).toEqual([
      '1c2d3e4f5a6b: missing on this device (this device none, server v4)',
      '“Bridge inspection”: missing on the server (this device v2, server none)',
      '“Old log”: deleted for good on the server (this device v5, server none)',
      'Notebook “Work”: different here and on the server (this device v1, server v2)',
    ]);
    expect(screen.getByTestId('doctor-check-result-summary').textContent).toContain('4 differences');
    expect(screen.getByTestId('doctor-check-result-pending').textContent).toContain('2 records');
    const counts = within(screen.getByTestId('doctor-check-result-counts'));
    const notesRow = counts.getByRole('row', { name: /^Notes/ });
    expect(within(notesRow).getAllByRole('cell').map((c) => c.textContent)).toEqual(['41', '42']);

    const repair = screen.getByRole('button', { name: 'Repair' }) as HTMLButtonElement;
    expect(repair.disabled).toBe(false);
    await fireEvent.click(repair);
    expect(screen.getByTestId('doctor-running').textContent?.trim()).toBe('Repairing, then checking again…');
    expect(repair.disabled).toBe(true);
    repairing.resolve({
      diagnosis: found,
      repair: { rewritten: 2, removed: 1, requeued: 1, skipped: 0 },
      after: diagnosis(),
    });

    const did = await screen.findByTestId('doctor-repair-result');
    expect(within(did).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      "2 records rewritten from the server's copy",
      '1 record removed (deleted for good on the server)',
      '1 record only this device had, sent again',
      '0 records left alone (changed here meanwhile)',
    ]);
    expect(screen.getByTestId('doctor-after-result-agrees').textContent?.trim()).toBe(
      'This device and the server agree on all 42 notes.',
    );
    // The re-check agrees: nothing left to repair.
    expect(repair.disabled).toBe(true);
    expect(ipc.sent(...READS)).toEqual([
      { cmd: 'run_doctor', args: { repair: false } },
      { cmd: 'run_doctor', args: { repair: true } },
    ]);
  });

  it('asks to sign in first', async () => {
    fakeIpc({
      ...reads(),
      run_doctor: () => {
        throw appError('not_signed_in', 'not signed in');
      },
    });
    render(Diagnostics);
    await fireEvent.click(screen.getByRole('button', { name: 'Check with server' }));
    const error = await screen.findByTestId('doctor-error');
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent).toContain('Sign in first (Settings).');
    await fireEvent.click(within(error).getByRole('button', { name: 'Open Settings' }));
    expect(ui.panel).toBe('settings');
  });

  it('says when the server cannot be reached, and other errors as they come', async () => {
    let error = appError('offline', 'cannot reach the server');
    fakeIpc({
      ...reads(),
      run_doctor: () => {
        throw error;
      },
    });
    render(Diagnostics);
    await fireEvent.click(screen.getByRole('button', { name: 'Check with server' }));
    expect((await screen.findByTestId('doctor-error')).textContent?.trim()).toBe(
      'The server cannot be reached; check again when online.',
    );
    expect(screen.queryByRole('button', { name: 'Open Settings' })).toBeNull();

    error = appError('server_error', 'the server failed: 500');
    await fireEvent.click(screen.getByRole('button', { name: 'Check with server' }));
    await waitFor(() =>
      expect(screen.getByTestId('doctor-error').textContent?.trim()).toBe('the server failed: 500'),
    );
  });
});

describe('Diagnostics: files', () => {
  it('shows where the data and the logs are', async () => {
    const ipc = fakeIpc(reads());
    render(Diagnostics);
    expect((await screen.findByTestId('path-data')).textContent).toBe(PATHS.data_dir);
    expect(screen.getByTestId('path-logs').textContent).toBe(PATHS.log_dir);
    expect(ipc.argsOf('app_paths')).toEqual([{}]);
  });

  it('says when there is no log folder', async () => {
    fakeIpc({ ...reads(), app_paths: () => ({ data_dir: '/data', log_dir: null }) });
    render(Diagnostics);
    expect((await screen.findByTestId('path-logs-none')).textContent).toBe('No log folder on this system.');
  });
});
