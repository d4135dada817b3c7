/** Minimal assertions (jsr:@std/assert is not reachable from our build machines). */
import { isDeepStrictEqual } from "node:util";

export class AssertionError extends Error {}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(
      `${message ?? "values differ"}\n  actual:   ${JSON.stringify(actual)}\n  expected: ${
        JSON.stringify(expected)
      }`,
    );
  }
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) {
    throw new AssertionError(`${message ?? "no match"}: ${JSON.stringify(actual)} !~ ${pattern}`);
  }
}

export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError(
      `${message ?? "missing text"}: ${JSON.stringify(expected)} not in ${JSON.stringify(actual)}`,
    );
  }
}

/** What `run` rejects with; fails when it resolves. */
export async function assertRejects(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new AssertionError("expected a rejection, but it resolved");
}
