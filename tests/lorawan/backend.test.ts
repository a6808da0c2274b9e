/**
 * The radio side behind a port: a GatewayBackend that records what would have been sent
 * (as ChirpStack's tests read back gateway frames), and the forwarder registry of the UDP
 * backend under a moved clock: an address is kept while PULL_DATA keepalives come.
 */
import { describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import type { GatewayBackend, GatewayBackendHandlers, ForwarderInfo } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { pullData, type TxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { UdpGatewayBackend } from '../../edge/drivers/lorawan/semtech/udp.js';
import { silentLogger } from '../../edge/log.js';
import { FakeClock } from '../support/fakeClock.js';
import { makeContext } from '../helpers/context.js';
import { ABP, GW, dataUp, loraConfig, rxpk, waitFor } from './support.js';

class RecordingBackend implements GatewayBackend {
  h: GatewayBackendHandlers | null = null;
  sent: { gatewayEui: string; txpk: TxPk; token: number }[] = [];
  async start(h: GatewayBackendHandlers) {
    this.h = h;
  }
  /** the handlers the driver started this backend with */
  get handlers(): GatewayBackendHandlers {
    if (!this.h) throw new Error('the backend was not started');
    return this.h;
  }
  async stop() {}
  port() {
    return 0;
  }
  canSend() {
    return true;
  }
  send(gatewayEui: string, txpk: TxPk) {
    const token = this.sent.length + 1;
    this.sent.push({ gatewayEui, txpk, token });
    return token;
  }
  forwarders(): ForwarderInfo[] {
    return [{ gatewayEui: GW, address: '127.0.0.1', port: 1, version: 2, lastPullAt: 0, lastPushAt: 0 }];
  }
}

describe('GatewayBackend port', () => {
  it('scenario: a queued dim command goes out in RX1 of the next uplink, read back from the backend', async () => {
    const t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    const backend = new RecordingBackend();
    const driver = createLorawanDriver(t.ctx, { backend });
    await driver.start();
    try {
      const { id } = driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 55 });
      backend.handlers.uplink({ gatewayEui: GW, rxpk: rxpk(dataUp(ABP, 7), { tmst: 123, freq: 868.3, datr: 'SF10BW125' }), receivedAt: performance.now() });
      expect(backend.sent).toHaveLength(1);
      const { txpk } = backend.sent[0]!;
      expect(txpk).toMatchObject({ tmst: 1_000_123, freq: 868.3, datr: 'SF10BW125', ipol: true, imme: false });
      const p = loraPacket.fromWire(Buffer.from(txpk.data, 'base64'));
      expect(p.getFPort()).toBe(10);
      expect(loraPacket.decrypt(p, Buffer.from(ABP.appSKey, 'hex'), Buffer.from(ABP.nwkSKey, 'hex')).toString('hex')).toBe('0137');
      await waitFor('lorawan.downlink.sent', () => t.events.some((e) => e.kind === 'lorawan.downlink.sent' && e.detail.id === id), 2000);
      // TX_ACK errors are matched by token; an unknown token is counted.
      backend.handlers.txAck(GW, 999, 'NONE');
      expect(driver.metrics().rejected.unknown_tx_ack).toBe(1);
    } finally {
      await driver.stop();
      await t.close();
    }
  });
});

describe('forwarder registry (UDP backend)', () => {
  it('keeps a forwarder address while its keepalives come, forgets it 3 min after they stop', async () => {
    const clock = new FakeClock();
    const b = new UdpGatewayBackend({ host: '127.0.0.1', port: 0, clock, log: silentLogger() });
    await b.start({ datagram() {}, uplink() {}, stat() {}, txAck() {}, rejected() {} });
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const acks: Buffer[] = [];
    s.on('message', (m) => acks.push(m));
    try {
      for (let i = 0; i < 30; i++) {
        // a keepalive every 10 s for 5 minutes
        s.send(pullData(2, i, GW), b.port(), '127.0.0.1');
        await waitFor('PULL_ACK', () => acks.length === i + 1, 2000);
        await clock.advance(10_000);
        expect(b.canSend(GW)).toBe(true);
      }
      expect(b.forwarders()[0]).toMatchObject({ gatewayEui: GW, address: '127.0.0.1', port: s.address().port, version: 2 });
      await clock.advance(170_000);
      expect(b.canSend(GW)).toBe(true);
      await clock.advance(11_000);
      expect(b.canSend(GW)).toBe(false);
      expect(() => b.send(GW, rxpk(Buffer.alloc(12)) as never)).toThrow(expect.objectContaining({ code: 'E_LORA_TX', reason: 'no_forwarder' }));
    } finally {
      s.close();
      await b.stop();
    }
  });
});
