import type { ControlClient } from '../../src/control/dispatcher.js';

/** An in-memory MQTT client for the control plane: records what it publishes, and nothing more. */
export class RecordingControlClient implements ControlClient {
  readonly published: Array<{ topic: string; message: string | Buffer; retain: boolean }> = [];
  publishAsync(topic: string, message: string | Buffer, opts?: { retain?: boolean }): Promise<unknown> {
    this.published.push({ topic, message, retain: opts?.retain === true });
    return Promise.resolve(undefined);
  }
  subscribeAsync(): Promise<unknown> {
    return Promise.resolve(undefined);
  }
  unsubscribeAsync(): Promise<unknown> {
    return Promise.resolve(undefined);
  }
  on(): unknown {
    return this;
  }
  removeListener(): unknown {
    return this;
  }
}
