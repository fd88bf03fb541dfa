import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Settings from './Settings.svelte';
import type { AccountInfo, Pref } from '../api';
import { changes, sync, ui } from '../lib/state.svelte';
import { appError, deferred, fakeIpc, resetState, syncStatus } from '../lib/testing';

const SIGNED_OUT: AccountInfo = { signed_in: false, server_url: null, email: null };
const SIGNED_IN: AccountInfo = { signed_in: true, server_url: 'https://notes.example.org', email: 'ana@example.org' };

// As the core's registry lists them (crates/outpost-core/src/prefs.rs).
const PREFS: Pref[] = [
  { key: 'theme', value: 'system', scope: 'synced', is_default: true, help: 'colour theme' },
  { key: 'editor.font_size', value: 15, scope: 'synced', is_default: true, help: 'editor font size in points' },
  { key: 'editor.spellcheck', value: true, scope: 'synced', is_default: true, help: 'check spelling while typing' },
  {
    key: 'sync.interval_secs',
    value: 300,
    scope: 'device',
    is_default: true,
    help: 'seconds between background syncs when nothing else triggers one',
  },
  { key: 'sync.work_offline', value: false, scope: 'device', is_default: true, help: 'pause syncing on this device' },
];

const READS = ['account_info', 'list_prefs'];

/** set_pref as the core does it: the value checked, the pref returned with it. */
function setPrefLike(prefs: Pref[], refuse?: (key: string, value: unknown) => string | null) {
  return (args: Record<string, unknown>) => {
    const key = args.key as string;
    const reason = refuse?.(key, args.value);
    if (reason) throw appError('invalid_input', reason);
    const pref = prefs.find((p) => p.key === key);
    if (!pref) throw appError('invalid_input', `unknown preference "${key}"`);
    return { ...pref, value: args.value, is_default: false };
  };
}

function signedOut(extra: Record<string, (args: Record<string, unknown>) => unknown> = {}) {
  return fakeIpc({ account_info: () => SIGNED_OUT, list_prefs: () => PREFS, ...extra });
}

beforeEach(() => {
  resetState();
  ui.panel = 'settings';
});

afterEach(() => {
  delete document.documentElement.dataset.theme;
  document.documentElement.style.removeProperty('--font-size-editor');
});

describe('Settings: account', () => {
  it('signs in with the form, prefilled with the local server', async () => {
    const ipc = signedOut({ sign_in: () => SIGNED_IN });
    render(Settings);

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
    render(Settings);
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
      list_prefs: () => PREFS,
      sign_in: () => SIGNED_IN,
    });
    render(Settings);
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
    render(Settings);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Create account' }));
    await fireEvent.submit(screen.getByTestId('sign-in-form'));
    expect(ipc.sent(...READS)).toEqual([]);
  });

  it('disables the form while signing in', async () => {
    const pending = deferred<AccountInfo>();
    signedOut({ sign_in: () => pending.promise });
    render(Settings);
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
    render(Settings);
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
    render(Settings);
    await fireEvent.input(await screen.findByLabelText('Email'), { target: { value: 'ana@example.org' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect((await screen.findByTestId('sign-in-error')).textContent).toBe(
      'Cannot reach http://127.0.0.1:8787: cannot reach the server. Check the address and the connection.',
    );
  });

  it('signs out, keeping the server for next time', async () => {
    const ipc = fakeIpc({ account_info: () => SIGNED_IN, list_prefs: () => PREFS, sign_out: () => null });
    render(Settings);
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
      list_prefs: () => PREFS,
    });
    render(Settings);
    await waitFor(() => expect(ui.error).toBe('keyring unavailable'));
    fail = false;
    await fireEvent.click(await screen.findByTestId('account-retry'));
    expect(await screen.findByTestId('account-signed-in')).toBeTruthy();
  });

  it('reports a failed sign-out', async () => {
    fakeIpc({
      account_info: () => SIGNED_IN,
      list_prefs: () => PREFS,
      sign_out: () => {
        throw appError('offline', 'cannot reach the server');
      },
    });
    render(Settings);
    await fireEvent.click(await screen.findByRole('button', { name: 'Sign out' }));
    await waitFor(() => expect(ui.error).toBe('cannot reach the server'));
    expect(screen.getByTestId('account-signed-in')).toBeTruthy();
  });

  it('reads the account again when the engine finds itself signed out', async () => {
    let account = SIGNED_IN;
    const ipc = fakeIpc({ account_info: () => account, list_prefs: () => PREFS });
    render(Settings);
    await screen.findByTestId('account-signed-in');
    account = SIGNED_OUT;
    sync.status = syncStatus({ state: 'signed_out' });
    flushSync();
    await screen.findByTestId('sign-in-form');
    expect(ipc.count('account_info')).toBe(2);
  });
});

describe('Settings: preferences', () => {
  it('shows each with its value and whether it follows the account; not "work offline"', async () => {
    const ipc = signedOut();
    render(Settings);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;
    expect(ipc.argsOf('list_prefs')).toEqual([{}]);
    expect(themeSelect.value).toBe('system');
    expect((screen.getByLabelText('Editor font size') as HTMLInputElement).value).toBe('15');
    expect((screen.getByLabelText('Sync every') as HTMLInputElement).value).toBe('300');
    expect(screen.getByTestId('pref-sync-interval-hint').textContent).toContain('seconds (5 min)');
    expect((screen.getByLabelText('Check spelling while typing') as HTMLInputElement).checked).toBe(true);
    expect(screen.queryByText(/offline/i)).toBeNull();

    expect(screen.getByTestId('pref-theme-scope').textContent?.trim()).toBe('Follows your account');
    expect(screen.getByTestId('pref-font-size-scope').textContent?.trim()).toBe('Follows your account');
    expect(screen.getByTestId('pref-spellcheck-scope').textContent?.trim()).toBe('Follows your account');
    expect(screen.getByTestId('pref-sync-interval-scope').textContent?.trim()).toBe('This device only');
  });

  it('changes the theme and applies it', async () => {
    const ipc = signedOut({ set_pref: setPrefLike(PREFS) });
    render(Settings);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;

    await fireEvent.change(themeSelect, { target: { value: 'dark' } });

    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('dark'));
    expect(ipc.sent(...READS)).toEqual([{ cmd: 'set_pref', args: { key: 'theme', value: 'dark' } }]);
    expect(themeSelect.value).toBe('dark');
  });

  it('changes the font size and applies it', async () => {
    const ipc = signedOut({ set_pref: setPrefLike(PREFS) });
    render(Settings);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;

    await fireEvent.input(size, { target: { value: '18' } });
    await fireEvent.change(size);

    await waitFor(() =>
      expect(document.documentElement.style.getPropertyValue('--font-size-editor')).toBe('18px'),
    );
    expect(ipc.sent(...READS)).toEqual([{ cmd: 'set_pref', args: { key: 'editor.font_size', value: 18 } }]);
  });

  it("shows the core's reason when it refuses a value, and applies nothing", async () => {
    const reason = 'editor.font_size must be a whole number from 8 to 40, got 99';
    const ipc = signedOut({
      set_pref: setPrefLike(PREFS, (key, value) => (key === 'editor.font_size' && value === 99 ? reason : null)),
    });
    render(Settings);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;

    await fireEvent.input(size, { target: { value: '99' } });
    await fireEvent.change(size);

    const error = await screen.findByTestId('pref-font-size-error');
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent).toBe(reason);
    expect(size.getAttribute('aria-describedby')).toBe(error.id);
    expect(document.documentElement.style.getPropertyValue('--font-size-editor')).toBe('');
    expect(ipc.argsOf('set_pref')).toEqual([{ key: 'editor.font_size', value: 99 }]);

    // A good value clears the error.
    await fireEvent.input(size, { target: { value: '20' } });
    await fireEvent.change(size);
    await waitFor(() => expect(screen.queryByTestId('pref-font-size-error')).toBeNull());
  });

  it('asks for a number when the field is empty, without sending', async () => {
    const ipc = signedOut({ set_pref: setPrefLike(PREFS) });
    render(Settings);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;
    await fireEvent.input(size, { target: { value: '' } });
    await fireEvent.change(size);
    expect((await screen.findByTestId('pref-font-size-error')).textContent).toBe(
      'Enter a whole number from 8 to 40.',
    );
    expect(ipc.count('set_pref')).toBe(0);
  });

  it('sets the sync interval in seconds, shown in minutes too', async () => {
    const ipc = signedOut({ set_pref: setPrefLike(PREFS) });
    render(Settings);
    const every = (await screen.findByLabelText('Sync every')) as HTMLInputElement;

    await fireEvent.input(every, { target: { value: '90' } });
    expect(screen.getByTestId('pref-sync-interval-hint').textContent).toContain('seconds (1 min 30 s)');
    await fireEvent.change(every);

    await waitFor(() => expect(ipc.count('set_pref')).toBe(1));
    expect(ipc.argsOf('set_pref')).toEqual([{ key: 'sync.interval_secs', value: 90 }]);
  });

  it('turns spelling off, and back if the core refuses', async () => {
    let refuse = false;
    const ipc = signedOut({
      set_pref: setPrefLike(PREFS, () => (refuse ? 'store is read-only' : null)),
    });
    render(Settings);
    const box = (await screen.findByLabelText('Check spelling while typing')) as HTMLInputElement;

    await fireEvent.click(box);
    await waitFor(() => expect(ipc.count('set_pref')).toBe(1));
    expect(ipc.argsOf('set_pref')).toEqual([{ key: 'editor.spellcheck', value: false }]);
    await waitFor(() => expect(box.disabled).toBe(false));
    expect(box.checked).toBe(false);

    refuse = true;
    await fireEvent.click(box);
    expect((await screen.findByTestId('pref-spellcheck-error')).textContent).toBe('store is read-only');
    expect(box.checked).toBe(false);
    expect(ipc.argsOf('set_pref')[1]).toEqual({ key: 'editor.spellcheck', value: true });
  });

  it('puts the theme back when the core refuses it', async () => {
    signedOut({ set_pref: setPrefLike(PREFS, () => 'theme must be one of system, light, dark') });
    render(Settings);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;
    await fireEvent.change(themeSelect, { target: { value: 'dark' } });
    expect((await screen.findByTestId('pref-theme-error')).textContent).toBe(
      'theme must be one of system, light, dark',
    );
    expect(themeSelect.value).toBe('system');
    expect(document.documentElement.dataset.theme).toBeUndefined();
  });

  it('reads the preferences again when they change (e.g. from another device)', async () => {
    let prefs = PREFS;
    const ipc = fakeIpc({ account_info: () => SIGNED_OUT, list_prefs: () => prefs });
    render(Settings);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;
    prefs = PREFS.map((p) => (p.key === 'theme' ? { ...p, value: 'light', is_default: false } : p));
    changes.version += 1;
    flushSync();
    await waitFor(() => expect(themeSelect.value).toBe('light'));
    expect(ipc.count('list_prefs')).toBe(2);
  });

  it('reports a failed read and can try again', async () => {
    let fail = true;
    const ipc = fakeIpc({
      account_info: () => SIGNED_OUT,
      list_prefs: () => {
        if (fail) throw appError('store', 'database is locked');
        return PREFS;
      },
    });
    render(Settings);
    await waitFor(() => expect(ui.error).toBe('database is locked'));
    const prefs = within(screen.getByTestId('preferences'));
    expect(prefs.getByText(/could not be read/)).toBeTruthy();
    fail = false;
    await fireEvent.click(prefs.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByLabelText('Theme')).toBeTruthy();
    expect(ipc.count('list_prefs')).toBe(2);
  });
});
