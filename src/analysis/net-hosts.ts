import { faceNetHost } from './faces/face-net-host.js';
import type { NetHost } from './net-host.js';
import { objectNetHost } from './objects/object-net-host.js';

/** Every net the model worker can host, by the name an analyser asks for it with: one line per analyser. */
export const NET_HOSTS: Readonly<Record<string, () => NetHost>> = {
  faces: faceNetHost,
  objects: objectNetHost,
};
