import { ProviderError } from "../provider.js";

/**
 * AWS SDK errors, sorted by what they mean for the cache. Messages are built from
 * the error code and HTTP status only: SDK messages and `$response` may echo a
 * response body, which for these services can hold secret values.
 */
const THROTTLING = new Set([
  "ThrottlingException",
  "Throttling",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "ThrottledException",
  "SlowDown",
  "ProvisionedThroughputExceededException",
]);
/** The credentials themselves are refused: nothing this provider fetches can work. */
const AUTH = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "SignatureDoesNotMatch",
  "InvalidClientTokenId",
  "ExpiredTokenException",
  "ExpiredToken",
  "IncompleteSignature",
  "MissingAuthenticationToken",
  "RequestExpired",
  "CredentialsProviderError",
  "InvalidAccessKeyId",
]);
/** About one secret: recorded against it, its cached value kept. */
const PER_SECRET = new Set([
  "AccessDeniedException",
  "AccessDenied",
  "ResourceNotFoundException",
  "ParameterNotFound",
  "ParameterVersionNotFound",
  "ParameterVersionLabelLimitExceeded",
  "InvalidRequestException",
  "InvalidParameterException",
  "DecryptionFailure",
  "ValidationException",
  "InvalidKeyId",
]);

export interface SdkErrorLike {
  name?: string;
  code?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
}

export type Classified = { scope: "secret" | "provider"; error: ProviderError };

export function classifyAws(e: unknown, where: string): Classified {
  const err = (e ?? {}) as SdkErrorLike;
  const name = typeof err.name === "string" ? err.name : "Error";
  const status = err.$metadata?.httpStatusCode;
  const http = status !== undefined ? ` (HTTP ${status})` : "";
  if (e instanceof ProviderError) return { scope: e.kind === "permanent" ? "secret" : "provider", error: e };
  if (THROTTLING.has(name) || status === 429 || err.$retryable?.throttling) {
    return { scope: "provider", error: new ProviderError("transient", `${where}: throttled by AWS (${name}${http}); backing off`) };
  }
  if (AUTH.has(name))
    return {
      scope: "provider",
      error: new ProviderError("auth", `${where}: AWS refused the credentials (${name}${http}); check the credential chain, role_arn and the clock`),
    };
  if (name === "AccessDeniedException" || name === "AccessDenied")
    return { scope: "secret", error: new ProviderError("permanent", `${where}: access denied (${name}${http}); check the IAM policy`) };
  if (name === "ResourceNotFoundException" || name === "ParameterNotFound" || name === "ParameterVersionNotFound")
    return { scope: "secret", error: new ProviderError("permanent", `${where}: not found (${name}${http})`) };
  if (PER_SECRET.has(name)) return { scope: "secret", error: new ProviderError("permanent", `${where}: rejected (${name}${http})`) };
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code))
    return { scope: "provider", error: new ProviderError("transient", `${where}: AWS unreachable or the connection broke (${code})`) };
  if (name === "AbortError" || name === "TimeoutError")
    return { scope: "provider", error: new ProviderError("transient", `${where}: no answer in time (${name})`) };
  if (status !== undefined && status >= 500) return { scope: "provider", error: new ProviderError("transient", `${where}: AWS answered ${name}${http}`) };
  if (status === undefined || (status >= 200 && status < 300) || name === "SyntaxError") {
    // The SDK could not read the answer (not JSON/XML, cut off): nothing of it is used.
    return { scope: "secret", error: new ProviderError("transient", `${where}: the answer could not be read (${name}${http}); rejected`) };
  }
  return { scope: "secret", error: new ProviderError("permanent", `${where}: rejected (${name}${http})`) };
}

export function isAccessDenied(e: unknown): boolean {
  const name = (e as SdkErrorLike | null)?.name;
  return name === "AccessDeniedException" || name === "AccessDenied";
}
