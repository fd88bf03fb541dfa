import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { flushSync } from 'svelte';
import { StoreRead } from './store-read.svelte';
import { changes, ui } from './state.svelte';
import { deferred, resetState } from './testing';

/** Lets every settled promise run its callbacks. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

let stop: (() => void) | undefined;

/** A StoreRead as a component makes it while it starts. */
function started<T>(call: () => Promise<T>): StoreRead<T> {
  let read!: StoreRead<T>;
  stop = $effect.root(() => {
    read = new StoreRead(call);
  });
  flushSync();
  return read;
}

beforeEach(() => resetState());
afterEach(() => stop?.());

describe('StoreRead', () => {
  it('reads at once, and again on every change the core reports', async () => {
    let version = 0;
    const read = started(async () => `list ${++version}`);
    expect(read.value).toBeNull();
    await settle();
    expect(read.value).toBe('list 1');
    changes.version += 1;
    flushSync();
    await settle();
    expect(read.value).toBe('list 2');
  });

  it('keeps the newest read when an older one answers last', async () => {
    const replies = [deferred<string>(), deferred<string>()];
    let asked = 0;
    const read = started(() => replies[asked++]!.promise);
    changes.version += 1;
    flushSync();
    replies[1]!.resolve('after the change');
    replies[0]!.resolve('before the change');
    await settle();
    expect(read.value).toBe('after the change');
  });

  it('remembers a failure, shows why, and reads again on request', async () => {
    let fail = true;
    const read = started(async () => {
      if (fail) throw { code: 'store', message: 'database is locked' };
      return 'list';
    });
    await settle();
    expect([read.value, read.failed, ui.error]).toEqual([null, true, 'database is locked']);
    fail = false;
    await read.reload();
    expect([read.value, read.failed]).toEqual(['list', false]);
  });

  it('stops reading with the component that made it', async () => {
    let reads = 0;
    started(async () => ++reads);
    await settle();
    stop?.();
    changes.version += 1;
    flushSync();
    await settle();
    expect(reads).toBe(1);
  });
});
