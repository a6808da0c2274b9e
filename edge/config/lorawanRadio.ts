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
  enabled: z.boolean().default(true).describe('nodes that set the ADR bit get LinkADRReq from the server; a node\'s own `adr` (lorawan.devices) overrides it'),
  margin: z.number().min(0).max(30).default(10).describe('dB kept above the SNR the data rate needs (ChirpStack\'s installation margin)'),
  historySize: z
    .number()
    .int()
    .min(1)
    .max(64)
    .default(20)
    .describe('uplinks whose best SNR ADR looks at; it decides once it has this many since the last change'),
  maxDr: z.number().int().min(0).max(5).default(5).describe('the fastest data rate ADR sets (EU868: DR5 = SF7BW125)'),
  minDr: z.number().int().min(0).max(5).default(0).describe('the slowest data rate ADR sets when the SNR drops; at most `maxDr`'),
}).superRefine((adr, ctx) => {
  if (adr.minDr > adr.maxDr) ctx.addIssue({ code: 'custom', path: ['minDr'], message: `"minDr" (${adr.minDr}) is above "maxDr" (${adr.maxDr})` });
});

/** lorawan.fuota: how firmware goes over the air to LoRaWAN nodes (edge/firmware/methods/fuota) */
export const fuotaSchema = z.strictObject({
  frequency: z
    .number()
    .int()
    .min(863_000_000)
    .max(870_000_000)
    .default(869_525_000)
    .describe('the multicast\'s class C downlinks, in Hz, in an EU868 sub-band (869525000: sub-band g3, 10 % duty cycle, as RX2)'),
  dr: z.number().int().min(0).max(6).default(5).describe('the multicast\'s data rate (EU868; DR5 = SF7BW125)'),
  fragmentation: z
    .union([z.literal('auto'), z.literal(1), z.literal(2)])
    .default('auto')
    .describe(
      'TS004 version, `1` or `2`; `auto` asks each node (PackageVersionReq) and the session speaks the version most of its nodes implement (v2 on a tie), the others getting a session of their own, in their version',
    ),
  minRedundancy: z.number().min(0).max(2).default(0.05).describe('parity fragments sent at least, as a share of the data fragments, whatever the loss observed'),
  answerTimeout: durationIn('5s', '24h').default(600_000).describe('how long a node has to answer a unicast setup or status request (each sent again 3 times)'),
  rebootDelay: durationIn('0s', '1h').default(10_000).describe('from the reboot request to the node\'s reboot (it keeps lighting until then)'),
  mcGroupId: z.number().int().min(0).max(3).default(0).describe('the multicast group (McGroupID) FUOTA uses on the nodes'),
}).superRefine((f, ctx) => {
  // ETSI EN 300 220 sub-bands (edge/drivers/lorawan/region/eu868.ts): the duty cycle the multicast is paced by
  if (subBandOf(f.frequency / 1e6) !== null) return;
  const bands = EU868_SUB_BANDS.map((b) => `${b.name} ${b.minMHz}–${b.maxMHz}`).join(', ');
  ctx.addIssue({ code: 'custom', path: ['frequency'], message: `${f.frequency} Hz is in no EU868 sub-band (${bands} MHz)` });
});
