/**
 * Where and when a downlink goes (as ChirpStack's downlink scheduler), EU868:
 * class A: RX1 at uplink tmst + RX1 delay (1 s for data, 5 s for a join accept;
 * LoRaWAN 1.0.3 §3.3.1, §6.2.6) on the uplink frequency at DR − RX1DROffset (RP002 §2.4.7);
 * RX2 one second later on 869.525 MHz at the RX2 DR, used when RX1 is too late or its
 * sub-band has no duty-cycle budget left. Class C: immediately on the RX2 parameters
 * (LoRaWAN 1.0.3 §17). The settings are the device's: the network's defaults, or what the node
 * ACKed in RXParamSetupAns / RXTimingSetupAns (mac/handler.ts). Time on air is accounted per
 * gateway and sub-band first; a downlink that would break the duty cycle, or is longer than the
 * window's data rate carries (RP002 §2.4.6), is never planned.
 */
import { DutyCycleError, TxError } from '../errors.js';
import { timeOnAirMs } from '../region/airtime.js';
import { type DutyCycleLedger } from '../region/dutyCycle.js';
import { dataRate, datrString, drIndex, EU868_RX2_FREQ_MHZ, EU868_TX_POWER_DBM, parseDatr, phyFits, rx1DataRate } from '../region/eu868.js';
import { tmstAdd, type TxPk } from '../semtech/packet.js';

export interface RxWindowSettings {
  /** seconds (data) */
  rx1Delay: number;
  rx1DrOffset: number;
  rx2Dr: number;
  /** RX2 frequency (default 869.525 MHz) */
  rx2FreqMHz?: number;
  /** the forwarder must have the PULL_RESP this long before the window opens */
  leadMs: number;
}

export interface UplinkContext {
  gatewayEui: string;
  tmst: number;
  freq: number;
  datr: string;
  /** monotonic ms the uplink arrived */
  receivedAt: number;
}

export interface TxPlan {
  gatewayEui: string;
  window: 'rx1' | 'rx2' | 'immediate';
  txpk: TxPk;
  freq: number;
  airtimeMs: number;
}

export const JOIN_ACCEPT_DELAY1_S = 5;

/** A downlink txpk at `freq` (MHz) and `dr`, immediate or at a tmst (multicast uses it too). */
export function txpk(phy: Buffer, freq: number, dr: number, at: { tmst: number } | 'immediate'): TxPk {
  const base = {
    freq,
    rfch: 0,
    powe: EU868_TX_POWER_DBM,
    modu: 'LORA' as const,
    datr: datrString(dataRate(dr)),
    codr: '4/5',
    // PROTOCOL.TXT §6: downlinks use inverted polarity (LoRaWAN 1.0.3 §3.1)
    ipol: true,
    size: phy.length,
    data: phy.toString('base64'),
  };
  return at === 'immediate' ? { imme: true, ...base } : { imme: false, tmst: at.tmst, ...base };
}

/** Time on air (ms) of a downlink PHYPayload of `phyBytes` at `dr`. */
export function airtime(phyBytes: number, dr: number): number {
  const { sf, bw } = dataRate(dr);
  // LoRaWAN 1.0.3 §3.1: downlinks carry no payload CRC.
  return timeOnAirMs({ sf, bw, payloadBytes: phyBytes, crc: false });
}

/**
 * Class A plans for RX1 and RX2 in order of preference (one or two); the caller sends the
 * first and keeps the second as fallback for a TX_ACK error. Throws TxError('too_long') when the
 * frame fits the data rate of neither window, DutyCycleError when time allows a window but no
 * sub-band has budget, TxError('too_late') when both have passed.
 */
export function planClassA(
  phy: Buffer,
  up: UplinkContext,
  join: boolean,
  s: RxWindowSettings,
  ledger: DutyCycleLedger,
  nowMono: number,
  nowWall: number,
): TxPlan[] {
  const delay1Ms = (join ? JOIN_ACCEPT_DELAY1_S : s.rx1Delay) * 1000;
  const elapsed = nowMono - up.receivedAt;
  const plans: TxPlan[] = [];
  let dutyBlocked: DutyCycleError | null = null;

  const upDr = (() => {
    const dr = parseDatr(up.datr);
    return dr ? drIndex(dr) : null;
  })();
  const windows: { window: 'rx1' | 'rx2'; delayMs: number; freq: number; dr: number | null }[] = [
    { window: 'rx1', delayMs: delay1Ms, freq: up.freq, dr: upDr === null ? null : rx1DataRate(upDr, s.rx1DrOffset) },
    { window: 'rx2', delayMs: delay1Ms + 1000, freq: s.rx2FreqMHz ?? EU868_RX2_FREQ_MHZ, dr: s.rx2Dr },
  ];
  if (!windows.some((w) => w.dr !== null && phyFits(phy.length, w.dr))) throw tooLong(phy, windows.map((w) => w.dr));
  for (const w of windows) {
    if (w.dr === null) continue; // uplink not at an EU868 data rate: no RX1
    if (!phyFits(phy.length, w.dr)) continue; // longer than this window's data rate carries
    if (elapsed + s.leadMs >= w.delayMs) continue; // too late for this window
    const air = airtime(phy.length, w.dr);
    const v = ledger.check(up.gatewayEui, w.freq, air, nowWall + (w.delayMs - elapsed));
    if (!v.ok) {
      dutyBlocked ??= new DutyCycleError(
        v.reason === 'no_band'
          ? `${w.window} frequency ${w.freq} MHz is outside the EU868 sub-bands`
          : `${w.window} on sub-band ${v.band.name} (${v.band.dutyCycle * 100} %): ${v.usedMs.toFixed(0)} of ${v.budgetMs} ms used in the last hour, ${air.toFixed(1)} ms more would break the duty cycle`,
      );
      continue;
    }
    plans.push({
      gatewayEui: up.gatewayEui,
      window: w.window,
      txpk: txpk(phy, w.freq, w.dr, { tmst: tmstAdd(up.tmst, w.delayMs * 1000) }),
      freq: w.freq,
      airtimeMs: air,
    });
  }
  if (plans.length > 0) return plans;
  if (dutyBlocked) throw dutyBlocked;
  throw new TxError('too_late', `uplink received ${elapsed.toFixed(0)} ms ago: RX1 and RX2 have passed`);
}

function tooLong(phy: Buffer, drs: (number | null)[]): TxError {
  return new TxError('too_long', `a ${phy.length}-byte frame is longer than DR${drs.filter((d) => d !== null).join('/DR')} carries (RP002 §2.4.6)`);
}

/**
 * Class C: now, on the RX2 frequency and data rate. Returns the plan or the time to retry at
 * (duty cycle); throws TxError('too_long') for a frame longer than the RX2 data rate carries.
 */
export function planClassC(
  phy: Buffer,
  gatewayEui: string,
  s: RxWindowSettings,
  ledger: DutyCycleLedger,
  nowWall: number,
): { plan: TxPlan } | { retryAt: number; error: DutyCycleError } {
  if (!phyFits(phy.length, s.rx2Dr)) throw tooLong(phy, [s.rx2Dr]);
  const freq = s.rx2FreqMHz ?? EU868_RX2_FREQ_MHZ;
  const air = airtime(phy.length, s.rx2Dr);
  const v = ledger.check(gatewayEui, freq, air, nowWall);
  if (!v.ok) {
    const retryAt = v.reason === 'duty_cycle' ? v.retryAt : Number.POSITIVE_INFINITY;
    return {
      retryAt,
      error: new DutyCycleError(
        v.reason === 'duty_cycle'
          ? `class C on sub-band ${v.band.name}: ${v.usedMs.toFixed(0)} of ${v.budgetMs} ms used in the last hour`
          : 'RX2 frequency outside the EU868 sub-bands',
      ),
    };
  }
  return {
    plan: { gatewayEui, window: 'immediate', txpk: txpk(phy, freq, s.rx2Dr, 'immediate'), freq, airtimeMs: air },
  };
}
