import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import type { ReceiverStorage, StoredObject } from './storage.js';

/** Objects as files `<dir>/<hub>/<objectId>.age`, each written to a temporary name and renamed into place. */
export class DirectoryStorage implements ReceiverStorage {
  constructor(readonly dir: string) {}

  get description(): string {
    return `directory ${this.dir}`;
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  async put(hub: string, objectId: string, body: Readable): Promise<void> {
    const hubDir = join(this.dir, hub);
    // A unique temporary name: two PUTs of one id at once must not write into the same file.
    const tmp = join(hubDir, `${objectId}.age.${randomBytes(6).toString('hex')}.tmp`);
    let out: FileHandle | undefined;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (out === undefined) {
          // Opened at the first (checked) chunk: a refused body leaves no file behind.
          await mkdir(hubDir, { recursive: true });
          out = await open(tmp, 'wx');
        }
        // One awaited write per chunk: the request is read no faster than the disk takes it.
        await out.write(chunk);
      }
      if (out === undefined) {
        await mkdir(hubDir, { recursive: true });
        out = await open(tmp, 'wx');
      }
      await out.close();
      out = undefined;
      await rename(tmp, join(hubDir, `${objectId}.age`));
    } catch (error) {
      if (out !== undefined) await out.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
  }

  async list(hub: string): Promise<StoredObject[]> {
    const hubDir = join(this.dir, hub);
    const names = await readdir(hubDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    const list: StoredObject[] = [];
    for (const name of names.sort()) {
      const objectId = name.endsWith('.age') ? name.slice(0, -4) : '';
      if (!OBJECT_ID_PATTERN.test(objectId)) continue;
      const info = await stat(join(hubDir, name));
      list.push({ objectId, bytes: info.size, receivedAt: info.mtime.toISOString() });
    }
    return list;
  }

  async get(hub: string, objectId: string): Promise<{ bytes: number; body: Readable } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(join(this.dir, hub, `${objectId}.age`), 'r');
    } catch {
      return undefined;
    }
    const { size } = await handle.stat();
    return { bytes: size, body: createReadStream('', { fd: handle }) };
  }

  async delete(hub: string, objectId: string): Promise<boolean> {
    try {
      await unlink(join(this.dir, hub, `${objectId}.age`));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    // Nothing held open between requests.
  }
}
