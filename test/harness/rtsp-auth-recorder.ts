import { createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A listener that plays just enough of an RTSP server to learn whether a client sends credentials: it
 * answers OPTIONS, and answers every DESCRIBE with 401 and a Basic challenge (which ffmpeg answers with
 * `Authorization: Basic base64(user:pass)` when its URL holds credentials). It records every
 * Authorization header it receives. Stands for "another host" that a hostile ONVIF device names.
 */
export interface RtspAuthRecorder {
  /** `rtsp://host:port/videoMain`, without credentials. */
  url: string;
  /** Authorization header values received, in order (decoded from Basic when they are Basic). */
  authorizations: string[];
  /** Requests received, as `METHOD` lines. */
  methods: string[];
  stop(): Promise<void>;
}

export async function startRtspAuthRecorder(host: string): Promise<RtspAuthRecorder> {
  const authorizations: string[] = [];
  const methods: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const request = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const [line = '', ...headers] = request.split('\r\n');
        const method = line.split(' ')[0] ?? '';
        methods.push(method);
        const cseq = headers.find((h) => /^cseq:/i.test(h))?.split(':')[1]?.trim() ?? '0';
        const auth = headers.find((h) => /^authorization:/i.test(h))?.replace(/^authorization:\s*/i, '');
        if (auth !== undefined) {
          const basic = /^Basic\s+(\S+)/i.exec(auth);
          authorizations.push(basic === null ? auth : Buffer.from(basic[1]!, 'base64').toString('utf8'));
        }
        if (method === 'OPTIONS') {
          socket.write(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n`);
        } else {
          socket.write(`RTSP/1.0 401 Unauthorized\r\nCSeq: ${cseq}\r\nWWW-Authenticate: Basic realm="recorder"\r\n\r\n`);
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `rtsp://${host}:${port}/videoMain`,
    authorizations,
    methods,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
