/**
 * A simulated LoRaWAN 1.0.3 class A/C streetlight node: real encrypted, MIC-signed uplinks
 * (ABP, or OTAA after a join), downlinks decrypted and applied, the new state reported in
 * the next status uplink. It uses lora-packet as a device-side stack would use LMIC.
 */
import { randomInt } from 'node:crypto';
import { loraPacket } from '../../drivers/lorawan/loraPacket.js';
import { fCntMsb } from '../../drivers/lorawan/uplink/fcnt.js';
import {
  COMMAND_FPORT,
  decodeCommand,
  encodeStatus,
  STATUS_FPORT,
  type StreetlightCommand,
  type StreetlightStatus,
} from '../../profiles/loraStreetlight.js';

export interface SimNodeConfig {
  id: string;
  devEui: string;
  activation: 'abp' | 'otaa';
  class?: 'A' | 'C';
  devAddr?: string | undefined;
  nwkSKey?: string | undefined;
  appSKey?: string | undefined;
  joinEui?: string | undefined;
  appKey?: string | undefined;
}

export interface SimNodeStats {
  uplinks: number;
  joinRequests: number;
  joined: boolean;
  downlinks: number;
  commands: StreetlightCommand[];
  acksReceived: number;
  badDownlinks: number;
}

/** rated lamp power at 100 % */
const RATED_W = 60;

export class SimNode {
  readonly cfg: SimNodeConfig;
  devAddr: string | null;
  private nwkSKey: Buffer | null;
  private appSKey: Buffer | null;
  /** next uplink counter (32-bit) */
  fCntUp = 0;
  private lastFCntDown: number | null = null;
  private devNonce = randomInt(0, 0x10000);
  private joinNonceSent: number | null = null;
  /** set by a confirmed downlink: the next uplink carries FCtrl.ACK */
  private ackPending = false;
  readonly state: StreetlightStatus = {
    dimLevel: 100,
    power: RATED_W,
    energy: 0,
    lampOn: true,
    lampFailure: false,
    driverFault: false,
    mainsFailure: false,
    manualOverride: false,
    scheduleId: 0,
    temperature: 31,
  };
  readonly stats: SimNodeStats = { uplinks: 0, joinRequests: 0, joined: false, downlinks: 0, commands: [], acksReceived: 0, badDownlinks: 0 };
  /** called when a command was applied (the simulator sends the report soon) */
  onCommand: ((c: StreetlightCommand) => void) | null = null;

  constructor(cfg: SimNodeConfig) {
    this.cfg = cfg;
    if (cfg.activation === 'abp') {
      this.devAddr = cfg.devAddr!.toLowerCase();
      this.nwkSKey = Buffer.from(cfg.nwkSKey!, 'hex');
      this.appSKey = Buffer.from(cfg.appSKey!, 'hex');
      this.stats.joined = true;
    } else {
      this.devAddr = null;
      this.nwkSKey = null;
      this.appSKey = null;
    }
  }

  get joined(): boolean {
    return this.stats.joined;
  }

  /** The next frame to send: a Join Request until joined, then a status uplink. */
  nextUplink(opts: { confirmed?: boolean; elapsedH?: number } = {}): Buffer {
    if (!this.joined) return this.joinRequest();
    if (opts.elapsedH) this.state.energy += (this.state.power * opts.elapsedH) / 1000;
    const fCnt = this.fCntUp;
    const p = loraPacket.fromFields(
      {
        MType: opts.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
        DevAddr: Buffer.from(this.devAddr!, 'hex'),
        FCtrl: { ADR: false, ACK: this.ackPending, ADRACKReq: false, FPending: false },
        FCnt: fCnt & 0xffff,
        FPort: STATUS_FPORT,
        payload: encodeStatus(this.state),
      },
      this.appSKey!,
      this.nwkSKey!,
      undefined,
      fCntMsb(fCnt),
    );
    this.ackPending = false;
    this.fCntUp = fCnt + 1;
    this.stats.uplinks++;
    return p.getPHYPayload()!;
  }

  /** LoRaWAN 1.0.3 §6.2.4: a fresh DevNonce per Join Request. */
  joinRequest(): Buffer {
    this.devNonce = (this.devNonce + 1) & 0xffff;
    this.joinNonceSent = this.devNonce;
    const nonce = Buffer.alloc(2);
    nonce.writeUInt16BE(this.devNonce);
    const p = loraPacket.fromFields(
      { MType: 'Join Request', AppEUI: Buffer.from(this.cfg.joinEui!, 'hex'), DevEUI: Buffer.from(this.cfg.devEui, 'hex'), DevNonce: nonce },
      undefined,
      undefined,
      Buffer.from(this.cfg.appKey!, 'hex'),
    );
    this.stats.joinRequests++;
    return p.getPHYPayload()!;
  }

  /** A Join Request repeating the last DevNonce (for tests of its rejection). */
  replayJoinRequest(): Buffer {
    this.devNonce = (this.devNonce - 1) & 0xffff;
    return this.joinRequest();
  }

  /** Handles a frame from the air; returns true when it was for this node. */
  receive(phy: Buffer): boolean {
    let p;
    try {
      p = loraPacket.fromWire(phy);
    } catch {
      return false;
    }
    const mtype = (p.MHDR![0]! >> 5) & 0x07;
    if (mtype === 1) return this.joinAccept(p);
    if (mtype !== 3 && mtype !== 5) return false;
    if (!this.joined || p.DevAddr?.toString('hex') !== this.devAddr) return false;
    const fCnt16 = p.FCnt!.readUInt16BE(0);
    const last = this.lastFCntDown;
    let full = last === null ? fCnt16 : Math.floor(last / 0x10000) * 0x10000 + fCnt16;
    if (last !== null && full <= last) full += 0x10000;
    if (!loraPacket.verifyMIC(p, this.nwkSKey!, undefined, fCntMsb(full))) {
      this.stats.badDownlinks++;
      return true;
    }
    this.lastFCntDown = full;
    this.stats.downlinks++;
    if (p.getFCtrlACK()) this.stats.acksReceived++;
    if (mtype === 5) this.ackPending = true; // confirmed data down
    if (p.getFPort() === COMMAND_FPORT && p.FRMPayload && p.FRMPayload.length > 0) {
      const plain = loraPacket.decrypt(p, this.appSKey!, this.nwkSKey!, fCntMsb(full));
      try {
        this.apply(decodeCommand(plain));
      } catch {
        this.stats.badDownlinks++;
      }
    }
    return true;
  }

  private joinAccept(p: ReturnType<typeof loraPacket.fromWire>): boolean {
    if (this.cfg.activation !== 'otaa' || this.joinNonceSent === null) return false;
    const appKey = Buffer.from(this.cfg.appKey!, 'hex');
    let ja;
    try {
      // LoRaWAN 1.0.3 §6.2.5: the device AES-encrypts the message to read it.
      ja = loraPacket.fromWire(loraPacket.decryptJoinAccept(p, appKey));
    } catch {
      return false;
    }
    if (!loraPacket.verifyMIC(ja, undefined, appKey)) return false; // for another node
    const nonce = Buffer.alloc(2);
    nonce.writeUInt16BE(this.joinNonceSent);
    const keys = loraPacket.generateSessionKeys10(appKey, ja.NetID!, ja.AppNonce!, nonce);
    this.nwkSKey = keys.NwkSKey;
    this.appSKey = keys.AppSKey;
    this.devAddr = ja.DevAddr!.toString('hex');
    this.fCntUp = 0;
    this.lastFCntDown = null;
    this.joinNonceSent = null;
    this.stats.joined = true;
    return true;
  }

  apply(c: StreetlightCommand): void {
    switch (c.action) {
      case 'dim':
        this.state.dimLevel = c.level;
        this.state.lampOn = c.level > 0;
        break;
      case 'on':
        this.state.lampOn = true;
        if (this.state.dimLevel === 0) this.state.dimLevel = 100;
        break;
      case 'off':
        this.state.lampOn = false;
        break;
      case 'schedule':
        this.state.scheduleId = c.scheduleId;
        break;
    }
    this.state.power = this.state.lampOn ? (RATED_W * this.state.dimLevel) / 100 : 0;
    this.stats.commands.push(c);
    this.onCommand?.(c);
  }
}
