// tests/bench/aedes_ws.js - the npm broker Aedes behind a WebSocket server
// (ws, path /mqtt, subprotocol mqtt), compare.sh's WebSocket peer:
//   node aedes_ws.js PORT DIR/node_modules
// listens on 127.0.0.1:PORT and prints "aedes ws listening on PORT" once it
// accepts connections.  In-memory persistence (Aedes' default); it ends on
// SIGTERM or SIGINT.
'use strict';

if (process.argv[3]) module.paths.unshift(process.argv[3]);
const http = require('http');
const aedes = require('aedes')();
const { WebSocketServer, createWebSocketStream } = require('ws');

const port = parseInt(process.argv[2] || '0', 10);
const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({
  server,
  path: '/mqtt',
  // as petreld: binary frames, the mqtt subprotocol, no compression
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
});
wss.on('connection', (socket) => {
  socket._socket.setNoDelay(true);
  aedes.handle(createWebSocketStream(socket));
});
server.listen(port, '127.0.0.1', () => {
  console.log('aedes ws listening on ' + server.address().port);
});
const stop = () => {
  wss.close();
  server.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
