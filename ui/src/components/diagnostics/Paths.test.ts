import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import Paths from './Paths.svelte';
import { fakeIpc } from '../../lib/testing';

const PATHS = { data_dir: '/home/ana/.local/share/outpost', log_dir: '/home/ana/.local/share/outpost/logs' };

describe('Diagnostics: files', () => {
  it('shows where the data and the logs are', async () => {
    const ipc = fakeIpc({ app_paths: () => PATHS });
    render(Paths);
    expect((await screen.findByTestId('path-data')).textContent).toBe(PATHS.data_dir);
    expect(screen.getByTestId('path-logs').textContent).toBe(PATHS.log_dir);
    expect(ipc.argsOf('app_paths')).toEqual([{}]);
  });

  it('says when there is no log folder', async () => {
    fakeIpc({ app_paths: () => ({ data_dir: '/data', log_dir: null }) });
    render(Paths);
    expect((await screen.findByTestId('path-logs-none')).textContent).toBe('No log folder on this system.');
  });
});
