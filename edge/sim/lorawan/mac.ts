/**
 * The device side of the LoRaWAN 1.0.3 MAC (§5) for a simulated EU868 node: the radio settings
 * it transmits and listens with, the network's requests applied and answered, and its own
 * requests (LinkCheckReq, DeviceTimeReq). The node (node.ts) hands it the commands of each
 * downlink's FOpts or FPort 0 and takes from it the commands of its next uplink.
 */
import { EU868_MAX_TX_POWER_INDEX } from '../../drivers/lorawan/mac/adr.js';
import type { MacDownlink, MacUplink } from '../../drivers/lorawan/mac/types.js';
import { EU868_RX2_DR, EU868_RX2_FREQ_MHZ } from '../../drivers/lorawan/region/eu868.js';

/** RP002-1.0.3 §2.4.2: the three default channels of every EU868 device (DR0..5); the network cannot change them. */
export const DEFAULT_CHANNELS_HZ = [868_100_000, 868_300_000, 868_500_000] as const;
const MAX_CHANNELS = 16;
/** The LoRa 125 kHz data rates a default channel takes (RP002 §2.4.2). */
const DEFAULT_MAX_DR = 5;
/** RP002 §2.4.3 Table 14: DR0..DR6 are LoRa; this node has no FSK (DR7). */
const MAX_NODE_DR = 6;
/** TS001-1.0.4 §5.3: DataRate or TXPower 0xF in a LinkADRReq keeps the current value. */
const KEEP = 0xf;
/** LoRaWAN 1.0.3 §4.3.1.1: uplinks without any downlink before ADRACKReq, then between back-off steps. */
export const ADR_ACK_LIMIT = 64;
export const ADR_ACK_DELAY = 32;
/** RP002 §2.4.1: EU863-870 */
const BAND_HZ = { min: 863_000_000, max: 870_000_000 };

interface Channel {
  freqHz: number;
  minDr: number;
  maxDr: number;
}

/** What the node runs at: changed by the network's MAC requests, read by the node for each frame. */
export interface NodeRadio {
  dr: number;
  txPowerIndex: number;
  nbTrans: number;
  /** bit i: channel i enabled */
  chMask: number;
  rx1DrOffset: number;
  rx2Dr: number;
  rx2FreqHz: number;
  /** RX1 delay in seconds */
  rx1Delay: number;
  /** aggregated duty cycle 1/2^maxDCycle (0: none) */
  maxDCycle: number;
}

export interface NodeMacOptions {
  /** uplink data rate at start (EU868 DR0..5, default 5: SF7BW125) */
  dr?: number;
  rx1DrOffset?: number;
  rx2Dr?: number;
  rx2FreqHz?: number;
  rx1Delay?: number;
  /** sets the ADR bit; ADRACKReq and the back-off of §4.3.1.1 apply */
  adr?: boolean;
  /** NACKs every LinkADRReq (all three bits clear) */
  refuseAdr?: boolean;
  /** DevStatusAns battery: 0 external power (default: a streetlight is on the mains), 1..254, 255 unknown */
  battery?: number;
}

/** What the node learnt from the answers to its own requests. */
export interface MacRecords {
  linkChecks: { margin: number; gwCnt: number; at: number }[];
  deviceTimes: { gpsMs: number; at: number }[];
}

/** Answers the node keeps sending until it hears a downlink (LoRaWAN 1.0.3 §5.4, §5.7). */
const STICKY: ReadonlySet<MacUplink['cid']> = new Set(['RXParamSetupAns', 'RXTimingSetupAns']);

export class NodeMac {
  radio: NodeRadio;
  private readonly opts: NodeMacOptions;
  private channels: (Channel | null)[] = [];
  /** answers and own requests for the next uplink, in order */
  private pending: MacUplink[] = [];
  private sticky: MacUplink[] = [];
  /** a sticky answer not sent even once */
  private freshSticky = false;
  /** LoRaWAN 1.0.3 §4.3.1.1 ADR_ACK_CNT */
  private adrAckCnt = 0;

  constructor(opts: NodeMacOptions = {}) {
    this.opts = opts;
    this.radio = this.defaults();
    this.reset();
  }

  get adr(): boolean {
    return this.opts.adr ?? false;
  }

  /** LoRaWAN 1.0.3 §6.2.5: a join starts from the region's defaults, then the Join Accept's DLSettings and RxDelay. */
  reset(overrides: Partial<Pick<NodeRadio, 'rx1DrOffset' | 'rx2Dr' | 'rx1Delay'>> = {}): void {
    this.radio = { ...this.defaults(), ...overrides };
    this.channels = Array.from({ length: MAX_CHANNELS }, (_, i) => {
      const freqHz = DEFAULT_CHANNELS_HZ[i];
      return freqHz === undefined ? null : { freqHz, minDr: 0, maxDr: DEFAULT_MAX_DR };
    });
    this.forget();
    this.adrAckCnt = 0;
  }

  private defaults(): NodeRadio {
    return {
      dr: this.opts.dr ?? DEFAULT_MAX_DR,
      txPowerIndex: 0,
      nbTrans: 1,
      chMask: (1 << DEFAULT_CHANNELS_HZ.length) - 1,
      rx1DrOffset: this.opts.rx1DrOffset ?? 0,
      rx2Dr: this.opts.rx2Dr ?? EU868_RX2_DR,
      rx2FreqHz: this.opts.rx2FreqHz ?? Math.round(EU868_RX2_FREQ_MHZ * 1e6),
      rx1Delay: this.opts.rx1Delay ?? 1,
      maxDCycle: 0,
    };
  }

  /** Frequencies (Hz) the node may transmit on now: enabled channels that take its data rate. */
  uplinkChannels(): number[] {
    const out: number[] = [];
    this.channels.forEach((c, i) => {
      if (c && this.enabled(i) && c.minDr <= this.radio.dr && this.radio.dr <= c.maxDr) out.push(c.freqHz);
    });
    return out.length > 0 ? out : [...DEFAULT_CHANNELS_HZ];
  }

  private enabled(i: number): boolean {
    return ((this.radio.chMask >> i) & 1) === 1;
  }

  /** LoRaWAN 1.0.3 §5.1: LinkCheckReq in the next uplink; the answer lands in `records.linkChecks`. */
  requestLinkCheck(): void {
    this.pending.push({ cid: 'LinkCheckReq' });
  }

  /** TS001-1.0.4 §5.9 (1.0.3 §5.9): DeviceTimeReq in the next uplink. */
  requestDeviceTime(): void {
    this.pending.push({ cid: 'DeviceTimeReq' });
  }

  /** Something new waits to go up: an answer or request not sent yet (a sticky answer already sent does not count). */
  get hasPending(): boolean {
    return this.pending.length > 0 || this.freshSticky;
  }

  /** The commands of the next uplink: sticky answers first (they were answers to earlier requests), then the rest. */
  takeUplink(): MacUplink[] {
    const out = [...this.sticky, ...this.pending];
    this.pending = [];
    this.freshSticky = false;
    return out;
  }

  /** A reboot: the answers not sent yet are lost (the radio settings are kept, as LoRaMac-node keeps its MAC context in non-volatile memory). */
  forget(): void {
    this.pending = [];
    this.sticky = [];
    this.freshSticky = false;
  }

  /**
   * Counts an uplink for ADR (§4.3.1.1) and returns whether it carries ADRACKReq. With no downlink for
   * ADR_ACK_LIMIT uplinks the node asks; after each further ADR_ACK_DELAY it backs off a step.
   */
  countUplink(): boolean {
    if (!this.adr) return false;
    this.adrAckCnt++;
    const over = this.adrAckCnt - ADR_ACK_LIMIT;
    if (over > 0 && over % ADR_ACK_DELAY === 0) this.backOff();
    return this.adrAckCnt >= ADR_ACK_LIMIT;
  }

  /** §4.3.1.1: the default (maximum) power first, then one data rate lower per step, then every default channel. */
  private backOff(): void {
    if (this.radio.txPowerIndex !== 0) this.radio.txPowerIndex = 0;
    else if (this.radio.dr > 0) this.radio.dr--;
    else this.radio.chMask |= (1 << DEFAULT_CHANNELS_HZ.length) - 1;
  }

  /** Any downlink for the node: ADR_ACK_CNT back to 0; the sticky answers were heard (§5.4, §5.7). */
  heardDownlink(): void {
    this.adrAckCnt = 0;
    this.sticky = [];
  }

  /**
   * The commands of one downlink, applied in order; their answers wait for the next uplink. `records`
   * gets what the answers to the node's own requests said; `onDeviceTime` sets the node's clock.
   * `downlinkSnr` is the SNR of this downlink at the node (DevStatusAns margin, §5.5).
   */
  handle(cmds: readonly MacDownlink[], ctx: { downlinkSnr: number; records: MacRecords; at: number; onDeviceTime(gpsMs: number): void }): void {
    for (let i = 0; i < cmds.length; i++) {
      const c = cmds[i]!;
      switch (c.cid) {
        case 'LinkADRReq': {
          // §5.3.1: contiguous LinkADRReqs are one block, answered each with the block's status.
          let j = i;
          while (cmds[j + 1]?.cid === 'LinkADRReq') j++;
          this.answer(...this.linkAdr(cmds.slice(i, j + 1) as Extract<MacDownlink, { cid: 'LinkADRReq' }>[]));
          i = j;
          break;
        }
        case 'DutyCycleReq':
          this.radio.maxDCycle = c.maxDCycle; // §5.2
          this.answer({ cid: 'DutyCycleAns' });
          break;
        case 'RXParamSetupReq':
          this.answer(this.rxParamSetup(c));
          break;
        case 'DevStatusReq':
          // §5.5: margin is the SNR of the DevStatusReq's downlink, rounded, −32..31
          this.answer({ cid: 'DevStatusAns', battery: this.opts.battery ?? 0, margin: Math.max(-32, Math.min(31, Math.round(ctx.downlinkSnr))) });
          break;
        case 'NewChannelReq':
          this.answer(this.newChannel(c));
          break;
        case 'RXTimingSetupReq':
          this.radio.rx1Delay = c.delay === 0 ? 1 : c.delay; // §5.7: 0 means 1 s
          this.answer({ cid: 'RXTimingSetupAns' });
          break;
        case 'LinkCheckAns':
          ctx.records.linkChecks.push({ margin: c.margin, gwCnt: c.gwCnt, at: ctx.at });
          break;
        case 'DeviceTimeAns':
          ctx.records.deviceTimes.push({ gpsMs: c.gpsMs, at: ctx.at });
          ctx.onDeviceTime(c.gpsMs);
          break;
      }
    }
  }

  private answer(...cmds: MacUplink[]): void {
    for (const c of cmds) {
      if (!STICKY.has(c.cid)) {
        this.pending.push(c);
        continue;
      }
      this.sticky.push(c);
      this.freshSticky = true;
    }
  }

  /** §5.3: the channel mask of the block, then the last request's data rate, power and NbTrans; all or nothing. */
  private linkAdr(block: Extract<MacDownlink, { cid: 'LinkADRReq' }>[]): MacUplink[] {
    let mask = this.radio.chMask;
    let channelMaskAck = true;
    for (const r of block) {
      if (r.chMaskCntl === 0) mask = r.chMask;
      else if (r.chMaskCntl === 6) mask = this.definedMask(); // RP002 §2.4.5: ChMaskCntl 6 switches every defined channel on
      else channelMaskAck = false; // RFU for EU868
    }
    const defined = this.definedMask();
    if (mask === 0 || (mask & ~defined) !== 0) channelMaskAck = false;
    const last = block[block.length - 1]!;
    const dr = last.dataRate === KEEP ? this.radio.dr : last.dataRate;
    const dataRateAck = dr <= MAX_NODE_DR && this.channels.some((c, i) => c !== null && ((mask >> i) & 1) === 1 && c.minDr <= dr && dr <= c.maxDr);
    const txPowerIndex = last.txPower === KEEP ? this.radio.txPowerIndex : last.txPower;
    const powerAck = txPowerIndex <= EU868_MAX_TX_POWER_INDEX;
    const refused = this.opts.refuseAdr === true;
    const ans: MacUplink = { cid: 'LinkADRAns', powerAck: powerAck && !refused, dataRateAck: dataRateAck && !refused, channelMaskAck: channelMaskAck && !refused };
    if (ans.powerAck && ans.dataRateAck && ans.channelMaskAck) {
      this.radio.chMask = mask;
      this.radio.dr = dr;
      this.radio.txPowerIndex = txPowerIndex;
      this.radio.nbTrans = last.nbTrans === 0 ? 1 : last.nbTrans; // §5.3: 0 means the default, 1
    }
    return block.map(() => ({ ...ans }));
  }

  private definedMask(): number {
    return this.channels.reduce((m, c, i) => (c ? m | (1 << i) : m), 0);
  }

  /** §5.4: all three applied, or none. */
  private rxParamSetup(c: Extract<MacDownlink, { cid: 'RXParamSetupReq' }>): MacUplink {
    const ans = {
      cid: 'RXParamSetupAns' as const,
      rx1DrOffsetAck: c.rx1DrOffset <= 5, // RP002 §2.4.7: EU868 offsets 0..5
      rx2DataRateAck: c.rx2DataRate <= MAX_NODE_DR,
      channelAck: inBand(c.frequency),
    };
    if (ans.rx1DrOffsetAck && ans.rx2DataRateAck && ans.channelAck) {
      this.radio.rx1DrOffset = c.rx1DrOffset;
      this.radio.rx2Dr = c.rx2DataRate;
      this.radio.rx2FreqHz = c.frequency;
    }
    return ans;
  }

  /** §5.6 and RP002 §2.4.2: the default channels cannot be changed; frequency 0 removes a channel. */
  private newChannel(c: Extract<MacDownlink, { cid: 'NewChannelReq' }>): MacUplink {
    if (c.chIndex < DEFAULT_CHANNELS_HZ.length || c.chIndex >= MAX_CHANNELS) return { cid: 'NewChannelAns', dataRateOk: false, channelFreqOk: false };
    const channelFreqOk = c.frequency === 0 || inBand(c.frequency);
    const dataRateOk = c.minDr <= c.maxDr && c.maxDr <= MAX_NODE_DR;
    if (channelFreqOk && dataRateOk) {
      this.channels[c.chIndex] = c.frequency === 0 ? null : { freqHz: c.frequency, minDr: c.minDr, maxDr: c.maxDr };
      if (c.frequency === 0) this.radio.chMask &= ~(1 << c.chIndex);
      else this.radio.chMask |= 1 << c.chIndex; // §5.6: a new channel is enabled at once
    }
    return { cid: 'NewChannelAns', dataRateOk, channelFreqOk };
  }
}

function inBand(hz: number): boolean {
  return hz >= BAND_HZ.min && hz <= BAND_HZ.max;
}
