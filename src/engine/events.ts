import { EventEmitter } from 'node:events';
import type { WarmStoreEvents, WarmStoreLogger } from '../types.js';

/**
 * The store's lifecycle events. A listener that throws is logged and otherwise ignored: an
 * observer (metrics, a progress bar) must never fail the operation it observes.
 */
export class StoreEvents {
  readonly #emitter = new EventEmitter();
  readonly #logger: WarmStoreLogger | undefined;

  constructor(logger: WarmStoreLogger | undefined) {
    this.#logger = logger;
  }

  on<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): void {
    this.#emitter.on(event, listener);
  }

  off<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): void {
    this.#emitter.off(event, listener);
  }

  emit<K extends keyof WarmStoreEvents>(event: K, ...args: Parameters<WarmStoreEvents[K]>): void {
    if (this.#emitter.listenerCount(event) === 0) return;
    // Each listener on its own, so one that throws does not keep the event from the others.
    for (const listener of this.#emitter.listeners(event)) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (err) {
        this.#logger?.error({ err, event }, 'warmstore event listener threw');
      }
    }
  }
}
