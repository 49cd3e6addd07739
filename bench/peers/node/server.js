// Node peer: the `http` module's hello server (GET / -> "Hello, World!"), or with
// `--mode echo` a `net` server that writes back what it reads; one process.
//
//   node server.js --addr 127.0.0.1:8080 [--mode http|echo]
'use strict';
const http = require('http');
const net = require('net');

let addr = '127.0.0.1:8080';
let mode = 'http';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--addr') addr = argv[++i];
  else if (argv[i].startsWith('--addr=')) addr = argv[i].slice('--addr='.length);
  else if (argv[i] === '--mode') mode = argv[++i];
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

process.on('SIGTERM', () => process.exit(0));
if (mode === 'echo') {
  net
    .createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    })
    .listen(port, host);
  return;
}

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
