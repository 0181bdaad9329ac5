'use strict';
// The reference broadcast server of `scripts/bench server`: the part of
// Heartline's protocol that the load generator
// (crates/heartline-server/examples/loadgen.rs) uses, on the npm package
// `ws`, so both servers face the same clients doing the same thing.
//
//   hello {name}              -> welcome {session, name, token, rooms}
//   join {room}               -> joined {stream, last_seq, epoch}
//   chat.send {id, room, text} -> chat.message {stream, epoch, seq, ...} to
//                                every member of the room, then ack {id}
//   leave {room}, ping {t} -> pong {t}, the plain-text "ping" -> "pong"
//   any frame with an id      -> ack {id} once handled
//
// What it leaves out on purpose, so it is the fastest honest peer: no
// history, no storage, no rate limit, no presence. What it does to be fast:
// each broadcast is serialized once into one Buffer shared by every
// receiver, and each client's frames are corked for the rest of the event
// loop turn (socket.cork() now, uncork() in setImmediate), so a turn's
// frames leave in one write. `ws` already sets TCP_NODELAY and has
// permessage-deflate off on the server side by default.
//
//   node server.js --addr 127.0.0.1:0 --ready-file /tmp/ready
//
// Writes "127.0.0.1:PORT" to the ready file once listening; stops on
// SIGTERM or SIGINT. Loopback addresses only.

const fs = require('node:fs');
const http = require('node:http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const args = { addr: '127.0.0.1:0', readyFile: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--addr') args.addr = value;
    else if (flag === '--ready-file') args.readyFile = value;
    else throw new Error(`unknown option ${flag}`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const sep = args.addr.lastIndexOf(':');
const host = args.addr.slice(0, sep);
const port = Number(args.addr.slice(sep + 1));
if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
  throw new Error(`refusing a non-loopback address: ${host}`);
}

// The one epoch of every stream: this server starts empty and keeps nothing.
const EPOCH = Date.now();

// room name -> { seq, members: Set<Client> }
const rooms = new Map();
let nextSession = 1;

// Sockets corked during this event loop turn, uncorked together after it.
const corked = new Set();
let flushScheduled = false;

function flushCorked() {
  flushScheduled = false;
  for (const client of corked) client.socket.uncork();
  corked.clear();
}

// Queues one text frame to a client (`data` is a string or a Buffer of
// UTF-8 JSON), corking its socket until the end of this turn.
function send(client, data) {
  if (client.ws.readyState !== client.ws.OPEN) return;
  if (!corked.has(client)) {
    client.socket.cork();
    corked.add(client);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushCorked);
    }
  }
  client.ws.send(data, { binary: false });
}

function reply(client, message) {
  send(client, JSON.stringify(message));
}

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { seq: 0, members: new Set() };
    rooms.set(name, r);
  }
  return r;
}

function refuse(client, code, message, id) {
  reply(client, { socketType: 'error', code, message, ...(id ? { id } : {}) });
}

// Handles one text frame; returns whether it is answered by an ack.
function handle(client, frame) {
  switch (frame.socketType) {
    case 'ping':
      reply(client, { socketType: 'pong', t: frame.t });
      return true;
    case 'hello': {
      client.name = String(frame.name || 'anonymous');
      const session = `s-${nextSession++}`;
      reply(client, {
        socketType: 'welcome', session, name: client.name, token: session,
        rooms: [...rooms.keys()],
      });
      return true;
    }
    case 'join': {
      if (client.name === null) return refuse(client, 'not_welcomed', 'send hello first', frame.id);
      const r = room(String(frame.room));
      r.members.add(client);
      client.rooms.add(String(frame.room));
      reply(client, { socketType: 'joined', stream: String(frame.room), last_seq: r.seq, epoch: EPOCH });
      return true;
    }
    case 'leave': {
      const r = rooms.get(String(frame.room));
      if (r) r.members.delete(client);
      client.rooms.delete(String(frame.room));
      return true;
    }
    case 'chat.send': {
      if (client.name === null) return refuse(client, 'not_welcomed', 'send hello first', frame.id);
      const r = rooms.get(String(frame.room));
      if (!r || !r.members.has(client)) return refuse(client, 'invalid_field', 'join the room first', frame.id);
      r.seq += 1;
      // Serialized once: every member gets the same bytes.
      const bytes = Buffer.from(JSON.stringify({
        socketType: 'chat.message', stream: String(frame.room), epoch: EPOCH, seq: r.seq,
        id: frame.id, from: client.name, text: String(frame.text), at: Date.now(),
      }));
      for (const member of r.members) send(member, bytes);
      return true;
    }
    default:
      refuse(client, 'unknown_type', `unknown socketType ${JSON.stringify(frame.socketType)}`, frame.id);
      return false;
  }
}

const httpServer = http.createServer((_req, res) => {
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server: httpServer, path: '/ws', maxPayload: 64 * 1024 });

wss.on('connection', (ws, req) => {
  const client = { ws, socket: req.socket, name: null, rooms: new Set() };
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === 'ping') return send(client, 'pong');
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return refuse(client, 'bad_json', 'not JSON');
    }
    if (frame === null || typeof frame !== 'object') {
      return refuse(client, 'unknown_type', 'missing socketType');
    }
    if (handle(client, frame) && typeof frame.id === 'string') {
      reply(client, { socketType: 'ack', id: frame.id });
    }
  });
  ws.on('close', () => {
    for (const name of client.rooms) rooms.get(name)?.members.delete(client);
    corked.delete(client);
  });
  ws.on('error', () => ws.terminate());
});

httpServer.listen(port, host, () => {
  const { address, port: bound } = httpServer.address();
  const shown = address.includes(':') ? `[${address}]` : address;
  if (args.readyFile) fs.writeFileSync(args.readyFile, `${shown}:${bound}`);
  console.error(`node peer (ws ${require('ws/package.json').version}) listening on ${shown}:${bound}`);
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
