import { describe, expect, it } from 'vitest';
import { onlyNewest } from './latest';
import { deferred } from './testing';

/** Lets every settled promise run its callbacks. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** What a promise came to so far: its value, its error, or still nothing. */
function watch<T>(promise: Promise<T>) {
  const seen: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(seen, { value, settled: true }),
    (error: unknown) => Object.assign(seen, { error, settled: true }),
  );
  return seen;
}

/** A call whose replies the test sends by hand, in any order. */
function replies<T>() {
  const pending: ReturnType<typeof deferred<T>>[] = [];
  const asked: string[] = [];
  const call = (question: string) => {
    asked.push(question);
    const reply = deferred<T>();
    pending.push(reply);
    return reply.promise;
  };
  return { call, asked, pending };
}

describe('onlyNewest', () => {
  it('passes each request on, and only the reply to the newest one back', async () => {
    const store = replies<string>();
    const search = onlyNewest(store.call);
    const first = watch(search('pu'));
    const second = watch(search('pump'));
    expect(store.asked).toEqual(['pu', 'pump']);

    // The newer search answers first; the older one's late answer must not replace it.
    store.pending[1]!.resolve('hits for pump');
    store.pending[0]!.resolve('hits for pu');
    await settle();
    expect(second).toEqual({ value: 'hits for pump', settled: true });
    expect(first.settled).toBe(false);
  });

  it('drops the failure of an older request and passes on the newest one', async () => {
    const store = replies<string>();
    const read = onlyNewest(store.call);
    const first = watch(read('a'));
    const second = watch(read('b'));
    store.pending[0]!.reject(new Error('database is locked'));
    store.pending[1]!.reject(new Error('disk full'));
    await settle();
    expect(first.settled).toBe(false);
    expect(second.error).toEqual(new Error('disk full'));
  });

  it('answers a single request whatever it comes to', async () => {
    const read = onlyNewest(async (n: number) => n * 2);
    await expect(read(21)).resolves.toBe(42);
    const fail = onlyNewest(async () => {
      throw new Error('offline');
    });
    await expect(fail()).rejects.toThrow('offline');
  });

  it('fails a call that throws at once like one that rejects', async () => {
    const read = onlyNewest((): Promise<number> => {
      throw new Error('no store');
    });
    await expect(read()).rejects.toThrow('no store');
  });

  it('drops every reply still to come once its question is gone', async () => {
    const store = replies<string>();
    const search = onlyNewest(store.call);
    const asked = watch(search('pump'));
    search.drop(); // the search box was cleared
    store.pending[0]!.resolve('hits for pump');
    await settle();
    expect(asked.settled).toBe(false);
    // A new request after that is answered as usual.
    const next = watch(search('valve'));
    store.pending[1]!.resolve('hits for valve');
    await settle();
    expect(next.value).toBe('hits for valve');
  });

  it('lets other replies join the newest request, dropped along with it', async () => {
    const view = onlyNewest(async (name: string) => name);
    const page = deferred<string>();
    const stalePage = deferred<string>();

    await view('trash');
    const joinedOld = watch(view.join(stalePage.promise));
    await view('active'); // a new view: pages asked for the trash are stale
    const joinedNew = watch(view.join(page.promise));

    stalePage.resolve('page of the trash');
    page.resolve('page of active notes');
    await settle();
    expect(joinedOld.settled).toBe(false);
    expect(joinedNew.value).toBe('page of active notes');
  });
});
