/**
 * The LoRaWAN simulator on the air (edge/sim/lorawan/index.ts, forwarder.ts): real UDP on
 * loopback between its packet forwarder and a bare Semtech UDP peer standing in for the network
 * server (this test's, so the frames and TX_ACKs are read back as sent). TX_ACK errors at a seeded
 * rate (a refused PULL_RESP is not transmitted), multicast frames heard by every node, each with
 * its own seeded loss, answers sent soon after a request, and the simulator's timing on its clock.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { scaledClock, systemClock } from '../../edge/clock.js';
import { encryptMcKey, mcSessionKeys } from '../../edge/drivers/lorawan/app/keys.js';
import { encodeMulticastDown } from '../../edge/drivers/lorawan/app/multicast.js';
import { FPORT_MULTICAST } from '../../edge/drivers/lorawan/app/types.js';
import { buildDataDownlink } from '../../edge/drivers/lorawan/downlink/data.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { decodeMacUplink, encodeMacDownlink } from '../../edge/drivers/lorawan/mac/commands.js';
import { unixToGpsMs, type MacDownlink } from '../../edge/drivers/lorawan/mac/types.js';
import { ack, parseDatagram, pullResp, PULL_ACK, PUSH_ACK, type TxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { silentLogger } from '../../edge/log.js';
import { COMMAND_FPORT, encodeCommand } from '../../edge/profiles/loraStreetlight.js';
import { startLorawanSimulator, type LorawanSimulator, type LorawanSimulatorOptions, type SimNodeConfig } from '../../edge/sim/lorawan/index.js';
import { waitFor } from '../helpers/wait.js';

const KEY = (b: number) => Buffer.alloc(16, b).toString('hex');
const node = (i: number): SimNodeConfig => ({
  id: `lamp-${i}`,
  devEui: `70b3d57ed00002${i.toString(16).padStart(2, '0')}`,
  activation: 'abp',
  devAddr: `260112${i.toString(16).padStart(2, '0')}`,
  nwkSKey: KEY(0x10 + i),
  appSKey: KEY(0x20 + i),
  genAppKey: KEY(0x30 + i),
});

/** A bare Semtech UDP peer: acknowledges, remembers the forwarder, collects uplinks and TX_ACKs, sends PULL_RESPs. */
class Peer {
  readonly uplinks: Buffer[] = [];
  /** the radio each uplink came on */
  readonly radios: { freq: number; datr: string }[] = [];
  readonly txAcks = new Map<number, string>();
  private socket: dgram.Socket | null = null;
  private forwarder: { address: string; port: number } | null = null;
  private token = 0;

  async start(): Promise<number> {
    const s = dgram.createSocket('udp4');
    s.on('message', (msg, rinfo) => {
      const d = parseDatagram(msg);
      if (d.kind === 'pull_data') {
        this.forwarder = { address: rinfo.address, port: rinfo.port };
        s.send(ack(d.version, d.token, PULL_ACK), rinfo.port, rinfo.address);
      } else if (d.kind === 'push_data') {
        s.send(ack(d.version, d.token, PUSH_ACK), rinfo.port, rinfo.address);
        for (const rx of d.rxpk) {
          this.uplinks.push(Buffer.from(rx.data, 'base64'));
          this.radios.push({ freq: rx.freq, datr: String(rx.datr) });
        }
      } else if (d.kind === 'tx_ack') {
        this.txAcks.set(d.token, d.error);
      }
    });
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    this.socket = s;
    return s.address().port;
  }

  get ready(): boolean {
    return this.forwarder !== null;
  }

  /** A frame for the air now (class C, RX2 radio unless given); returns the PULL_RESP's token. */
  send(phy: Buffer, radio: { freq: number; datr: string } = { freq: 869.525, datr: 'SF12BW125' }): number {
    const txpk: TxPk = { imme: true, rfch: 0, powe: 14, modu: 'LORA', codr: '4/5', ipol: true, size: phy.length, data: phy.toString('base64'), ...radio };
    const token = ++this.token;
    this.socket!.send(pullResp(2, token, txpk), this.forwarder!.port, this.forwarder!.address);
    return token;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** The network's downlinks to one ABP node. */
function downlinks(cfg: SimNodeConfig) {
  let fCntDown = 0;
  return (d: { fOpts?: MacDownlink[]; fPort?: number; payload?: Buffer }): Buffer =>
    buildDataDownlink({
      devAddr: cfg.devAddr!,
      nwkSKey: Buffer.from(cfg.nwkSKey!, 'hex'),
      appSKey: Buffer.from(cfg.appSKey!, 'hex'),
      fCntDown: fCntDown++,
      confirmed: false,
      ack: false,
      fPending: false,
      fPort: d.fPort ?? null,
      payload: d.payload ?? Buffer.alloc(0),
      ...(d.fOpts ? { fOpts: encodeMacDownlink(d.fOpts) } : {}),
    });
}

let peer: Peer | null = null;
let sim: LorawanSimulator | null = null;
afterEach(async () => {
  await sim?.stop();
  await peer?.stop();
  sim = null;
  peer = null;
});

async function start(opts: Partial<LorawanSimulatorOptions> & { devices: SimNodeConfig[] }): Promise<{ peer: Peer; sim: LorawanSimulator }> {
  peer = new Peer();
  const port = await peer.start();
  sim = await startLorawanSimulator({ port, host: '127.0.0.1', uplinkIntervalMs: 60_000, keepaliveMs: 200, log: silentLogger(), ...opts });
  const p = peer;
  await waitFor('the forwarder’s PULL_DATA', () => p.ready);
  return { peer: p, sim };
}

describe('the simulated forwarder and the air', () => {
  it('refuses PULL_RESPs with seeded TX_ACK errors and transmits only the others; the same seed, the same errors', async () => {
    const run = async (seed: number) => {
      const cfg = node(1);
      const { peer: p, sim: s } = await start({ devices: [cfg], radio: { txAckErrors: { rate: 0.4, errors: ['TOO_LATE', 'COLLISION_PACKET', 'TX_FREQ'] }, seed } });
      const down = downlinks(cfg);
      const tokens = Array.from({ length: 40 }, () => p.send(down({ fOpts: [{ cid: 'DutyCycleReq', maxDCycle: 0 }] })));
      await waitFor('40 TX_ACKs', () => p.txAcks.size === 40);
      const errors = tokens.map((t) => p.txAcks.get(t)!);
      const sent = errors.filter((e) => e === 'NONE').length;
      expect(s.forwarders[0]!.received).toHaveLength(sent);
      await waitFor('the node heard every frame transmitted', () => s.nodes[0]!.stats.downlinks === sent);
      const refused = Object.fromEntries(['TOO_LATE', 'COLLISION_PACKET', 'TX_FREQ'].map((e) => [e, errors.filter((x) => x === e).length]).filter(([, n]) => n));
      expect(s.forwarders[0]!.txAckErrorCounts).toEqual(refused);
      await s.stop();
      await p.stop();
      return errors;
    };
    const first = await run(5);
    expect(first.filter((e) => e !== 'NONE').length).toBeGreaterThan(5);
    expect(first.filter((e) => e !== 'NONE').length).toBeLessThan(30);
    expect(await run(5)).toEqual(first);
  });

  it('a class A node answers a MAC request in an uplink soon after, not at its next periodic report', async () => {
    const cfg = node(2);
    const { peer: p } = await start({ devices: [cfg], nodeOptions: { answerDelayMs: 100 } });
    await waitFor('the first status uplink', () => p.uplinks.length >= 1, 5000);
    const first = loraPacket.fromWire(p.uplinks[0]!);
    expect(first.getFPort()).toBe(2);
    // RX1: the uplink's frequency and data rate (RX1DROffset 0)
    p.send(downlinks(cfg)({ fOpts: [{ cid: 'DevStatusReq' }] }), p.radios[0]!);
    const answer = await waitFor('the answer', () => p.uplinks.slice(1).find((u) => decodeMacUplink(loraPacket.fromWire(u).FOpts!).commands.some((c) => c.cid === 'DevStatusAns')), 3000);
    expect(decodeMacUplink(loraPacket.fromWire(answer).FOpts!).commands).toContainEqual({ cid: 'DevStatusAns', battery: 0, margin: 7 });
  });

  it('a multicast frame reaches every node of the group, each missing frames with its own seeded loss', async () => {
    const cfgs = [node(3), node(4), node(5)];
    const { peer: p, sim: s } = await start({ devices: cfgs, radio: { downlinkLoss: 0.25, seed: 11 } });
    const mcAddr = '01ffee10';
    const mcKey = Buffer.alloc(16, 0x5a);
    const startS = Math.floor(unixToGpsMs(Date.now()) / 1000) + 1;
    // set up the group on every node by unicast until each took it (the air loses some)
    await waitFor(
      'every node in the group',
      () => {
        for (const [i, cfg] of cfgs.entries()) {
          if (s.nodes[i]!.multicastGroups[0] === mcAddr) continue;
          p.send(
            downlinks(cfg)({
              fPort: FPORT_MULTICAST,
              payload: encodeMulticastDown([
                { cid: 'McGroupSetupReq', mcGroupId: 0, mcAddr, mcKeyEncrypted: encryptMcKey(Buffer.from(cfg.genAppKey!, 'hex'), mcKey), minMcFCnt: 0, maxMcFCnt: 100 },
                { cid: 'McClassCSessionReq', mcGroupId: 0, sessionTime: startS, timeOut: 6, frequency: 869_525_000, dr: 5 },
              ]),
            }),
          );
        }
        return s.nodes.every((n) => n.multicastGroups[0] === mcAddr);
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    await waitFor('the class C sessions open', () => s.nodes.every((n) => n.multicastListening), 3000);
    const keys = mcSessionKeys(mcKey, mcAddr);
    const before = s.forwarders[0]!.received.length;
    for (let fCnt = 0; fCnt < 30; fCnt++) {
      const frame = buildDataDownlink({ devAddr: mcAddr, nwkSKey: keys.mcNwkSKey, appSKey: keys.mcAppSKey, fCntDown: fCnt, confirmed: false, ack: false, fPending: false, fPort: COMMAND_FPORT, payload: encodeCommand({ action: 'dim', level: 30 + fCnt }) });
      p.send(frame, { freq: 869.525, datr: 'SF7BW125' });
    }
    await waitFor('30 frames on the air', () => s.forwarders[0]!.received.length >= before + 30);
    await waitFor('every frame heard or lost by every node', () => s.nodes.every((n) => n.stats.multicastFrames + n.stats.lostDownlinks >= 30));
    const lost = s.nodes.map((n) => n.stats.lostDownlinks);
    expect(lost.some((l) => l > 0)).toBe(true);
    expect(new Set(s.nodes.map((n) => n.stats.commands.map((c) => (c.action === 'dim' ? c.level : -1)).join(','))).size).toBeGreaterThan(1);
  });

  it('runs its timing on the clock it is given (a 10× radio clock: a 5 s uplink interval takes 0.5 s)', async () => {
    const started = Date.now();
    const { peer: p } = await start({ devices: [node(6)], clock: scaledClock(systemClock, 10), uplinkIntervalMs: 5_000 });
    await waitFor('four uplinks', () => p.uplinks.length >= 4, 8000);
    // unscaled, four uplinks would take more than 15 s
    expect(Date.now() - started).toBeLessThan(8000);
  });
});
