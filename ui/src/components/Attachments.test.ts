import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import Attachments from './Attachments.svelte';
import type { Attachment } from '../api';
import { appError, fakeIpc, resetState } from '../lib/testing';
import { ui } from '../lib/state.svelte';

const NOTE = '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b';
const THUMB = 'data:image/jpeg;base64,/9j/4AAQ';

function attachment(over: Partial<Attachment> & Pick<Attachment, 'state'>): Attachment {
  return {
    id: '0190a3c4-5b6d-7e8f-9a0b-00000000000' + Math.floor(Math.random() * 10),
    note_id: NOTE,
    name: 'pump.jpg',
    media_type: 'image/jpeg',
    size: 2_400_000,
    sha256: 'ab'.repeat(32),
    width: 4000,
    height: 3000,
    thumbnail: THUMB,
    deleted: false,
    ...over,
  } as Attachment;
}

beforeEach(() => {
  resetState();
});

describe('Attachments', () => {
  it('shows each with its thumbnail, size and where it stands', async () => {
    const list = [
      attachment({ id: 'a1', state: 'local_only' }),
      attachment({ id: 'a2', name: 'seal.jpg', state: 'uploading', sent: 600_000 } as Partial<Attachment> & Pick<Attachment, 'state'>),
      attachment({ id: 'a3', name: 'report.pdf', media_type: 'application/pdf', thumbnail: null, state: 'synced' }),
      attachment({ id: 'a4', name: 'wall.jpg', state: 'not_downloaded', wanted: false } as Partial<Attachment> & Pick<Attachment, 'state'>),
      attachment({ id: 'a5', name: 'big.mov', state: 'failed', reason: 'this blob needs 300 MB and the account has 12 MB left' } as Partial<Attachment> & Pick<Attachment, 'state'>),
    ];
    const ipc = fakeIpc({ list_attachments: () => list });
    render(Attachments, { noteId: NOTE });
    const items = await screen.findAllByTestId('attachment');
    const item = (i: number) => items[i] as HTMLElement;
    expect(ipc.argsOf('list_attachments')[0]).toEqual({ note_id: NOTE });
    const states = items.map((li) => within(li).getByTestId('attachment-state').textContent);
    expect(states).toEqual([
      'On this device only',
      'Uploading 25%',
      'Synced',
      'Not downloaded',
      'Failed: this blob needs 300 MB and the account has 12 MB left',
    ]);
    expect(within(item(0)).getByTestId('attachment-thumbnail').getAttribute('src')).toBe(THUMB);
    expect(within(item(2)).queryByTestId('attachment-thumbnail')).toBeNull();
    expect(item(0).textContent).toContain('2.4 MB');
    // Not here yet: the button says it downloads; a failed one offers Retry.
    expect(within(item(3)).getByTestId('open-attachment').textContent?.trim()).toBe('Download');
    expect(within(item(4)).getByTestId('retry-attachment')).toBeTruthy();
  });

  it('asks before removing, and opening one not downloaded asks for it', async () => {
    const a = attachment({ id: 'a1', state: 'not_downloaded', wanted: false } as Partial<Attachment> & Pick<Attachment, 'state'>);
    const ipc = fakeIpc({
      list_attachments: () => [a],
      remove_attachment: () => null,
      open_attachment: () => ({ outcome: 'downloading' }),
    });
    render(Attachments, { noteId: NOTE });
    await fireEvent.click(await screen.findByTestId('open-attachment'));
    await waitFor(() => expect(ipc.argsOf('open_attachment')).toEqual([{ id: 'a1' }]));
    await waitFor(() => expect(ui.notice).toBe('Downloading pump.jpg…'));
    await fireEvent.click(screen.getByTestId('remove-attachment'));
    expect(ipc.count('remove_attachment')).toBe(0);
    await fireEvent.click(screen.getByTestId('confirm-remove-attachment'));
    await waitFor(() => expect(ipc.argsOf('remove_attachment')).toEqual([{ id: 'a1' }]));
  });

  it('says why a removal failed', async () => {
    fakeIpc({
      list_attachments: () => [attachment({ id: 'a1', state: 'synced' })],
      remove_attachment: () => {
        throw appError('disk_full', 'the disk holding /data is full; nothing was saved');
      },
    });
    render(Attachments, { noteId: NOTE });
    await fireEvent.click(await screen.findByTestId('remove-attachment'));
    await fireEvent.click(screen.getByTestId('confirm-remove-attachment'));
    await waitFor(() => expect(ui.error).toBe('the disk holding /data is full; nothing was saved'));
  });

  it('shows nothing for a note without attachments', async () => {
    const ipc = fakeIpc({ list_attachments: () => [] });
    render(Attachments, { noteId: NOTE });
    await waitFor(() => expect(ipc.count('list_attachments')).toBe(1));
    expect(screen.queryByTestId('attachments')).toBeNull();
  });
});
