import { beforeEach, describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import LastSync from './LastSync.svelte';
import { absoluteTime } from '../../lib/format';
import { sync } from '../../lib/state.svelte';
import { resetState, syncStatus as status } from '../../lib/testing';

beforeEach(() => {
  resetState();
});

describe('Diagnostics: last sync', () => {
  it('shows the last error, the next try and the last success', () => {
    const now = Date.now();
    sync.status = status({
      state: 'offline',
      last_error: 'cannot reach the server',
      next_retry_ms: now + 40_400,
      last_success_ms: now - 5 * 60_000,
    });
    render(LastSync, { now: Date.now() });
    expect(screen.getByTestId('diag-last-error').textContent).toBe('cannot reach the server');
    expect(screen.getByTestId('diag-next-retry').textContent?.trim()).toMatch(/^Next try in (40|39) s$/);
    const last = screen.getByTestId('diag-last-success');
    expect(last.textContent?.trim()).toBe('5 min ago');
    expect(within(last).getByText('5 min ago').getAttribute('title')).toBe(absoluteTime(now - 5 * 60_000));
  });

  it('says when it never synced and nothing failed', () => {
    sync.status = status({ state: 'signed_out' });
    render(LastSync, { now: Date.now() });
    expect(screen.getByTestId('diag-last-success').textContent?.trim()).toBe('Never');
    expect(screen.getByTestId('diag-last-error-none').textContent).toBe('None');
    expect(screen.queryByTestId('diag-next-retry')).toBeNull();
  });

  it('says it does not know yet before the engine reported', () => {
    render(LastSync, { now: Date.now() });
    expect(screen.getByTestId('diag-last-success').textContent?.trim()).toBe('Unknown yet');
  });

  it('follows the status as App updates it', () => {
    sync.status = status();
    render(LastSync, { now: Date.now() });
    expect(screen.queryByTestId('diag-last-error')).toBeNull();
    sync.status = status({ state: 'error', last_error: 'server error 500' });
    flushSync();
    expect(screen.getByTestId('diag-last-error').textContent).toBe('server error 500');
  });
});
