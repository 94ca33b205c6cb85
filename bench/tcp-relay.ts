import net from 'node:net';

/**
 * A TCP relay run as its own process (forked by bench/withdrawal.ts), so that when bytes reach the
 * receiver is seen by a process whose event loop the hub cannot delay. Forwards 127.0.0.1:<port> to the
 * target port and reports every chunk it forwards, with an absolute timestamp, its connection and (when the
 * chunk begins an HTTP request) the request line, over IPC.
 */
const target = Number(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
/** An HTTP/1.1 request line at the start of a chunk: a client sends the next request only after an answer. */
const REQUEST_LINE = /^([A-Z]+) (\S{1,300}) HTTP\/1\.[01]\r\n/;
let connections = 0;
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  // c: the connection's number; req: the request line when the chunk begins a request (for telling an
  // object's bytes from the small requests around them).
  const c = ++connections;
  client.on('data', (d: Buffer) => {
    const line = REQUEST_LINE.exec(d.subarray(0, 320).toString('latin1'));
    process.send?.({ t: now(), n: d.length, c, ...(line === null ? {} : { req: `${line[1]} ${line[2]}` }) });
    upstream.write(d);
  });
  upstream.on('data', (d: Buffer) => client.write(d));
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('close', end).on('error', end);
  upstream.on('close', end).on('error', end);
});
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as net.AddressInfo).port }));
process.on('disconnect', () => process.exit(0));
