import { beforeEach, describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import Settings from './Settings.svelte';
import type { AccountInfo } from '../api';
import { ui } from '../lib/state.svelte';
import { fakeIpc, PREFS, resetState } from '../lib/testing';

// Each section has its own tests beside it (settings/*.test.ts, MarkdownFiles.test.ts).

const SIGNED_OUT: AccountInfo = { signed_in: false, server_url: null, email: null };

beforeEach(() => {
  resetState();
  ui.panel = 'settings';
});

describe('Settings', () => {
  it('shows the account, the preferences and the Markdown files, in that order', async () => {
    fakeIpc({ account_info: () => SIGNED_OUT, list_prefs: () => PREFS });
    render(Settings);
    const panel = screen.getByTestId('settings-panel');
    expect(within(panel).getByRole('heading', { level: 2 }).textContent).toBe('Settings');
    await screen.findByTestId('sign-in-form');
    await screen.findByLabelText('Theme');
    const sections = [...panel.querySelectorAll('section')].map((s) => s.dataset.testid);
    expect(sections).toEqual(['account', 'preferences', 'markdown-files']);
    expect(screen.getByRole('region', { name: 'Account' })).toBeTruthy();
    expect(screen.getByRole('region', { name: 'Preferences' })).toBeTruthy();
  });
});
