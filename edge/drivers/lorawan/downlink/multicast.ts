/**
 * Multicast frames (TS005 §3, LoRaWAN 1.0.3 §17.4): an unconfirmed data downlink to a group's
 * McAddr, signed with its McNwkSKey and encrypted with its McAppSKey, FCnt the group's own counter,
 * sent at once (`imme`) at the session's frequency and data rate through the forwarder that answers
 * most devices — asked of and charged to the duty-cycle ledger first, its air time refunded on a
 * TX_ACK error (even one later than the wait for it). The caller (FUOTA) plans the session; this
 * sends one frame and says what became of it: without a TX_ACK within ackTimeoutMs it was `sent` (a
 * v1 forwarder sends none); a driver that stops first says `noForwarder` (nothing is known of it,
 * and none can transmit any more: the caller sends the fragment again, as it does for that outcome).
 */
import type { Clock } from '../../../clock.js';
import { StreetboxError } from '../../../errors.js';
import type { MulticastOutcome, MulticastSession } from '../api.js';
import type { DeviceIndex } from '../devices.js';
import type { LorawanMetrics } from '../metrics.js';
import { EU868_DATA_RATES, maxPayload, subBandOf } from '../region/eu868.js';
import type { GatewayBackend } from '../semtech/backend.js';
import { isAppPort } from './app.js';
import { buildDataDownlink } from './data.js';
import { airtime, txpk, type TxPlan } from './scheduler.js';
import type { DownlinkSender, TxAckResult } from './sender.js';

export interface MulticastDeps {
  sender: DownlinkSender;
  backend: GatewayBackend;
  devices: DeviceIndex;
  metrics: LorawanMetrics;
  /** the driver's clock */
  clock: Clock;
  /** a frame without TX_ACK within this long was sent (a v1 forwarder sends none); default 5 s */
  ackTimeoutMs: number;
}

export class MulticastSender {
  private readonly d: MulticastDeps;

  constructor(deps: MulticastDeps) {
    this.d = deps;
  }

  /** Checks the frame (throws E_INVALID_COMMAND naming the field), then sends it; the promise never rejects. */
  send(session: MulticastSession, fPort: number, payload: Buffer): Promise<MulticastOutcome> {
    const freqMHz = session.frequency / 1e6;
    if (!/^[0-9a-f]{8}$/i.test(session.mcAddr)) throw invalid(`"mcAddr" is not 8 hex digits`);
    if (session.mcNwkSKey.length !== 16 || session.mcAppSKey.length !== 16) throw invalid('"mcNwkSKey" and "mcAppSKey" must be 16 bytes');
    if (!Number.isInteger(session.fCnt) || session.fCnt < 0 || session.fCnt > 0xffffffff) throw invalid(`"fCnt" is not a 32-bit counter (${session.fCnt})`);
    if (!subBandOf(freqMHz)) throw invalid(`"frequency" ${session.frequency} Hz is outside the EU868 sub-bands`);
    // RP002 §2.4.3: DR0..6 are LoRa; DR7 is FSK, which this server does not send
    if (!Number.isInteger(session.dr) || session.dr < 0 || session.dr >= EU868_DATA_RATES.length) throw invalid(`"dr" ${session.dr} is not an EU868 LoRa data rate (DR0..${EU868_DATA_RATES.length - 1})`);
    if (!isAppPort(fPort)) throw invalid(`"fPort" ${fPort} is not an application port (1..223)`);
    if (payload.length > maxPayload(session.dr)) throw invalid(`a ${payload.length}-byte payload is longer than DR${session.dr} carries (${maxPayload(session.dr)}, RP002 §2.4.6)`);
    return this.transmit(session, fPort, payload, freqMHz);
  }

  private async transmit(session: MulticastSession, fPort: number, payload: Buffer, freqMHz: number): Promise<MulticastOutcome> {
    const gateway = this.forwarder();
    if (gateway === null) return this.counted({ status: 'noForwarder' });
    const fCnt = session.fCnt;
    const phy = buildDataDownlink({
      devAddr: session.mcAddr.toLowerCase(),
      nwkSKey: session.mcNwkSKey,
      appSKey: session.mcAppSKey,
      fCntDown: fCnt,
      confirmed: false,
      ack: false,
      fPending: false,
      fPort,
      payload,
    });
    const airtimeMs = airtime(phy.length, session.dr);
    const v = this.d.sender.ledger.check(gateway, freqMHz, airtimeMs, this.d.clock.monotonic());
    if (!v.ok) {
      // subBandOf() was checked: only the duty cycle refuses
      return this.counted(v.reason === 'duty_cycle' ? { status: 'dutyCycle', retryAt: v.retryAt, usedMs: v.usedMs, budgetMs: v.budgetMs } : { status: 'noForwarder' });
    }
    const plan: TxPlan = { gatewayEui: gateway, window: 'immediate', txpk: txpk(phy, freqMHz, session.dr, 'immediate'), freq: freqMHz, airtimeMs };
    let acked: Promise<TxAckResult>;
    try {
      acked = this.d.sender.transmitAwaitingAck(plan, this.d.ackTimeoutMs);
    } catch {
      return this.counted({ status: 'noForwarder' });
    }
    session.fCnt = fCnt + 1;
    const r = await acked;
    const air = Math.round(airtimeMs * 10) / 10;
    if (!r.acked) return this.counted(r.why === 'stopped' ? { status: 'noForwarder' } : { status: 'sent', airtimeMs: air, gateway, fCnt });
    return this.counted(r.error === null ? { status: 'sent', airtimeMs: air, gateway, fCnt } : { status: 'txError', error: r.error, airtimeMs: air, gateway, fCnt });
  }

  /** The forwarder that can transmit and answers the most devices (the group's are among them); else any that can transmit. */
  private forwarder(): string | null {
    const { backend } = this.d;
    const answering = new Map<string, number>();
    for (const dev of this.d.devices.all()) {
      if (dev.gateway !== null && backend.canSend(dev.gateway)) answering.set(dev.gateway, (answering.get(dev.gateway) ?? 0) + 1);
    }
    const best = [...answering].sort((a, b) => b[1] - a[1])[0];
    return best?.[0] ?? backend.forwarders().find((f) => backend.canSend(f.gatewayEui))?.gatewayEui ?? null;
  }

  private counted(o: MulticastOutcome): MulticastOutcome {
    this.d.metrics.multicast(o.status);
    return o;
  }
}

function invalid(message: string): StreetboxError {
  return new StreetboxError('E_INVALID_COMMAND', `multicast: ${message}`);
}
