/**
 * What a node's answer to a MAC request means for its state (LoRaWAN 1.0.3 §5): the request is
 * applied when every ACK bit is set, refused otherwise (the reason names the bits that are not).
 * Pure: the handler (mac/handler.ts) stores, reports and settles the outcome.
 */
import type { MacState, MacRequest } from './state.js';
import type { MacUplink, MacUplinkCid } from './types.js';
import { LINK_ADR_KEEP } from './validate.js';

/** The answer each request is matched with (§5: a node answers in the order it was asked). */
export const ANSWER_OF: Record<MacRequest['cid'], MacUplinkCid> = {
  LinkADRReq: 'LinkADRAns',
  DutyCycleReq: 'DutyCycleAns',
  RXParamSetupReq: 'RXParamSetupAns',
  DevStatusReq: 'DevStatusAns',
  NewChannelReq: 'NewChannelAns',
  RXTimingSetupReq: 'RXTimingSetupAns',
};

export type Applied = { ok: true } | { ok: false; reason: string };

/** The NACKed bits of an answer, named; empty when everything was ACKed. */
function nacked(bits: Record<string, boolean>): Applied {
  const refused = Object.entries(bits).flatMap(([name, ack]) => (ack ? [] : [name]));
  return refused.length === 0 ? { ok: true } : { ok: false, reason: `${refused.join(', ')} not acknowledged` };
}

/**
 * Applies `answer` to `state` when it ACKs every part of `request`; the two are matched by CID
 * (ANSWER_OF). A NACK leaves the state as it was.
 */
export function applyAnswer(state: MacState, request: MacRequest, answer: MacUplink): Applied {
  switch (request.cid) {
    case 'LinkADRReq': {
      // §5.3: the node applies all of it or none (each bit says what it refused)
      if (answer.cid !== 'LinkADRAns') break;
      const v = nacked({ 'TX power': answer.powerAck, 'data rate': answer.dataRateAck, 'channel mask': answer.channelMaskAck });
      if (!v.ok) return v;
      // TS001-1.0.4 §5.3: DataRate or TXPower 15, NbTrans 0, keep what the node runs at
      if (request.dataRate !== LINK_ADR_KEEP) state.dr = request.dataRate;
      if (request.txPower !== LINK_ADR_KEEP) state.txPower = request.txPower;
      if (request.nbTrans > 0) state.nbTrans = request.nbTrans;
      state.chMask = request.chMask;
      return v;
    }
    case 'DutyCycleReq':
      // §5.4: no status, always applied
      if (answer.cid !== 'DutyCycleAns') break;
      state.maxDCycle = request.maxDCycle;
      return { ok: true };
    case 'RXParamSetupReq': {
      // §5.5: all three ACKed, or the node changes nothing
      if (answer.cid !== 'RXParamSetupAns') break;
      const v = nacked({ 'RX1 DR offset': answer.rx1DrOffsetAck, 'RX2 data rate': answer.rx2DataRateAck, channel: answer.channelAck });
      if (!v.ok) return v;
      state.rx1DrOffset = request.rx1DrOffset;
      state.rx2Dr = request.rx2DataRate;
      state.rx2Frequency = request.frequency;
      return v;
    }
    case 'DevStatusReq':
      // §5.6: the status itself is stored by the handler (readings)
      if (answer.cid !== 'DevStatusAns') break;
      state.battery = answer.battery;
      state.margin = answer.margin;
      return { ok: true };
    case 'NewChannelReq': {
      // §5.7: frequency 0 disables the channel
      if (answer.cid !== 'NewChannelAns') break;
      const v = nacked({ 'data rate range': answer.dataRateOk, 'channel frequency': answer.channelFreqOk });
      if (!v.ok) return v;
      state.channels = state.channels.filter((c) => c.chIndex !== request.chIndex);
      if (request.frequency !== 0) {
        state.channels.push({ chIndex: request.chIndex, frequency: request.frequency, minDr: request.minDr, maxDr: request.maxDr });
        state.channels.sort((a, b) => a.chIndex - b.chIndex);
      }
      return v;
    }
    case 'RXTimingSetupReq':
      // §5.8: Del 0 means 1 s
      if (answer.cid !== 'RXTimingSetupAns') break;
      state.rx1Delay = Math.max(1, request.delay);
      return { ok: true };
  }
  return { ok: false, reason: `${answer.cid} does not answer ${request.cid}` };
}
