// Placeholder until the settings panel lands.
export function applyTheme(theme: string): void {
  const dark = theme === 'dark' || (theme === 'system' && window.matchMedia?.('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}
export function applyFontSize(px: number): void {
  document.documentElement.style.setProperty('--font-size-editor', `${px}px`);
}
