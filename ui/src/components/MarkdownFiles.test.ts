import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { fakeIpc } from '../lib/testing';
import MarkdownFiles from './MarkdownFiles.svelte';

describe('Markdown files', () => {
  it('exports to the picked folder and says how many notes went', async () => {
    const ipc = fakeIpc({ export_markdown: () => ({ dir: '/home/ann/notes', notes: 12, notebooks: 2 }) });
    render(MarkdownFiles);
    await fireEvent.click(screen.getByTestId('export-markdown'));
    expect((await screen.findByTestId('markdown-result')).textContent).toContain('Exported 12 notes to /home/ann/notes');
    expect(ipc.calls.map((c) => c.cmd)).toEqual(['export_markdown']);
  });

  it('lists the files an import skipped, with the reason', async () => {
    fakeIpc({
      import_markdown: () => ({ imported: 3, skipped: [{ path: 'big.md', reason: 'larger than 10 MB' }] }),
    });
    render(MarkdownFiles);
    await fireEvent.click(screen.getByTestId('import-markdown'));
    expect((await screen.findByTestId('markdown-result')).textContent).toContain('Imported 3 notes');
    expect(screen.getByText(/larger than 10 MB/)).toBeTruthy();
  });

  it('says nothing when the folder picker is closed, and shows a real error', async () => {
    let answer: { code: string; message: string } = { code: 'cancelled', message: 'no folder was chosen' };
    fakeIpc({
      export_markdown: () => {
        throw answer;
      },
    });
    render(MarkdownFiles);
    await fireEvent.click(screen.getByTestId('export-markdown'));
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByTestId('markdown-error')).toBeNull();
    answer = { code: 'folder_not_empty', message: '/tmp/x is not empty' };
    await fireEvent.click(screen.getByTestId('export-markdown'));
    expect((await screen.findByTestId('markdown-error')).textContent).toContain('/tmp/x is not empty');
  });
});
