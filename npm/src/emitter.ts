// A minimal typed event emitter: `on` returns the function that removes the
// handler, and a handler that throws does not stop the others.

type Handler<A extends unknown[]> = (...args: A) => void;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = (...args: any[]) => void;

/** Typed `on`/`off`/`once` over an event map `{ name: [argument types] }`. */
export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  readonly #handlers = new Map<keyof E, Set<AnyHandler>>();

  /** Calls `handler` on every `event`; returns a function that stops it. */
  on<K extends keyof E>(event: K, handler: Handler<E[K]>): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler as AnyHandler);
    return () => this.off(event, handler);
  }

  /** Calls `handler` on the next `event` only. */
  once<K extends keyof E>(event: K, handler: Handler<E[K]>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      handler(...args);
    }) as Handler<E[K]>);
    return off;
  }

  /** Stops calling `handler` on `event`. */
  off<K extends keyof E>(event: K, handler: Handler<E[K]>): void {
    this.#handlers.get(event)?.delete(handler as AnyHandler);
  }

  /** Whether any handler waits for `event`. */
  listens<K extends keyof E>(event: K): boolean {
    return (this.#handlers.get(event)?.size ?? 0) > 0;
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
