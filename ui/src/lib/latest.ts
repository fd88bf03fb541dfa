// "Latest reply wins": the store answers commands out of order (a slow read can come back after
// a faster one started later), and a view must show the answer to the newest question it asked,
// not the last one to arrive.

export interface OnlyNewest<A extends unknown[], T> {
  /** Calls, making this the newest request: the replies to every earlier one are dropped. */
  (...args: A): Promise<T>;
  /** Drops the replies to every request made so far (what they were asked for is gone). */
  drop(): void;
  /** Waits for `reply` as part of the newest request: it is dropped when that request's is. */
  join<R>(reply: Promise<R>): Promise<R>;
}

/**
 * Wraps `call` so that only the newest request's reply (or failure) comes back. A dropped reply
 * never settles: the code after its `await` does not run, so put nothing there (a `finally`)
 * that must run for every request.
 */
export function onlyNewest<A extends unknown[], T>(call: (...args: A) => Promise<T>): OnlyNewest<A, T> {
  let newest = 0;

  function keep<R>(request: number, reply: Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      reply.then(
        (value) => request === newest && resolve(value),
        (error: unknown) => request === newest && reject(error),
      );
    });
  }

  const run = (...args: A) => {
    const request = ++newest;
    let reply: Promise<T>;
    try {
      reply = call(...args);
    } catch (error) {
      // A call that throws at once fails like one that rejects.
      reply = Promise.reject(error);
    }
    return keep(request, reply);
  };
  return Object.assign(run, {
    drop: () => void ++newest,
    join: <R>(reply: Promise<R>) => keep(newest, reply),
  });
}
