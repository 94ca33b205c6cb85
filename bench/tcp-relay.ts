import net from 'node:net';

/**
 * A TCP relay run as its own process (forked by bench/withdrawal.ts), so that when bytes reach the
 * receiver is seen by a process whose event loop the hub cannot delay. Forwards 127.0.0.1:<port> to the
 * target port and reports every chunk it forwards, with an absolute timestamp, over IPC.
 */
const target = Number(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  client.on('data', (d: Buffer) => {
    process.send?.({ t: now(), n: d.length });
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
