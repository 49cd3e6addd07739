// Node peer: the `http` module's hello server (GET / -> "Hello, World!"), one process.
//
//   node server.js --addr 127.0.0.1:8080
'use strict';
const http = require('http');

let addr = '127.0.0.1:8080';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--addr') addr = argv[++i];
  else if (argv[i].startsWith('--addr=')) addr = argv[i].slice('--addr='.length);
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const body = Buffer.from('Hello, World!');
const server = http.createServer((req, res) => {
  if (req.url !== '/') {
    res.writeHead(404, { 'Content-Length': 0 });
    res.end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60000;
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
