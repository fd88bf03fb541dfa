import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import Transfers from './Transfers.svelte';
import type { Attachment } from '../../api';
import { ui } from '../../lib/state.svelte';
import { fakeIpc, resetState } from '../../lib/testing';

const base = {
  note_id: '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b',
  media_type: 'image/jpeg',
  size: 8_000_000,
  sha256: 'ab'.repeat(32),
  width: null,
  height: null,
  thumbnail: null,
  deleted: false,
};
const LIST = [
  { ...base, id: 'a1', name: 'pump.jpg', state: 'uploading', sent: 2_000_000 },
  { ...base, id: 'a2', name: 'seal.jpg', state: 'synced' },
  { ...base, id: 'a3', name: 'video.mov', state: 'failed', reason: 'this blob needs 8 MB and the account has 1 MB left' },
  { ...base, id: 'a4', name: 'wall.jpg', state: 'not_downloaded', wanted: false },
] as Attachment[];

beforeEach(() => {
  resetState();
});

describe('Transfers', () => {
  it('lists only what is not where it should be, says why, and retries them all', async () => {
    const ipc = fakeIpc({ list_attachments: () => LIST, retry_transfers: () => 2 });
    render(Transfers);
    const rows = await screen.findAllByTestId('transfer-row');
    expect(ipc.argsOf('list_attachments')).toEqual([{ note_id: null }]);
    expect(rows.map((r) => r.textContent?.replace(/\s+/g, ' ').trim())).toEqual([
      'pump.jpg (8.0 MB): uploading: 2.0 MB of 8.0 MB on the server',
      'video.mov (8.0 MB): failed: this blob needs 8 MB and the account has 1 MB left',
    ]);
    expect(screen.getByTestId('transfers-heading').textContent?.trim()).toBe('Attachments waiting (2)');
    await fireEvent.click(screen.getByTestId('retry-transfers'));
    await waitFor(() => expect(ui.notice).toBe('Trying 2 files again'));
    expect(ipc.count('retry_transfers')).toBe(1);
  });

  it('says so when nothing waits', async () => {
    fakeIpc({ list_attachments: () => [LIST[1]] });
    render(Transfers);
    await screen.findByTestId('transfers-empty');
  });
});
