/**
 * What one downlink carries of a device's MAC commands (LoRaWAN 1.0.3 §4.3.1.6): the answers to
 * the node's own requests first, then the pending requests it may be sent, packed first-fit
 * (`fitFOpts`) into FOpts — never past 15 bytes, nor past what the data rate leaves beside an
 * application payload — or, with no application payload and more than FOpts holds, into an FPort 0
 * payload within the data rate's N. What does not fit waits for the next downlink (FPending).
 * Pure: mac/handler.ts chooses the requests and counts what went.
 */
import { isDeepStrictEqual } from 'node:util';
import { encodeMacDownlink, fitFOpts } from './commands.js';
import type { PendingMac } from './state.js';
import { FOPTS_MAX, type MacDownlink } from './types.js';

/** What a frame has room for: the application payload it carries (null: none) and its data rate's N. */
export interface MacRoom {
  payloadBytes: number | null;
  maxPayload: number;
}

/** The node's requests a frame can answer (§5.1, §5.9). */
export type NodeRequestCid = 'LinkCheckReq' | 'DeviceTimeReq';

/** The MAC part of a downlink; downlink/sender.ts builds the frame around it. */
export interface MacPlan {
  /** encoded commands for FOpts (≤ 15 bytes; empty for none) */
  fOpts: Buffer;
  /** encoded commands as an FPort 0 payload, or null */
  port0: Buffer | null;
  /** the pending requests the frame carries (an attempt each once it goes, or fails to) */
  ids: string[];
  /** the node's requests the frame answers (counted answered once it goes) */
  replied: NodeRequestCid[];
  /** requests still waiting after this frame (FPending) */
  waiting: boolean;
  /** the node needs a downlink now (a request of its own, ADRACKReq, a sticky answer): sent even without commands */
  required: boolean;
}

const EMPTY = Buffer.alloc(0);
const REQUEST_OF_ANSWER: Partial<Record<MacDownlink['cid'], NodeRequestCid>> = { LinkCheckAns: 'LinkCheckReq', DeviceTimeAns: 'DeviceTimeReq' };

/** The frame's MAC commands: `answers` (to the node's requests), then `requests`, as far as `room` allows. */
export function planMacFrame(answers: readonly MacDownlink[], requests: readonly PendingMac[], room: MacRoom, required: boolean): MacPlan {
  const queued: { cmd: MacDownlink; id: string | null }[] = [...answers.map((cmd) => ({ cmd, id: null })), ...requests.map((p) => ({ cmd: p.request as MacDownlink, id: p.id }))];
  if (queued.length === 0) return { fOpts: EMPTY, port0: null, ids: [], replied: [], waiting: false, required };
  const cmds = queued.map((q) => q.cmd);
  // §4.3.1.6: FOpts holds 15 bytes; without an application payload, more go on FPort 0 (within N)
  const port0 = room.payloadBytes === null && encodeMacDownlink(cmds).length > FOPTS_MAX;
  const budget = port0 ? room.maxPayload : Math.max(0, Math.min(FOPTS_MAX, room.maxPayload - (room.payloadBytes ?? 0)));
  const { fit } = fitFOpts(cmds, budget);
  const carried = inOrder(queued, fit);
  const bytes = fit.length > 0 ? encodeMacDownlink(fit) : EMPTY;
  return {
    fOpts: port0 ? EMPTY : bytes,
    port0: port0 && bytes.length > 0 ? bytes : null,
    ids: carried.flatMap((q) => (q.id === null ? [] : [q.id])),
    replied: carried.flatMap((q) => {
      const cid = q.id === null ? REQUEST_OF_ANSWER[q.cmd.cid] : undefined;
      return cid ? [cid] : [];
    }),
    waiting: queued.some((q) => q.id !== null && !carried.includes(q)),
    required: required || answers.length > 0,
  };
}

/** The entries of `queued` whose commands `fit` took, matched in order (fitFOpts keeps the order it was given). */
function inOrder<T extends { cmd: MacDownlink }>(queued: T[], fit: readonly MacDownlink[]): T[] {
  const out: T[] = [];
  let j = 0;
  for (const q of queued) {
    if (j < fit.length && isDeepStrictEqual(q.cmd, fit[j])) {
      out.push(q);
      j++;
    }
  }
  return out;
}
