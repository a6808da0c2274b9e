/** MQTT clients for the broker tests: mqtt.js on 127.0.0.1, no reconnects, collected messages. */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { waitFor } from '../helpers/wait.js';

export interface Msg {
  topic: string;
  payload: string;
  retain: boolean;
}

export interface TestClient {
  client: MqttClient;
  messages: Msg[];
  closed: boolean;
  /** resolves with the messages on `topic` once `n` have arrived */
  waitMessages(topic: string, n?: number, timeoutMs?: number): Promise<Msg[]>;
  end(): Promise<void>;
}

export async function connect(port: number, username?: string, password?: string, extra: IClientOptions = {}, protocol: 'mqtt' | 'mqtts' = 'mqtt'): Promise<TestClient> {
  const client = await mqtt.connectAsync(`${protocol}://127.0.0.1:${port}`, {
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...extra,
  });
  const t: TestClient = {
    client,
    messages: [],
    closed: false,
    async waitMessages(topic, n = 1, timeoutMs = 5000) {
      const of = (): Msg[] => t.messages.filter((m) => m.topic === topic);
      await waitFor(`${n} message(s) on ${topic}`, () => of().length >= n, timeoutMs);
      return of();
    },
    async end() {
      await client.endAsync(true);
    },
  };
  client.on('message', (topic, payload, packet) => t.messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }));
  client.on('close', () => {
    t.closed = true;
  });
  client.on('error', () => undefined);
  return t;
}

/** The CONNACK return code of a refused connection (0 if it was accepted). */
export async function connectCode(port: number, username?: string, password?: string): Promise<number> {
  try {
    const c = await connect(port, username, password);
    await c.end();
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}

/** The granted QoS of each filter (128 = refused, MQTT 3.1.1 §3.9.3). */
export async function subscribeCodes(c: TestClient, filters: string[]): Promise<number[]> {
  try {
    const granted = await c.client.subscribeAsync(filters, { qos: 1 });
    return filters.map((f) => granted.find((g) => g.topic === f)?.qos ?? -1);
  } catch (err) {
    // mqtt.js rejects when any return code is 0x80; the SUBACK is on the error, in filter order
    const granted = (err as { packet?: { granted?: unknown } }).packet?.granted;
    if (!Array.isArray(granted)) throw err;
    return granted.map((g: unknown) => (typeof g === 'number' ? g : -1));
  }
}
