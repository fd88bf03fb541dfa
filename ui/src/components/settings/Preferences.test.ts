import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import Preferences from './Preferences.svelte';
import type { Pref } from '../../api';
import { changes, ui } from '../../lib/state.svelte';
import { appError, fakeIpc, PREFS, resetState } from '../../lib/testing';

const READS = ['list_prefs'];

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

function withPrefs(extra: Record<string, (args: Record<string, unknown>) => unknown> = {}) {
  return fakeIpc({ list_prefs: () => PREFS, ...extra });
}

beforeEach(() => {
  resetState();
  ui.panel = 'settings';
});

afterEach(() => {
  delete document.documentElement.dataset.theme;
  document.documentElement.style.removeProperty('--font-size-editor');
});

describe('Settings: preferences', () => {
  it('shows each with its value and whether it follows the account; not "work offline"', async () => {
    const ipc = withPrefs();
    render(Preferences);
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
    const ipc = withPrefs({ set_pref: setPrefLike(PREFS) });
    render(Preferences);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;

    await fireEvent.change(themeSelect, { target: { value: 'dark' } });

    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('dark'));
    expect(ipc.sent(...READS)).toEqual([{ cmd: 'set_pref', args: { key: 'theme', value: 'dark' } }]);
    expect(themeSelect.value).toBe('dark');
  });

  it('changes the font size and applies it', async () => {
    const ipc = withPrefs({ set_pref: setPrefLike(PREFS) });
    render(Preferences);
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
    const ipc = withPrefs({
      set_pref: setPrefLike(PREFS, (key, value) => (key === 'editor.font_size' && value === 99 ? reason : null)),
    });
    render(Preferences);
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
    const ipc = withPrefs({ set_pref: setPrefLike(PREFS) });
    render(Preferences);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;
    await fireEvent.input(size, { target: { value: '' } });
    await fireEvent.change(size);
    expect((await screen.findByTestId('pref-font-size-error')).textContent).toBe(
      'Enter a whole number from 8 to 40.',
    );
    expect(ipc.count('set_pref')).toBe(0);
  });

  it('sets the sync interval in seconds, shown in minutes too', async () => {
    const ipc = withPrefs({ set_pref: setPrefLike(PREFS) });
    render(Preferences);
    const every = (await screen.findByLabelText('Sync every')) as HTMLInputElement;

    await fireEvent.input(every, { target: { value: '90' } });
    expect(screen.getByTestId('pref-sync-interval-hint').textContent).toContain('seconds (1 min 30 s)');
    await fireEvent.change(every);

    await waitFor(() => expect(ipc.count('set_pref')).toBe(1));
    expect(ipc.argsOf('set_pref')).toEqual([{ key: 'sync.interval_secs', value: 90 }]);
  });

  it('turns spelling off, and back if the core refuses', async () => {
    let refuse = false;
    const ipc = withPrefs({
      set_pref: setPrefLike(PREFS, () => (refuse ? 'store is read-only' : null)),
    });
    render(Preferences);
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
    withPrefs({ set_pref: setPrefLike(PREFS, () => 'theme must be one of system, light, dark') });
    render(Preferences);
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
    const ipc = fakeIpc({ list_prefs: () => prefs });
    render(Preferences);
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
      list_prefs: () => {
        if (fail) throw appError('store', 'database is locked');
        return PREFS;
      },
    });
    render(Preferences);
    await waitFor(() => expect(ui.error).toBe('database is locked'));
    const prefs = within(screen.getByTestId('preferences'));
    expect(prefs.getByText(/could not be read/)).toBeTruthy();
    fail = false;
    await fireEvent.click(prefs.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByLabelText('Theme')).toBeTruthy();
    expect(ipc.count('list_prefs')).toBe(2);
  });
});

describe('Settings: preferences take their limits from the core', () => {
  /** PREFS with other limits (and values), as a newer core might send them. */
  function withLimits(over: Record<string, Partial<Pref>>): Pref[] {
    return PREFS.map((p) => ({ ...p, ...over[p.key] }));
  }

  it('bounds each number field as the core says, and says so when the field is empty', async () => {
    fakeIpc({
      list_prefs: () =>
        withLimits({
          'editor.font_size': { limits: { kind: 'int', min: 6, max: 72 } },
          'sync.interval_secs': { limits: { kind: 'int', min: 30, max: 3600 } },
        }),
    });
    render(Preferences);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;
    expect([size.min, size.max]).toEqual(['6', '72']);
    expect(screen.getByTestId('pref-font-size-hint').textContent?.trim()).toBe('px, 6 to 72');
    const every = screen.getByLabelText('Sync every') as HTMLInputElement;
    expect([every.min, every.max]).toEqual(['30', '3600']);

    await fireEvent.input(size, { target: { value: '' } });
    await fireEvent.change(size);
    expect((await screen.findByTestId('pref-font-size-error')).textContent).toBe('Enter a whole number from 6 to 72.');
    await fireEvent.input(every, { target: { value: '' } });
    await fireEvent.change(every);
    expect((await screen.findByTestId('pref-sync-interval-error')).textContent).toBe(
      'Enter a whole number of seconds from 30 to 3,600.',
    );
  });

  it('keeps the bounds of the registry as they are today', async () => {
    withPrefs();
    render(Preferences);
    const size = (await screen.findByLabelText('Editor font size')) as HTMLInputElement;
    expect([size.min, size.max]).toEqual(['8', '40']);
    expect(screen.getByTestId('pref-font-size-hint').textContent?.trim()).toBe('px, 8 to 40');
    const every = screen.getByLabelText('Sync every') as HTMLInputElement;
    expect([every.min, every.max]).toEqual(['15', '86400']);
  });

  it('offers the themes the core lists, in its order, named where the window knows them', async () => {
    fakeIpc({
      list_prefs: () =>
        withLimits({ theme: { value: 'dark', limits: { kind: 'one_of', options: ['system', 'dark', 'light', 'sepia'] } } }),
    });
    render(Preferences);
    const themeSelect = (await screen.findByLabelText('Theme')) as HTMLSelectElement;
    expect([...themeSelect.options].map((o) => [o.value, o.textContent])).toEqual([
      ['system', 'Same as the system'],
      ['dark', 'Dark'],
      ['light', 'Light'],
      ['sepia', 'sepia'],
    ]);
    expect(themeSelect.value).toBe('dark');
  });
});
