/**
 * The LoRaWAN network server's radio management in devices.yaml (issue 18): ADR, the periodic
 * DevStatusReq, and FUOTA (multicast sessions, fragmentation, reboots). No imports from schema.ts:
 * it imports from here.
 */
import { z } from 'zod';
import { EU868_SUB_BANDS, subBandOf } from '../drivers/lorawan/region/eu868.js';
import { durationIn } from './scalars.js';

/** lorawan.adr: ChirpStack's default ADR (edge/drivers/lorawan/mac/adr.ts), per device `adr:` overrides `enabled` */
export const adrSchema = z.strictObject({
  /** nodes that set the ADR bit get LinkADRReq from the server */
  enabled: z.boolean().default(true),
  /** dB kept above the SNR the data rate needs (ChirpStack's installation margin) */
  margin: z.number().min(0).max(30).default(10),
  /** uplinks whose best SNR ADR looks at; it decides once it has this many since the last change */
  historySize: z.number().int().min(1).max(64).default(20),
  /** the fastest data rate ADR sets (EU868 DR0..5) */
  maxDr: z.number().int().min(0).max(5).default(5),
  /** the slowest data rate ADR sets when the SNR drops */
  minDr: z.number().int().min(0).max(5).default(0),
}).superRefine((adr, ctx) => {
  if (adr.minDr > adr.maxDr) ctx.addIssue({ code: 'custom', path: ['minDr'], message: `"minDr" (${adr.minDr}) is above "maxDr" (${adr.maxDr})` });
});

/** lorawan.fuota: how firmware goes over the air to LoRaWAN nodes (edge/firmware/methods/fuota) */
export const fuotaSchema = z.strictObject({
  /** multicast class C downlinks: Hz in an EU868 sub-band (869.525 MHz, sub-band g3 at 10 % duty cycle) */
  frequency: z.number().int().min(863_000_000).max(870_000_000).default(869_525_000),
  /** multicast data rate (EU868 DR0..5; DR5 = SF7BW125) */
  dr: z.number().int().min(0).max(6).default(5),
  /**
   * TS004 version: `auto` asks each node (PackageVersionReq) and the session speaks the version most
   * of its nodes implement (v2 on a tie); the others get a session of their own, in their version
   */
  fragmentation: z.union([z.literal('auto'), z.literal(1), z.literal(2)]).default('auto'),
  /** parity fragments sent at least, as a share of the data fragments, whatever the observed loss */
  minRedundancy: z.number().min(0).max(2).default(0.05),
  /** how long a node has to answer a unicast setup or status request (each re-sent 3 times) */
  answerTimeout: durationIn('5s', '24h').default(600_000),
  /** from the reboot request to the time the node reboots (it keeps lighting until then) */
  rebootDelay: durationIn('0s', '1h').default(10_000),
  /** the multicast group's McGroupID (0..3) FUOTA uses on the nodes */
  mcGroupId: z.number().int().min(0).max(3).default(0),
}).superRefine((f, ctx) => {
  // ETSI EN 300 220 sub-bands (edge/drivers/lorawan/region/eu868.ts): the duty cycle the multicast is paced by
  if (subBandOf(f.frequency / 1e6) !== null) return;
  const bands = EU868_SUB_BANDS.map((b) => `${b.name} ${b.minMHz}–${b.maxMHz}`).join(', ');
  ctx.addIssue({ code: 'custom', path: ['frequency'], message: `${f.frequency} Hz is in no EU868 sub-band (${bands} MHz)` });
});
