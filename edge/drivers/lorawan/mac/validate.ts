/**
 * Whether the network may send a MAC request to an EU868 node (RP002-1.0.3 §2.4): the codec's
 * field widths (mac/commands.ts) and then the region's ranges, which the 4-bit fields exceed — a
 * TX power index of 9 encodes, but no EU868 node runs it, and what the state keeps of an ACK must
 * stay something status(), the readings and ADR can read. requestMac refuses a request that fails
 * here; a stored one that fails is dropped at load (mac/state.ts).
 */
import { EU868_DATA_RATES, subBandOf } from '../region/eu868.js';
import { EU868_MAX_TX_POWER_INDEX } from './adr.js';
import { encodeMacDownlink } from './commands.js';
import type { MacDownlink } from './types.js';

/** TS001-1.0.4 §5.3: DataRate or TXPower 15 in a LinkADRReq keeps the node's current value. */
export const LINK_ADR_KEEP = 15;
/** RP002 §2.4.3: EU868 data rates 0..7 (DR7 is FSK, which a node may run; the server sends LoRa only) */
const EU868_MAX_DR = 7;
/** RP002 §2.4.7: RX1DROffset 0..5 */
const EU868_MAX_RX1_DR_OFFSET = 5;
/** RP002 §2.4.2: channels 0..2 are the default ones, fixed; NewChannelReq sets up 3..15 */
const FIRST_EXTRA_CHANNEL = 3;
/** RP002 §2.4.5: ChMaskCntl 0 (ChMask for channels 0..15) and 6 (every defined channel on) */
const CH_MASK_CNTL = new Set([0, 6]);

/** A frequency (Hz) the EU868 sub-bands hold. */
function inBand(hz: number): boolean {
  return subBandOf(hz / 1e6) !== null;
}

/** Why `request` cannot go to an EU868 node (naming the field), or null when it can. */
export function macRequestError(request: MacDownlink): string | null {
  try {
    encodeMacDownlink([request]);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  switch (request.cid) {
    case 'LinkADRReq':
      if (request.dataRate !== LINK_ADR_KEEP && request.dataRate > EU868_MAX_DR) return `LinkADRReq.dataRate: expected EU868 DR0..${EU868_MAX_DR} or ${LINK_ADR_KEEP} (keep), got ${request.dataRate}`;
      if (request.txPower !== LINK_ADR_KEEP && request.txPower > EU868_MAX_TX_POWER_INDEX) {
        return `LinkADRReq.txPower: expected an EU868 TX power index 0..${EU868_MAX_TX_POWER_INDEX} or ${LINK_ADR_KEEP} (keep), got ${request.txPower}`;
      }
      if (!CH_MASK_CNTL.has(request.chMaskCntl)) return `LinkADRReq.chMaskCntl: expected 0 or 6 in EU868, got ${request.chMaskCntl}`;
      return null;
    case 'RXParamSetupReq':
      if (request.rx1DrOffset > EU868_MAX_RX1_DR_OFFSET) return `RXParamSetupReq.rx1DrOffset: expected 0..${EU868_MAX_RX1_DR_OFFSET}, got ${request.rx1DrOffset}`;
      // the scheduler sends RX2 with LoRa data rates only
      if (request.rx2DataRate >= EU868_DATA_RATES.length) return `RXParamSetupReq.rx2DataRate: expected DR0..${EU868_DATA_RATES.length - 1}, got ${request.rx2DataRate}`;
      if (!inBand(request.frequency)) return `RXParamSetupReq.frequency: ${request.frequency} Hz is outside the EU868 sub-bands`;
      return null;
    case 'NewChannelReq':
      if (request.chIndex < FIRST_EXTRA_CHANNEL) return `NewChannelReq.chIndex: expected ${FIRST_EXTRA_CHANNEL}..15 (0..2 are the default channels), got ${request.chIndex}`;
      if (request.frequency !== 0 && !inBand(request.frequency)) return `NewChannelReq.frequency: ${request.frequency} Hz is outside the EU868 sub-bands (0 removes the channel)`;
      if (request.maxDr < request.minDr || request.maxDr > EU868_MAX_DR) return `NewChannelReq.maxDr: expected minDr..${EU868_MAX_DR}, got ${request.maxDr} (minDr ${request.minDr})`;
      return null;
    default:
      return null;
  }
}
