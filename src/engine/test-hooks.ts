/**
 * Hooks for crash and fault tests, kept off the public options type. They travel on the options
 * object under a symbol that only `warmstore/testing` hands out, so an application cannot set one
 * by accident and the documented options stay what a user needs.
 */
export const TEST_HOOKS: unique symbol = Symbol.for('warmstore.testHooks');

export interface TestHooks {
  /** Called at named points inside compaction (crash tests kill the process there). */
  onKillPoint?: (name: string) => void;
  /** Smallest recall-index delta worth a merge (tests merge small stores). */
  annMergeMin?: number;
  /** Sampled index recall below which recall scans exactly (tests raise it to reach that path). */
  annMinRecall?: number;
}

/** The hooks carried by an options object, or none. */
export function testHooksOf(options: object | undefined): TestHooks {
  if (options === undefined || options === null) return {};
  const hooks = (options as { [TEST_HOOKS]?: unknown })[TEST_HOOKS];
  return typeof hooks === 'object' && hooks !== null ? (hooks as TestHooks) : {};
}
