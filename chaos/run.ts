/**
 * `npm run chaos`: the attacks that found issue 13's defects, kept as a runnable part of the
 * project (not part of `npm test`). One real gateway (the built bin on the demo, syncing to a
 * real mosquitto, watched by the reference receiver) goes through, in order: fuzzers (HTTP,
 * MQTT, LoRaWAN, Modbus, devices.yaml), floods (refused commands, stalled live readers), a
 * SIGKILL loop and an upstream-outage loop; then the backlog drains and the receiver's seq line
 * is checked. Bounded in count and time (well under 15 minutes on 2 cores), loopback only.
 *
 * Prints a table: per attack the load, bad inputs, faults, and for the whole run readings lost
 * (seqs the receiver never got, nor was told were evicted), duplicates (at-least-once: expected),
 * crashes (exits nobody asked for, unhandled errors), peak RSS and the worst health-check latency.
 * Exit 1 when a check failed.
 */
/* eslint-disable no-console -- a command-line runner prints its table */
import { runReceiver, type ReceiverReport } from '../cloud-sync/receiver.js';
import { createLogger } from '../edge/log.js';
import { startMosquitto } from '../tests/sync/mosquitto.js';
import { tempDir } from '../tests/helpers/tmp.js';
import { DEMO } from '../tests/helpers/demoGateway.js';
import { httpFuzz, loraFuzz, modbusFuzz, mqttAttacks, refusedFlood, stalledReaders, yamlAttacks, type AttackResult } from './attacks.js';
import { ChaosGateway, freePort, sleep, type Watch } from './gateway.js';

const KILLS = Number(process.env.CHAOS_KILLS ?? 10);
const OUTAGES = Number(process.env.CHAOS_OUTAGES ?? 5);
/** "bounded RSS": the demo runs in ~130 MB; an attack that grows it past this has won */
const RSS_CEILING_MB = 300;

interface Row extends AttackResult {
  seconds: number;
  watch: Watch;
}

async function main(): Promise<number> {
  const t0 = performance.now();
  let chaosUnhandled = 0;
  process.on('unhandledRejection', (e) => {
    chaosUnhandled++;
    console.error('chaos: unhandled rejection in the runner', e);
  });
  const mosquitto = await startMosquitto({ persistence: true });
  const ac = new AbortController();
  let report: ReceiverReport | null = null;
  const receiving = runReceiver({
    broker: mosquitto.url,
    clientId: 'chaos-receiver',
    reconnectMs: 100,
    log: createLogger({ level: 'silent' }),
    signal: ac.signal,
    onProgress: (r) => (report = r),
  });
  const dir = tempDir('streetbox-chaos-');
  const gw = new ChaosGateway(dir, { api: await freePort(), broker: await freePort(), lorawan: await freePort(), tc: await freePort() }, mosquitto.url);
  const rows: Row[] = [];
  const phase = async (run: () => Promise<AttackResult> | AttackResult): Promise<AttackResult> => {
    const before = { ...gw.watch };
    gw.watch = { worstHealthMs: 0, healthFailures: 0, peakRssMb: 0, crashes: before.crashes, unhandled: before.unhandled };
    const s = performance.now();
    const r = await run();
    const w = gw.watch;
    rows.push({ ...r, seconds: (performance.now() - s) / 1000, watch: { ...w, crashes: w.crashes - before.crashes, unhandled: w.unhandled - before.unhandled } });
    gw.watch = { worstHealthMs: Math.max(before.worstHealthMs, w.worstHealthMs), healthFailures: before.healthFailures + w.healthFailures, peakRssMb: Math.max(before.peakRssMb, w.peakRssMb), crashes: w.crashes, unhandled: w.unhandled };
    console.error(`chaos: ${r.name} done in ${(performance.now() - s) / 1000} s: ${r.notes.join('; ')}`);
    return r;
  };
  let exitCode = 0;
  try {
    await gw.start();
    await sleep(5000); // readings flowing, sync connected
    const stalled = stalledReaders(gw);
    await phase(() => ({ ...stalled.result, notes: ['opened'] }));
    await phase(() => httpFuzz(gw));
    await phase(() => refusedFlood(gw));
    await phase(() => mqttAttacks(gw));
    await phase(() => loraFuzz(gw));
    await phase(() => modbusFuzz());
    await phase(() => yamlAttacks());
    stalled.close();
    await phase(async () => {
      const notes: string[] = [];
      let slowest = 0;
      for (let i = 0; i < KILLS; i++) {
        await sleep(2000 + (i % 3) * 700);
        await gw.kill('SIGKILL');
        const s = performance.now();
        await gw.start();
        slowest = Math.max(slowest, performance.now() - s);
      }
      notes.push(`back up within ${Math.round(slowest)} ms at worst`);
      return { name: 'SIGKILL loop', load: `${KILLS} kills while ingesting and syncing`, bad: 0, faults: KILLS, notes };
    });
    await phase(async () => {
      for (let i = 0; i < OUTAGES; i++) {
        await sleep(2000);
        await mosquitto.stop();
        await sleep(3000);
        await mosquitto.start();
      }
      return { name: 'upstream outages', load: `${OUTAGES} outages of 3 s`, bad: 0, faults: OUTAGES, notes: [] };
    });
    // drain: everything committed reaches the receiver
    const drain = await phase(async () => {
      const s = performance.now();
      let lag = -1;
      while (performance.now() - s < 120_000) {
        const st = (await (await fetch(`${gw.base}/api/v1/status`, { headers: { authorization: `Bearer ${DEMO.technicianToken}` } })).json()) as { sync: { lagSeq: number; ackedSeq: number } };
        lag = st.sync.lagSeq;
        if (lag === 0 && (report as ReceiverReport | null)?.gateways['demo-cabinet-01'] !== undefined) break;
        await sleep(500);
      }
      await sleep(6000); // the receiver's hole wait (5 s) ends
      return { name: 'drain', load: 'until the sync lag is 0', bad: 0, faults: 0, notes: [lag === 0 ? 'drained' : `FAIL lag ${lag} after 120 s`] };
    });
    if (drain.notes.some((n) => n.startsWith('FAIL'))) exitCode = 1;
    const stop = await gw.kill('SIGTERM');
    rows.push({ name: 'SIGTERM', load: 'clean stop', bad: 0, faults: 0, notes: [`exit ${stop.code} in ${Math.round(stop.ms)} ms`], seconds: stop.ms / 1000, watch: { worstHealthMs: 0, healthFailures: 0, peakRssMb: 0, crashes: 0, unhandled: 0 } });
    if (stop.code !== 0 || stop.ms > 5000) exitCode = 1;
  } catch (err) {
    console.error('chaos: aborted:', err, gw.logTail());
    exitCode = 1;
  } finally {
    ac.abort();
    report = await receiving.catch(() => report);
    await gw.dispose();
    await mosquitto.close();
    dir.remove();
  }

  const rep = report as ReceiverReport | null;
  const lost = (rep?.gaps ?? []).reduce((a, g) => a + (g.toSeq - g.fromSeq + 1), 0) + (rep?.absent ?? 0);
  const total = rows.reduce(
    (a, r) => ({ crashes: a.crashes + r.watch.crashes + r.watch.unhandled, rss: Math.max(a.rss, r.watch.peakRssMb), health: Math.max(a.health, r.watch.worstHealthMs), fails: a.fails + r.watch.healthFailures }),
    { crashes: chaosUnhandled, rss: 0, health: 0, fails: 0 },
  );
  const table: string[][] = [['attack', 'load', 'bad inputs', 'faults', 'crashes', 'peak RSS MB', 'worst health ms', 'health failures', 's', 'checks']];
  for (const r of rows) table.push([r.name, r.load, String(r.bad), String(r.faults), String(r.watch.crashes + r.watch.unhandled), r.watch.peakRssMb.toFixed(0), r.watch.worstHealthMs.toFixed(0), String(r.watch.healthFailures), r.seconds.toFixed(1), r.notes.join('; ')]);
  table.push(['TOTAL', `${rep?.items ?? 0} items received upstream`, String(rows.reduce((a, r) => a + r.bad, 0)), String(rows.reduce((a, r) => a + r.faults, 0)), String(total.crashes), total.rss.toFixed(0), total.health.toFixed(0), String(total.fails), ((performance.now() - t0) / 1000).toFixed(0), `readings lost ${lost}, duplicates ${rep?.duplicates ?? 0}, invalid ${rep?.invalid ?? 0}`]);
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => Math.min(row[i]!.length, i === table[0]!.length - 1 ? 200 : 60))));
  for (const [i, row] of table.entries()) {
    console.log(row.map((c, j) => (j === row.length - 1 ? c : c.slice(0, 60).padEnd(widths[j]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(Math.min(w, 60))).join('  '));
  }
  const failed = rows.some((r) => r.notes.some((n) => n.startsWith('FAIL'))) || lost > 0 || total.crashes > 0 || total.health >= 1000 || total.fails > 0 || total.rss > RSS_CEILING_MB;
  if (failed) exitCode = 1;
  console.log(failed ? `\nchaos: FAILED (see the rows above; RSS ceiling ${RSS_CEILING_MB} MB)` : `\nchaos: passed: 0 readings lost, 0 crashes, RSS under ${RSS_CEILING_MB} MB, health answered within 1 s throughout`);
  return exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
    // the runner's own sockets may linger; it is done
    setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
