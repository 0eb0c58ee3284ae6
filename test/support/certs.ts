import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export interface TestCerts {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA that signed nothing here: a client trusting only it must refuse the server. */
  readonly otherCaFile: string;
}

function openssl(cwd: string, args: string[]): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A throwaway CA, a server certificate for 127.0.0.1 / localhost and a client
 * certificate, made with the system's openssl in `dir` (P-256 keys, 1 day).
 */
export function makeCerts(dir: string): TestCerts {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ecKey = (name: string) => openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name]);
  for (const ca of ["ca", "other-ca"]) {
    ecKey(`${ca}.key`);
    openssl(dir, ["req", "-x509", "-new", "-key", `${ca}.key`, "-sha256", "-days", "1", "-subj", `/CN=sealcache test ${ca}`, "-out", `${ca}.pem`]);
  }
  const issue = (name: string, subject: string, ext: string) => {
    ecKey(`${name}.key`);
    openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-sha256",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    ]);
  };
  issue("server", "/CN=vault.test", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:vault.test\nextendedKeyUsage=serverAuth\n");
  issue("client", "/CN=gw-17", "extendedKeyUsage=clientAuth\n");
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caFile: p("ca.pem"),
    serverCert: p("server.pem"),
    serverKey: p("server.key"),
    clientCert: p("client.pem"),
    clientKey: p("client.key"),
    otherCaFile: p("other-ca.pem"),
  };
}

/** Another client certificate (CN = `name`) from the CA of makeCerts, in the same folder. */
export function issueClientCert(certs: TestCerts, name: string): { cert: string; key: string } {
  const file = `client-${name}`;
  openssl(certs.dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${file}.key`]);
  openssl(certs.dir, ["req", "-new", "-key", `${file}.key`, "-subj", `/CN=${name}`, "-out", `${file}.csr`]);
  fs.writeFileSync(path.join(certs.dir, `${file}.ext`), "extendedKeyUsage=clientAuth\n");
  openssl(certs.dir, [
    "x509",
    "-req",
    "-in",
    `${file}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-sha256",
    "-extfile",
    `${file}.ext`,
    "-out",
    `${file}.pem`,
  ]);
  return { cert: path.join(certs.dir, `${file}.pem`), key: path.join(certs.dir, `${file}.key`) };
}
