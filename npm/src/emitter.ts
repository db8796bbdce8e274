// A minimal typed event emitter: `on` returns the function that removes the
// handler, and a handler that throws does not stop the others.

type Handler<A extends unknown[]> = (...args: A) => void;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = (...args: any[]) => void;

/** Typed `on`/`off`/`once` over an event map `{ name: [argument types] }`. */
export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  readonly #handlers = new Map<keyof E, Set<AnyHandler>>();
  readonly #events: readonly string[];

  /** An emitter of `events` (the names `on` takes). */
  constructor(events: readonly (keyof E & string)[]) {
    this.#events = events;
  }

  /** Calls `handler` on every `event`; returns a function that stops it. */
  on<K extends keyof E>(event: K, handler: Handler<E[K]>): () => void {
    this.#check(event, handler);
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler as AnyHandler);
    return () => this.off(event, handler);
  }

  /** Calls `handler` on the next `event` only. */
  once<K extends keyof E>(event: K, handler: Handler<E[K]>): () => void {
    this.#check(event, handler);
    const off = this.on(event, ((...args: E[K]) => {
      off();
      handler(...args);
    }) as Handler<E[K]>);
    return off;
  }

  /** Stops calling `handler` on `event`. */
  off<K extends keyof E>(event: K, handler: Handler<E[K]>): void {
    this.#check(event, handler);
    this.#handlers.get(event)?.delete(handler as AnyHandler);
  }

  /** Whether any handler waits for `event`. */
  listens<K extends keyof E>(event: K): boolean {
    return (this.#handlers.get(event)?.size ?? 0) > 0;
  }

  /** A misspelt event would never fire, and a handler that is no function would throw at every event. */
  #check(event: unknown, handler: unknown): void {
    if (typeof event !== "string") throw new TypeError(`event must be a string, not a ${typeof event}`);
    if (!this.#events.includes(event)) throw new RangeError(`event must be one of ${this.#events.join(", ")}`);
    if (typeof handler !== "function") throw new TypeError(`handler must be a function, not a ${typeof handler}`);
  }

  /** @internal */
  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      try {
        handler(...args);
      } catch (e) {
        console.error(`sipline: a "${String(event)}" handler threw`, e);
      }
    }
  }
}
