import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Pref } from '../api';
import { applyFontSize, applyPref, applyTheme, resolveTheme } from './appearance';

type Listener = () => void;

/** A matchMedia whose dark-mode answer the test controls, as the OS would switch it. */
function fakeDarkMode(initiallyDark: boolean) {
  const listeners = new Set<Listener>();
  const query = {
    matches: initiallyDark,
    media: '(prefers-color-scheme: dark)',
    addEventListener: (_type: string, listener: Listener) => listeners.add(listener),
    removeEventListener: (_type: string, listener: Listener) => listeners.delete(listener),
  };
  const matchMedia = vi.fn((media: string) => {
    expect(media).toBe('(prefers-color-scheme: dark)');
    return query as unknown as MediaQueryList;
  });
  vi.stubGlobal('matchMedia', matchMedia);
  return {
    listeners,
    switchTo(dark: boolean) {
      query.matches = dark;
      for (const listener of [...listeners]) listener();
    },
  };
}

afterEach(() => {
  applyTheme('light'); // drops any listener on the fake
  vi.unstubAllGlobals();
  delete document.documentElement.dataset.theme;
  document.documentElement.style.removeProperty('--font-size-editor');
});

describe('applyTheme', () => {
  it('sets light and dark as they are', () => {
    fakeDarkMode(true);
    applyTheme('light');
    expect(document.documentElement.dataset.theme).toBe('light');
    applyTheme('dark');
    expect(document.documentElement.dataset.theme).toBe('dark');
  });

  it('resolves system through prefers-color-scheme', () => {
    fakeDarkMode(true);
    applyTheme('system');
    expect(document.documentElement.dataset.theme).toBe('dark');
    fakeDarkMode(false);
    applyTheme('system');
    expect(document.documentElement.dataset.theme).toBe('light');
  });

  it('follows the OS while on system, and stops when a theme is chosen', () => {
    const os = fakeDarkMode(false);
    applyTheme('system');
    expect(document.documentElement.dataset.theme).toBe('light');
    os.switchTo(true);
    expect(document.documentElement.dataset.theme).toBe('dark');
    applyTheme('light');
    expect(os.listeners.size).toBe(0);
    os.switchTo(true);
    expect(document.documentElement.dataset.theme).toBe('light');
  });

  it('falls back to light where matchMedia is missing', () => {
    vi.stubGlobal('matchMedia', undefined);
    applyTheme('system');
    expect(document.documentElement.dataset.theme).toBe('light');
    expect(resolveTheme('nonsense')).toBe('light');
  });
});

describe('applyFontSize', () => {
  const size = () => document.documentElement.style.getPropertyValue('--font-size-editor');
  // As the core sends them with editor.font_size.
  const limits = { min: 8, max: 40 };

  it('sets --font-size-editor in px', () => {
    applyFontSize(18, limits);
    expect(size()).toBe('18px');
  });

  it('keeps the size within 8 to 40 and whole', () => {
    applyFontSize(2, limits);
    expect(size()).toBe('8px');
    applyFontSize(99, limits);
    expect(size()).toBe('40px');
    applyFontSize(15.6, limits);
    expect(size()).toBe('16px');
  });

  it('keeps within the limits it is given, not others', () => {
    applyFontSize(99, { min: 10, max: 60 });
    expect(size()).toBe('60px');
    applyFontSize(2, { min: 10, max: 60 });
    expect(size()).toBe('10px');
  });

  it('ignores what is not a number', () => {
    applyFontSize(20, limits);
    applyFontSize(Number.NaN, limits);
    expect(size()).toBe('20px');
  });
});

describe('applyPref', () => {
  const size = () => document.documentElement.style.getPropertyValue('--font-size-editor');
  const pref = (over: Partial<Pref>): Pref => ({
    key: 'editor.font_size',
    value: 18,
    scope: 'synced',
    is_default: false,
    help: '',
    limits: { kind: 'int', min: 8, max: 40 },
    ...over,
  });

  it('applies the theme and the font size, within the limits the preference carries', () => {
    applyPref(pref({ key: 'theme', value: 'dark', limits: { kind: 'one_of', options: ['system', 'light', 'dark'] } }));
    expect(document.documentElement.dataset.theme).toBe('dark');
    applyPref(pref({ value: 50, limits: { kind: 'int', min: 8, max: 48 } }));
    expect(size()).toBe('48px');
  });

  it('leaves the look alone for other preferences', () => {
    applyPref(pref({ value: 22 }));
    applyPref(pref({ key: 'sync.interval_secs', value: 60, scope: 'device' }));
    expect(size()).toBe('22px');
  });
});
