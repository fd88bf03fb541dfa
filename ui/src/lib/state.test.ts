import { describe, expect, it } from 'vitest';
import { finishBeforeClose, onBeforeClose } from './state.svelte';

describe('closing the window', () => {
  it('waits for every registered save, even when one fails', async () => {
    const done: string[] = [];
    const offA = onBeforeClose(async () => {
      await new Promise((r) => setTimeout(r, 20));
      done.push('editor');
    });
    const offB = onBeforeClose(async () => {
      throw new Error('disk full');
    });
    await finishBeforeClose();
    expect(done).toEqual(['editor']);
    offA();
    offB();
    done.length = 0;
    await finishBeforeClose();
    expect(done).toEqual([]);
  });
});
