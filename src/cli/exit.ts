import type { ErrorCode } from "../errors.js";

/** DESIGN.md exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 forbidden, 5 unavailable. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, forbidden: 4, unavailable: 5 } as const;

export function exitCodeFor(code: ErrorCode | string): number {
  switch (code) {
    case "not_found":
      return EXIT.notFound;
    case "forbidden":
      return EXIT.forbidden;
    case "sealed":
    case "not_synced":
    case "expired":
    case "unavailable":
    case "rate_limited":
      return EXIT.unavailable;
    case "bad_request":
      return EXIT.usage;
    default:
      return EXIT.failure;
  }
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
