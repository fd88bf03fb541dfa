// The window's look from the preferences: the colour theme (data-theme on <html>, which
// style.css switches on) and the editor's font size (--font-size-editor). App calls these at
// start-up, Settings whenever the preference changes.
import type { Pref } from '../api';

export type Theme = 'system' | 'light' | 'dark';

const DARK_QUERY = '(prefers-color-scheme: dark)';

let systemQuery: MediaQueryList | null = null;
let followSystem: (() => void) | null = null;

function darkQuery(): MediaQueryList | null {
  return typeof window !== 'undefined' && typeof window.matchMedia === 'function'
    ? window.matchMedia(DARK_QUERY)
    : null;
}

/** 'light' or 'dark': the theme itself, or for 'system' (and anything unknown) the OS's. */
export function resolveTheme(theme: string): 'light' | 'dark' {
  if (theme === 'light' || theme === 'dark') return theme;
  return darkQuery()?.matches ? 'dark' : 'light';
}

/**
 * Sets `data-theme` on <html>. With 'system' the window also follows the OS when it switches
 * between light and dark while the app runs.
 */
export function applyTheme(theme: string): void {
  const root = document.documentElement;
  if (followSystem && systemQuery) {
    systemQuery.removeEventListener('change', followSystem);
  }
  followSystem = null;
  systemQuery = null;
  root.dataset.theme = resolveTheme(theme);
  if (theme !== 'light' && theme !== 'dark') {
    const query = darkQuery();
    if (query && typeof query.addEventListener === 'function') {
      followSystem = () => {
        root.dataset.theme = query.matches ? 'dark' : 'light';
      };
      systemQuery = query;
      query.addEventListener('change', followSystem);
    }
  }
}

/**
 * Sets --font-size-editor in px, kept within the preference's limits (as the core sends them);
 * a value that is not a number is ignored.
 */
export function applyFontSize(px: number, limits: { min: number; max: number }): void {
  if (!Number.isFinite(px)) return;
  const size = Math.min(limits.max, Math.max(limits.min, Math.round(px)));
  document.documentElement.style.setProperty('--font-size-editor', `${size}px`);
}

/** Applies the look `pref` sets, if it sets one (the theme, the editor's font size). */
export function applyPref(pref: Pref): void {
  if (pref.key === 'theme') {
    applyTheme(typeof pref.value === 'string' ? pref.value : 'system');
  } else if (pref.key === 'editor.font_size' && typeof pref.value === 'number' && pref.limits.kind === 'int') {
    applyFontSize(pref.value, pref.limits);
  }
}
