import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Account from './Account.svelte';
import type { AccountInfo } from '../../api';
import { sync, ui } from '../../lib/state.svelte';
import { appError, deferred, fakeIpc, resetState, syncStatus } from '../../lib/testing';

const SIGNED_OUT: AccountInfo = { signed_in: false, server_url: null, email: null };
const SIGNED_IN: AccountInfo = { signed_in: true, server_url: 'https://notes.example.org', email: 'ana@example.org' };

const READS = ['account_info'];

function signedOut(extra: Record<string, (args: Record<string, unknown>) => unknown> = {}) {
  return fakeIpc({ account_info: () => SIGNED_OUT, ...extra });
}

beforeEach(() => {
  resetState();
  ui.panel = 'settings';
});

describe('Settings: account', () => {
  it('signs in with the form, prefilled with the local server', async () => {
    const ipc = signedOut({ sign_in: () => SIGNED_IN });
    render(Account);

    const server = (await screen.findByLabelText('Server')) as HTMLInputElement;
    expect(server.value).toBe('http://127.0.0.1:8787');
    await fireEvent.input(server, { target: { value: 'https://notes.example.org' } });
    await fireEvent.input(screen.getByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));

    const done = await screen.findByTestId('account-signed-in');
    expect(done.textContent?.replace(/\s+/g, ' ').trim()).toBe(
      'Signed in to https://notes.example.org as ana@example.org',
    );
    expect(ipc.sent(...READS)).toEqual([
      {
        cmd: 'sign_in',
        args: {
          server_url: 'https://notes.example.org',
          email: 'ana@example.org',
          password: 'correct horse',
          new_account: false,
        },
      },
    ]);
    expect(ui.notice).toBe('Signed in as ana@example.org');
    expect(screen.queryByLabelText('Password')).toBeNull();
  });

  it('creates an account', async () => {
    const ipc = signedOut({ sign_in: () => SIGNED_IN });
    render(Account);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Create account' }));

    await screen.findByTestId('account-signed-in');
    expect(ipc.argsOf('sign_in')).toEqual([
      {
        server_url: 'http://127.0.0.1:8787',
        email: 'ana@example.org',
        password: 'correct horse',
        new_account: true,
      },
    ]);
    expect(ui.notice).toBe('Account created: ana@example.org');
  });

  it('offers the server the app was started with (scripts/run-app starts a local one)', async () => {
    const ipc = fakeIpc({
      account_info: () => ({ ...SIGNED_OUT, server_url: 'http://127.0.0.1:41234' }),
      sign_in: () => SIGNED_IN,
    });
    render(Account);
    const server = (await screen.findByLabelText('Server')) as HTMLInputElement;
    await waitFor(() => expect(server.value).toBe('http://127.0.0.1:41234'));
    await fireEvent.input(screen.getByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'correct horse' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Create account' }));
    await screen.findByTestId('account-signed-in');
    expect(ipc.argsOf('sign_in')[0]?.server_url).toBe('http://127.0.0.1:41234');
  });

  it('sends nothing while a field is missing', async () => {
    const ipc = signedOut({ sign_in: () => SIGNED_IN });
    render(Account);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Create account' }));
    await fireEvent.submit(screen.getByTestId('sign-in-form'));
    expect(ipc.sent(...READS)).toEqual([]);
  });

  it('disables the form while signing in', async () => {
    const pending = deferred<AccountInfo>();
    signedOut({ sign_in: () => pending.promise });
    render(Account);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));

    expect(screen.getByTestId('sign-in').textContent?.trim()).toBe('Signing in…');
    for (const id of ['sign-in', 'create-account', 'sign-in-server', 'sign-in-email', 'sign-in-password']) {
      expect((screen.getByTestId(id) as HTMLInputElement).disabled).toBe(true);
    }
    pending.resolve(SIGNED_IN);
    await screen.findByTestId('account-signed-in');
  });

  it("shows the server's reason under the form and forgets the password", async () => {
    signedOut({
      sign_in: () => {
        throw appError('bad_credentials', 'wrong email or password');
      },
    });
    render(Account);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    const password = screen.getByLabelText('Password') as HTMLInputElement;
    await fireEvent.input(password, { target: { value: 'wrong' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));

    const error = await screen.findByRole('alert');
    expect(error.dataset.testid).toBe('sign-in-error');
    expect(error.textContent).toBe('wrong email or password');
    expect(password.value).toBe('');
    expect((screen.getByLabelText('Email') as HTMLInputElement).value).toBe('ana@example.org');
    expect((screen.getByTestId('sign-in') as HTMLButtonElement).disabled).toBe(false);
  });

  it('says when the server cannot be reached', async () => {
    signedOut({
      sign_in: () => {
        throw appError('offline', 'cannot reach the server');
      },
    });
    render(Account);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect((await screen.findByTestId('sign-in-error')).textContent).toBe(
      'Cannot reach http://127.0.0.1:8787: cannot reach the server. Check the address and the connection.',
    );
  });

  it('signs out, keeping the server for next time', async () => {
    const ipc = fakeIpc({ account_info: () => SIGNED_IN, sign_out: () => null });
    render(Account);
    expect((await screen.findByTestId('account-signed-in')).textContent).toContain('ana@example.org');
    expect(screen.getByText(/keeps your notes on this device/)).toBeTruthy();

    await fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));

    const server = (await screen.findByLabelText('Server')) as HTMLInputElement;
    expect(server.value).toBe('https://notes.example.org');
    expect(ipc.sent(...READS)).toEqual([{ cmd: 'sign_out', args: {} }]);
    expect(ui.notice).toBe('Signed out. Your notes stay on this device.');
  });

  it('reports a failed account read and can try again', async () => {
    let fail = true;
    fakeIpc({
      account_info: () => {
        if (fail) throw appError('internal', 'keyring unavailable');
        return SIGNED_IN;
      },
    });
    render(Account);
    await waitFor(() => expect(ui.error).toBe('keyring unavailable'));
    fail = false;
    await fireEvent.click(await screen.findByTestId('account-retry'));
    expect(await screen.findByTestId('account-signed-in')).toBeTruthy();
  });

  it('reports a failed sign-out', async () => {
    fakeIpc({
      account_info: () => SIGNED_IN,
      sign_out: () => {
        throw appError('offline', 'cannot reach the server');
      },
    });
    render(Account);
    await fireEvent.click(await screen.findByRole('button', { name: 'Sign out' }));
    await waitFor(() => expect(ui.error).toBe('cannot reach the server'));
    expect(screen.getByTestId('account-signed-in')).toBeTruthy();
  });

  it('reads the account again when the engine finds itself signed out', async () => {
    let account = SIGNED_IN;
    const ipc = fakeIpc({ account_info: () => account });
    render(Account);
    await screen.findByTestId('account-signed-in');
    account = SIGNED_OUT;
    sync.status = syncStatus({ state: 'signed_out' });
    flushSync();
    await screen.findByTestId('sign-in-form');
    expect(ipc.count('account_info')).toBe(2);
  });
});
