// SPDX-License-Identifier: Apache-2.0
// Waiting on a fact that nothing announces (a count a child prints, a stream's state, a clock):
// check it until it holds and fail, naming what was awaited, at a deadline. A deadline, never a
// pause: it returns as soon as the fact holds. Owns nothing.

/** The first truthy `check()` (checked now, then every `everyMs`); rejects after `ms`. */
export async function until<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, ms = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
