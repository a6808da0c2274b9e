/**
 * A simulated LoRaWAN 1.0.3 class A/C streetlight node: real encrypted, MIC-signed uplinks
 * (ABP, or OTAA after a join), downlinks decrypted and applied, the new state reported in
 * the next status uplink. It uses lora-packet as a device-side stack would use LMIC.
 *
 * Its device side of issue 18: the MAC (mac.ts: requests in FOpts or on FPort 0 applied and
 * answered in the next uplink's FOpts, or on FPort 0 when they do not fit; the ADR bit; its own
 * LinkCheckReq and DeviceTimeReq), and the application layer: TS003 clock sync (clockSync.ts),
 * TS005 multicast (multicast.ts), TS004 fragmentation v1 or v2 (fragmentation.ts), TS006 firmware
 * management and reboots (firmware.ts). A node that must answer asks for an uplink `answerDelayMs`
 * later (`onUplinkWanted`), as a class A device does, instead of waiting for its periodic report.
 * Its time is its own (`clockOffsetMs` off the simulator's clock until corrected). Faults: `lies`
 * (boots its old version), `memoryBytes`, `mute` (no FragSessionStatusAns), `downlinkLoss`
 * (each frame on the air missed with that probability, seeded), `refuseAdr`.
 */
import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { systemClock, type Timer } from '../../clock.js';
import { FPORT_CLOCK_SYNC, FPORT_FIRMWARE, FPORT_FRAGMENTATION, FPORT_MULTICAST } from '../../drivers/lorawan/app/types.js';
import { loraPacket, type LoraPacket } from '../../drivers/lorawan/loraPacket.js';
import { decodeMacDownlink, encodeMacUplink } from '../../drivers/lorawan/mac/commands.js';
import { FOPTS_MAX } from '../../drivers/lorawan/mac/types.js';
import { dataRate, datrString, drIndex, parseDatr } from '../../drivers/lorawan/region/eu868.js';
import { fCntMsb } from '../../drivers/lorawan/uplink/fcnt.js';
import {
  COMMAND_FPORT,
  decodeCommand,
  encodeStatus,
  STATUS_FPORT,
  type StreetlightCommand,
  type StreetlightStatus,
} from '../../profiles/loraStreetlight.js';
import { rng } from '../modbus/random.js';
import { ClockSyncPackage } from './clockSync.js';
import { FirmwarePackage, type RebootPlan } from './firmware.js';
import { FragmentationPackage } from './fragmentation.js';
import { counterAtLeast, fCnt16, micOk, plainPayload } from './frames.js';
import { NodeClock, NodeHost } from './host.js';
import { NodeMac, type NodeRadio } from './mac.js';
import { MulticastPackage, type HeardOn } from './multicast.js';
import { NODE_DEFAULTS, newNodeStats, type SimNodeConfig, type SimNodeOptions, type SimNodeStats } from './nodeOptions.js';

export type { HeardOn } from './multicast.js';
export type { SimNodeConfig, SimNodeOptions, SimNodeStats } from './nodeOptions.js';

/** rated lamp power at 100 % */
const RATED_W = 60;
const MAX_MAC_LOG = 200;
/** LoRaWAN 1.0.3 §4.2.1 MType */
const MTYPE = { joinAccept: 1, unconfirmedDown: 3, confirmedDown: 5 } as const;

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
  readonly stats: SimNodeStats = newNodeStats();
  /** called when a command was applied (the simulator sends the report soon) */
  onCommand: ((c: StreetlightCommand) => void) | null = null;
  /** called when the node has something to send: the simulator sends its next uplink `delayMs` from now */
  onUplinkWanted: ((delayMs: number) => void) | null = null;
  /** uplink SNR (dB) at TX power index 0 (tests change it at run time, e.g. for ADR) */
  snr: number;
  readonly clock: NodeClock;
  private readonly opts: SimNodeOptions;
  private readonly mac: NodeMac;
  private readonly clockSync: ClockSyncPackage;
  private readonly multicast: MulticastPackage;
  private readonly fragmentation: FragmentationPackage;
  private readonly firmware: FirmwarePackage;
  private readonly host: NodeHost;
  private readonly lossRandom: () => number;
  /** the frequency (Hz) of the last uplink: RX1 listens there */
  private txFreqHz = 868_100_000;
  /** the node's GPS ms when its last DeviceTimeReq went up */
  private deviceTimeAskedAt: number | null = null;
  /** a programmed reboot: bumped to cancel it */
  private rebootPlan = 0;
  private rebootAfterAnswer = false;
  /** rebooting: silent until the wake timer fires */
  private wakeTimer: Timer | null = null;
  private stopped = false;

  constructor(cfg: SimNodeConfig, opts: SimNodeOptions = {}) {
    this.cfg = cfg;
    this.opts = opts;
    this.snr = opts.snr ?? NODE_DEFAULTS.snr;
    const seed = opts.seed ?? crc32(cfg.devEui.toLowerCase());
    this.lossRandom = rng(seed ^ 0x5eed_1055);
    this.clock = new NodeClock(opts.clock ?? systemClock, opts.clockOffsetMs ?? 0);
    this.mac = new NodeMac({ ...opts, adr: opts.adr ?? cfg.adr ?? false });
    const host = new NodeHost({
      clock: this.clock,
      random: rng(seed),
      answerDelayMs: this.answerDelayMs,
      wantUplink: (ms) => this.wantUplink(ms),
      dropped: () => this.stats.droppedAnswers++,
    });
    this.host = host;
    const genAppKeyHex = opts.genAppKey ?? cfg.genAppKey;
    const genAppKey = genAppKeyHex ? Buffer.from(genAppKeyHex, 'hex') : null;
    this.clockSync = new ClockSyncPackage(host, this.stats);
    this.multicast = new MulticastPackage(host, genAppKey, this.stats);
    this.firmware = new FirmwarePackage(
      host,
      { version: opts.version ?? NODE_DEFAULTS.version, hwVersion: opts.hwVersion ?? NODE_DEFAULTS.hwVersion, lies: opts.lies ?? false },
      (plan) => this.planReboot(plan),
    );
    this.fragmentation = new FragmentationPackage(
      host,
      { version: opts.fragVersion ?? NODE_DEFAULTS.fragVersion, memoryBytes: opts.memoryBytes ?? NODE_DEFAULTS.memoryBytes, mute: opts.mute ?? false, genAppKey },
      this.stats,
      (data, ok) => this.firmware.setImage(data, ok),
    );
    if (cfg.activation === 'abp') {
      this.devAddr = cfg.devAddr!.toLowerCase();
      this.nwkSKey = Buffer.from(cfg.nwkSKey!, 'hex');
      this.appSKey = Buffer.from(cfg.appSKey!, 'hex');
      this.stats.joined = true;
      if (opts.clockSync) this.clockSync.request();
    } else {
      this.devAddr = null;
      this.nwkSKey = null;
      this.appSKey = null;
    }
  }

  get joined(): boolean {
    return this.stats.joined;
  }

  /** Rebooting: it neither sends nor hears anything. */
  get silent(): boolean {
    return this.wakeTimer !== null;
  }

  /** The firmware version it runs (and reports). */
  get firmwareVersion(): number {
    return this.firmware.version;
  }

  /** What it transmits and listens with now (data rate, power, RX windows, …). */
  get radio(): Readonly<NodeRadio> {
    return this.mac.radio;
  }

  /** Multicast addresses of its groups, by McGroupID. */
  get multicastGroups(): (string | null)[] {
    return this.multicast.addresses();
  }

  /** Whether a class C multicast session is open now on its clock. */
  get multicastListening(): boolean {
    return this.multicast.listening();
  }

  /** Application-layer uplinks waiting to be sent (answers, AppTimeReq, DevVersionAns after a boot). */
  get queuedUplinks(): number {
    return this.host.queued;
  }

  /** LoRaWAN 1.0.3 §5.1: a LinkCheckReq in the next uplink (which it asks for now). */
  requestLinkCheck(): void {
    this.mac.requestLinkCheck();
    this.wantUplink(0);
  }

  /** LoRaWAN 1.0.3 §5.9: a DeviceTimeReq in the next uplink; the answer sets its clock. */
  requestDeviceTime(): void {
    this.mac.requestDeviceTime();
    this.wantUplink(0);
  }

  /** TS003 §3.2: an AppTimeReq (AnsRequired) in its next uplink. */
  requestAppTime(): void {
    this.clockSync.request(true);
  }

  /** Stops its timers (the simulator stops). */
  stop(): void {
    this.stopped = true;
    this.host.stop();
    if (this.wakeTimer) this.clock.base.clearTimeout(this.wakeTimer);
  }

  /**
   * The next frame to send: a Join Request until joined; then the first queued answer (or a
   * status uplink) with the MAC commands in FOpts, or those alone on FPort 0 when they do not fit
   * in FOpts (§4.3.1.6; the answer goes in the frame after).
   */
  nextUplink(opts: { confirmed?: boolean; elapsedH?: number } = {}): Buffer {
    if (!this.joined) return this.joinRequest();
    if (opts.elapsedH) this.state.energy += (this.state.power * opts.elapsedH) / 1000;
    const channels = this.mac.uplinkChannels();
    this.txFreqHz = channels[Math.floor(this.host.random() * channels.length)]!;
    const macCmds = this.mac.takeUplink();
    if (macCmds.some((c) => c.cid === 'DeviceTimeReq')) this.deviceTimeAskedAt = this.clock.gpsMs();
    const macBytes = encodeMacUplink(macCmds);
    const onPort0 = macBytes.length > FOPTS_MAX;
    const app = onPort0 ? { fPort: 0, payload: macBytes } : (this.host.next() ?? { fPort: STATUS_FPORT, payload: encodeStatus(this.state) });
    const fCnt = this.fCntUp;
    const p = loraPacket.fromFields(
      {
        MType: opts.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
        DevAddr: Buffer.from(this.devAddr!, 'hex'),
        FCtrl: { ADR: this.mac.adr, ACK: this.ackPending, ADRACKReq: this.mac.countUplink(), FPending: false },
        FCnt: fCnt & 0xffff,
        ...(onPort0 || macBytes.length === 0 ? {} : { FOpts: macBytes }),
        FPort: app.fPort,
        payload: app.payload,
      },
      this.appSKey!,
      this.nwkSKey!,
      undefined,
      fCntMsb(fCnt),
    );
    this.ackPending = false;
    this.fCntUp = fCnt + 1;
    this.stats.uplinks++;
    this.afterUplink();
    return p.getPHYPayload()!;
  }

  /** The radio of the last uplink as a forwarder hears it: the SNR and RSSI fall 2 dB per TX power index step. */
  uplinkRadio(): { freq: number; datr: string; lsnr: number; rssi: number } {
    const backoff = 2 * this.mac.radio.txPowerIndex;
    return {
      freq: this.txFreqHz / 1e6,
      datr: datrString(dataRate(this.mac.radio.dr)),
      lsnr: this.snr - backoff,
      rssi: (this.opts.rssi ?? NODE_DEFAULTS.rssi) - backoff,
    };
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

  /**
   * A frame on the air: the node misses it with probability `downlinkLoss` (its own seeded
   * source), else receives it. Returns true when the node took it as its own.
   */
  hear(phy: Buffer, txpk?: { freq: number; datr: string }): boolean {
    const lost = this.lossRandom() < (this.opts.downlinkLoss ?? 0);
    if (!lost) return this.receive(phy, txpk ? heardOn(txpk) : null);
    if (this.addressedToMe(phy)) this.stats.lostDownlinks++;
    return false;
  }

  /**
   * Handles a frame from the air; returns true when it was for this node (its DevAddr, one of its
   * multicast groups, or the answer to its Join Request). `on`: the radio it came on; when given,
   * a unicast frame is heard only on its RX1 (uplink frequency, DR − RX1DROffset) or RX2 parameters.
   */
  receive(phy: Buffer, on: HeardOn | null = null): boolean {
    let p;
    try {
      p = loraPacket.fromWire(phy);
    } catch {
      return false;
    }
    const mtype = (p.MHDR![0]! >> 5) & 0x07;
    if (this.silent) {
      if (this.addressedToMe(phy)) this.stats.missedDownlinks++;
      return false;
    }
    if (mtype === MTYPE.joinAccept) return this.joinAccept(p);
    if (mtype !== MTYPE.unconfirmedDown && mtype !== MTYPE.confirmedDown) return false;
    if (this.joined && p.DevAddr?.toString('hex') === this.devAddr) return this.unicast(p, mtype === MTYPE.confirmedDown, on);
    const m = this.multicast.receive(p, on);
    if (m === undefined) return false;
    if (m && m.fPort !== null) this.dispatch(m.fPort, m.payload, m.mcGroupId);
    return true;
  }

  private unicast(p: LoraPacket, confirmed: boolean, on: HeardOn | null): boolean {
    if (on && !this.inRxWindow(on)) {
      this.stats.missedDownlinks++;
      return true;
    }
    const full = counterAtLeast(this.lastFCntDown === null ? 0 : this.lastFCntDown + 1, fCnt16(p));
    if (!micOk(p, this.nwkSKey!, full)) {
      this.stats.badDownlinks++;
      return true;
    }
    this.lastFCntDown = full;
    this.stats.downlinks++;
    this.mac.heardDownlink();
    if (p.getFCtrlACK()) this.stats.acksReceived++;
    if (confirmed) this.ackPending = true;
    const fPort = p.getFPort();
    const payload = plainPayload(p, this.appSKey!, this.nwkSKey!, full);
    // §4.3.1.6, §5: MAC commands in FOpts, or as the (NwkSKey-encrypted) payload of FPort 0
    this.macCommands(p.FOpts ?? Buffer.alloc(0));
    if (fPort === 0) this.macCommands(payload);
    else if (fPort !== null) this.dispatch(fPort, payload, null);
    if (this.mac.hasPending || p.getFCtrlFPending()) this.wantUplink(this.answerDelayMs);
    return true;
  }

  /** RX1: the last uplink's frequency at its DR − RX1DROffset; RX2 (and class C): the RX2 parameters (RP002 §2.4.7). */
  private inRxWindow(on: HeardOn): boolean {
    const r = this.mac.radio;
    const rx1 = on.freqHz === this.txFreqHz && on.dr === Math.max(0, r.dr - r.rx1DrOffset);
    return rx1 || (on.freqHz === r.rx2FreqHz && on.dr === r.rx2Dr);
  }

  private macCommands(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const { commands, error } = decodeMacDownlink(bytes);
    if (error !== null) this.stats.macErrors++;
    for (const c of commands) this.stats.macReceived.push(c.cid);
    this.stats.macReceived.splice(0, Math.max(0, this.stats.macReceived.length - MAX_MAC_LOG));
    this.mac.handle(commands, {
      downlinkSnr: this.opts.downlinkSnr ?? this.snr,
      records: this.stats,
      at: this.clock.base.now(),
      onDeviceTime: (gpsMs) => {
        // §5.9: the answer is the GPS time the network received the DeviceTimeReq's uplink
        if (this.deviceTimeAskedAt !== null) this.clock.correct(gpsMs - this.deviceTimeAskedAt);
        this.deviceTimeAskedAt = null;
      },
    });
  }

  /** An application payload: the streetlight's commands, or a TS003–TS006 package (unicast only but TS004). */
  private dispatch(fPort: number, payload: Buffer, mcGroupId: number | null): void {
    let ok = true;
    if (fPort === COMMAND_FPORT && payload.length > 0) {
      try {
        this.apply(decodeCommand(payload));
      } catch {
        this.stats.badDownlinks++;
      }
      return;
    }
    if (fPort === FPORT_FRAGMENTATION) ok = this.fragmentation.handle(payload, mcGroupId);
    else if (mcGroupId !== null) return; // TS003, TS005, TS006 take no multicast command
    else if (fPort === FPORT_MULTICAST) ok = this.multicast.handle(payload);
    else if (fPort === FPORT_CLOCK_SYNC) ok = this.clockSync.handle(payload);
    else if (fPort === FPORT_FIRMWARE) ok = this.firmware.handle(payload);
    if (!ok) this.stats.appErrors++;
  }

  private joinAccept(p: LoraPacket): boolean {
    if (this.cfg.activation !== 'otaa' || this.joinNonceSent === null) return false;
    const appKey = Buffer.from(this.cfg.appKey!, 'hex');
    let ja;
    try {
      // LoRaWAN 1.0.3 §6.2.5: the device AES-encrypts the message to read it.
      ja = loraPacket.fromWire(loraPacket.decryptJoinAccept(p, appKey));
    } catch {
      return false;
    }
    // for another node: its MIC fails, or lora-packet throws on what our key decrypted to
    // ("Expected JoinEUI to be defined"), which must not end the simulator
    try {
      if (!loraPacket.verifyMIC(ja, undefined, appKey)) return false;
    } catch {
      return false;
    }
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
    // §6.2.5: DLSettings (RX1DROffset bits 6:4, RX2 DR bits 3:0) and RxDelay (0 means 1 s); the CFList is not read
    const dl = byteOf(ja.DLSettings);
    const rxDelay = byteOf(ja.RxDelay) & 0x0f;
    this.mac.reset({ rx1DrOffset: (dl >> 4) & 0x07, rx2Dr: dl & 0x0f, rx1Delay: rxDelay === 0 ? 1 : rxDelay });
    if (this.opts.clockSync) this.clockSync.request();
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

  private get answerDelayMs(): number {
    return this.opts.answerDelayMs ?? NODE_DEFAULTS.answerDelayMs;
  }

  private wantUplink(delayMs: number): void {
    if (!this.stopped) this.onUplinkWanted?.(delayMs);
  }

  /** More to send: ask for the next uplink; a reboot programmed "now" happens once the answers went up. */
  private afterUplink(): void {
    if (this.host.queued > 0 || this.mac.hasPending) this.wantUplink(this.answerDelayMs);
    else if (this.rebootAfterAnswer) this.reboot();
  }

  private planReboot(plan: RebootPlan | null): void {
    const id = ++this.rebootPlan;
    this.rebootAfterAnswer = plan?.at === 'afterAnswer';
    if (plan?.at === 'in') this.host.after(plan.ms, () => id === this.rebootPlan && this.reboot());
  }

  /**
   * TS006: the node reboots. What was in RAM is gone (queued answers, MAC answers, timers,
   * fragmentation sessions, class C sessions); the LoRaWAN session, the multicast groups and the
   * image slot's outcome persist. Silent for `rebootMs`, then it runs the image if valid (a liar
   * its old version) and reports it at once (DevVersionAns, as ST's TS006 implementation does at boot).
   */
  reboot(): void {
    this.rebootPlan++;
    this.rebootAfterAnswer = false;
    this.host.clear();
    this.mac.forget();
    this.multicast.endSessions();
    this.fragmentation.reset();
    this.firmware.boot();
    this.stats.reboots++;
    const t = this.clock.base.setTimeout(() => this.wake(), this.opts.rebootMs ?? NODE_DEFAULTS.rebootMs);
    t.unref?.();
    this.wakeTimer = t;
  }

  private wake(): void {
    this.wakeTimer = null;
    if (this.stopped) return;
    this.host.send(FPORT_FIRMWARE, this.firmware.versionAnswer());
    if (this.opts.clockSync) this.clockSync.request();
  }

  /** The frame's DevAddr is the node's or one of its multicast groups' (without decoding further). */
  private addressedToMe(phy: Buffer): boolean {
    if (phy.length < 5) return false;
    const addr = Buffer.from(phy.subarray(1, 5)).reverse().toString('hex');
    return addr === this.devAddr || this.multicast.addresses().includes(addr);
  }
}

/** A txpk's frequency (MHz) and data rate string as Hz and EU868 DR (−1: none). */
function heardOn(txpk: { freq: number; datr: string }): HeardOn {
  const dr = parseDatr(txpk.datr);
  return { freqHz: Math.round(txpk.freq * 1e6), dr: dr ? (drIndex(dr) ?? -1) : -1 };
}

function byteOf(v: Buffer | number | undefined): number {
  return typeof v === 'number' ? v : (v?.[0] ?? 0);
}
