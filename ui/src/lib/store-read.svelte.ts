// What a view shows of the store, kept current: the core reports every change (another device's
// edits arrive that way too) and the view reads again; replies can come back out of order, so
// only the newest read's counts.
import { untrack } from 'svelte';
import { errorMessage } from '../api';
import { onlyNewest } from './latest';
import { changes, showError } from './state.svelte';

/**
 * Reads with `call` now and again on every change. Create it while a component starts: the
 * reads follow that component's life.
 */
export class StoreRead<T> {
  /** null until the first read answers. */
  value = $state.raw<T | null>(null);
  /** The last read failed (the banner says why): the view offers to try again. */
  failed = $state(false);
  readonly #read: () => Promise<T>;

  constructor(call: () => Promise<T>) {
    this.#read = onlyNewest(call);
    $effect(() => {
      void changes.version;
      untrack(() => void this.reload());
    });
  }

  async reload(): Promise<void> {
    try {
      this.value = await this.#read();
      this.failed = false;
    } catch (e) {
      this.failed = true;
      showError(errorMessage(e));
    }
  }
}
