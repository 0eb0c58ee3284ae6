import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type http from "node:http";

/**
 * AWS Signature Version 4 verification, written from the AWS documentation
 * ("Create a signed AWS API request"): canonical request → string to sign →
 * HMAC-SHA256 key chain (AWS4+secret, date, region, service, "aws4_request").
 * The test servers use it to reject any request the SDK did not sign with the
 * credentials they were given.
 */
export interface SigV4Credentials {
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export type SigV4Result =
  | { ok: true; accessKeyId: string; region: string; service: string }
  | {
      ok: false;
      code:
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "RequestExpired"
        | "InvalidClientTokenId";
      message: string;
    };

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest();

/** RFC 3986 unreserved characters stay; everything else is %XX (upper case). */
export function uriEncode(s: string, encodeSlash = true): string {
  let out = "";
  for (const ch of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(ch);
    if (/[A-Za-z0-9\-._~]/.test(c) || (!encodeSlash && c === "/")) out += c;
    else out += "%" + ch.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac("AWS4" + secret, date), region), service), "aws4_request");
}

export function canonicalRequest(method: string, rawUrl: string, headers: http.IncomingHttpHeaders, signedHeaders: string[], payloadHash: string): string {
  const url = new URL(rawUrl, "http://x");
  // Non-S3 services: each path segment is normalised and URI-encoded twice; the SDK sends "/".
  const path =
    url.pathname === ""
      ? "/"
      : url.pathname
          .split("/")
          .map((seg) => uriEncode(uriEncode(decodeURIComponent(seg))))
          .join("/");
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonHeaders = signedHeaders
    .map((h) => {
      const v = headers[h];
      const value = (Array.isArray(v) ? v.join(",") : (v ?? "")).trim().replace(/\s+/g, " ");
      return `${h}:${value}\n`;
    })
    .join("");
  return [method, path, query, canonHeaders, signedHeaders.join(";"), payloadHash].join("\n");
}

export function verifySigV4(
  req: http.IncomingMessage,
  body: Buffer,
  lookup: (accessKeyId: string) => SigV4Credentials | undefined,
  now = Date.now(),
): SigV4Result {
  const auth = req.headers.authorization;
  if (!auth) return { ok: false, code: "MissingAuthenticationToken", message: "Request is missing Authentication Token" };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(
    auth,
  );
  if (!m) return { ok: false, code: "IncompleteSignature", message: "Authorization header requires Credential, SignedHeaders and Signature" };
  const [, akid, date, region, service, signed, signature] = m as unknown as [string, string, string, string, string, string, string];
  const creds = lookup(akid);
  if (!creds) return { ok: false, code: "UnrecognizedClientException", message: "The security token included in the request is invalid." };
  const amzDate = req.headers["x-amz-date"];
  if (typeof amzDate !== "string" || !/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(date))
    return { ok: false, code: "IncompleteSignature", message: "X-Amz-Date is missing or does not match the credential scope" };
  const t = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  if (Math.abs(now - t) > 15 * 60_000)
    return { ok: false, code: "RequestExpired", message: "Signature expired: the request time is more than 15 minutes from the server time" };
  const signedHeaders = signed.split(";");
  if (!signedHeaders.includes("host") || signedHeaders.join(";") !== [...signedHeaders].sort().join(";"))
    return { ok: false, code: "IncompleteSignature", message: "SignedHeaders must be sorted and include host" };
  const token = req.headers["x-amz-security-token"];
  if (creds.sessionToken !== undefined) {
    if (token !== creds.sessionToken)
      return { ok: false, code: "UnrecognizedClientException", message: "The security token included in the request is invalid." };
    if (!signedHeaders.includes("x-amz-security-token")) return { ok: false, code: "IncompleteSignature", message: "x-amz-security-token must be signed" };
  }
  const declared = req.headers["x-amz-content-sha256"];
  const payloadHash = typeof declared === "string" && declared !== "UNSIGNED-PAYLOAD" ? declared : sha256(body);
  if (payloadHash !== sha256(body))
    return { ok: false, code: "SignatureDoesNotMatch", message: "The provided x-amz-content-sha256 header does not match what was computed." };
  const canon = canonicalRequest(req.method ?? "GET", req.url ?? "/", req.headers, signedHeaders, payloadHash);
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, `${date}/${region}/${service}/aws4_request`, sha256(canon)].join("\n");
  const expected = createHmac("sha256", signingKey(creds.secretAccessKey, date, region, service))
    .update(stringToSign, "utf8")
    .digest();
  const given = Buffer.from(signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return {
      ok: false,
      code: "InvalidSignatureException",
      message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    };
  }
  return { ok: true, accessKeyId: akid, region, service };
}
