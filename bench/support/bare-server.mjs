// The baseline server for the benches: node:http on a Unix socket, nothing else.
// Plain JavaScript on purpose: it must start like dist/main.mjs does, without the
// tsx loader, or the cold-start baseline would carry tsx's start-up cost.
//
//   node bench/support/bare-server.mjs SOCKET [REPLY_JSON_FILE]
//
// REPLY_JSON_FILE holds {"body": "...", "headers": {...}}: the lookup bench copies a
// real daemon answer there so both servers write the same bytes.
import fs from "node:fs";
import http from "node:http";

const [socketPath, replyFile] = process.argv.slice(2);
if (!socketPath) {
  process.stderr.write("usage: bare-server.mjs SOCKET [REPLY_JSON_FILE]\n");
  process.exit(2);
}
const reply = replyFile ? JSON.parse(fs.readFileSync(replyFile, "utf8")) : { body: '{"status":"ok"}', headers: { "Content-Type": "application/json" } };
const body = Buffer.from(reply.body, "utf8");
const headers = { ...reply.headers, "Content-Length": body.length };

const server = http.createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
fs.rmSync(socketPath, { force: true });
server.listen(socketPath);

process.once("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
