import { rawErrorResponse } from "./respond.js";

/**
 * The answer to a CONNECT request. node:http hands CONNECT to a 'connect' listener
 * with the socket already taken off its parser — and without a listener closes the
 * connection with no answer at all. The socket API has no tunnels, so CONNECT gets
 * what any method a route does not take gets: 405 with the JSON error body and an
 * Allow header. The connection is closed after it: its parser is gone, so it cannot
 * carry another request. `allow` comes from the route table; `target` is the
 * request target as sent (origin-form path, `host:443` authority-form, or absolute-form).
 */
export function connectRefusal(allow: string, target: string): string {
  const shown = JSON.stringify(target.slice(0, 64));
  const message = `CONNECT is not allowed on ${shown}: this socket serves the sealcache API and tunnels nothing; use ${allow} (see the socket API in README.md)`;
  return rawErrorResponse(405, "Method Not Allowed", message, "bad_request", { Allow: allow });
}
