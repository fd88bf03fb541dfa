import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import Doctor from './Doctor.svelte';
import type { DoctorReport } from '../../api';
import { ui } from '../../lib/state.svelte';
import { appError, deferred, fakeIpc, resetState } from '../../lib/testing';
import { diagnosis, NOTE_ID } from './fixtures';

beforeEach(() => {
  resetState();
  ui.panel = 'diagnostics';
});

describe('Diagnostics: sync doctor', () => {
  it('checks and reports agreement', async () => {
    const running = deferred<DoctorReport>();
    const ipc = fakeIpc({ run_doctor: () => running.promise });
    render(Doctor);
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
    expect(ipc.sent()).toEqual([{ cmd: 'run_doctor', args: { repair: false } }]);
  });

  it('lists differences in words, with counts and what was left out, then repairs', async () => {
    const found = diagnosis({
      device: { notes: 41, notes_in_trash: 1, notebooks: 3, prefs: 2, attachments: 0 },
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
      run_doctor: (args) =>
        args.repair ? repairing.promise : { diagnosis: found, repair: null, after: null },
    });
    render(Doctor);

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
    expect(ipc.sent()).toEqual([
      { cmd: 'run_doctor', args: { repair: false } },
      { cmd: 'run_doctor', args: { repair: true } },
    ]);
  });

  it('asks to sign in first', async () => {
    fakeIpc({
      run_doctor: () => {
        throw appError('not_signed_in', 'not signed in');
      },
    });
    render(Doctor);
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
      run_doctor: () => {
        throw error;
      },
    });
    render(Doctor);
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
