import mqtt, { type IClientOptions } from 'mqtt';

/**
 * MQTT 5 where the broker supports it, 3.1.1 otherwise: one short trial connection with version 5. A broker
 * that refuses the version (aedes, older brokers) or cannot be reached now gets 3.1.1, which every broker
 * speaks; the real client then reconnects on its own.
 */
export async function brokerProtocol(url: string, options: IClientOptions): Promise<4 | 5> {
  try {
    // The trial connection carries no last will: it must not publish "offline" when it ends.
    const trial: IClientOptions = { ...options, clientId: `${options.clientId ?? 'camveil'}-probe`, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 };
    delete trial.will;
    const probe = await mqtt.connectAsync(url, trial);
    await probe.endAsync(true);
    return 5;
  } catch {
    return 4;
  }
}

