/**
 * The running gateway's side of a configuration change: makes a new configuration the running
 * one, touching exactly the component parts a ChangePlan names (plan.ts), in start order, and
 * probes the gateway's health afterwards. main.ts builds it over its supervisor and components.
 *
 * Two configurations are kept: the declared one (as parsed from the version's text: what plans
 * are computed against) and the runtime one in ctx.config (the declared one with the start-up
 * overrides applied, and the bus entries of untouched buses carried over as they are: the
 * simulators re-point a bus at the port they serve on, and an untouched bus keeps that).
 */
import type { GatewayContext } from '../component.js';
import type { BuiltComponents } from '../components.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { reportPolicy } from '../report/policy.js';
import { createModbusSimComponent, modbusSimName } from '../sim/modbus/index.js';
import type { BatchWriter } from '../store/writer.js';
import type { Supervisor } from '../supervisor.js';
import type { ChangePlan, ConfigApplier, ProbeBaseline } from './types.js';

export interface GatewayApplierOptions {
  ctx: GatewayContext;
  supervisor: Supervisor;
  built: BuiltComponents;
  writer: Pick<BatchWriter, 'setReport'>;
  /** the configuration as declared by the running version's text */
  declared: Config;
  /** what main.ts applied to the loaded config (tests: ports, paths): applied to every new one too */
  override?: ((config: Config) => void) | undefined;
}

export class GatewayApplier implements ConfigApplier {
  private declared: Config;
  private readonly log: Logger;

  constructor(private readonly o: GatewayApplierOptions) {
    this.declared = o.declared;
    this.log = o.ctx.log.child({ module: 'config' });
  }

  current(): Config {
    return this.declared;
  }

  baseline(): ProbeBaseline {
    const { supervisor, built, ctx } = this.o;
    const buses = built.modbus?.status() ?? [];
    return {
      running: supervisor
        .status()
        .filter((c) => c.state === 'running')
        .map((c) => c.name),
      since: ctx.clock.now(),
      busesOnline: buses.filter((b) => b.devices.some((d) => d.online && d.lastSeen !== null)).map((b) => b.id),
      buses: buses.map((b) => b.id),
      upstream: built.sync.status().connected,
    };
  }

  async apply(next: Config, plan: ChangePlan): Promise<void> {
    const { ctx, supervisor, built } = this.o;
    const before = ctx.config;
    const runtime = structuredClone(next);
    this.o.override?.(runtime);
    // an untouched bus keeps its running entry (a simulator may have re-pointed it)
    const rewired = new Set(plan.buses);
    runtime.buses = runtime.buses.map((b) => (rewired.has(b.id) ? b : (before.buses.find((o) => o.id === b.id) ?? b)));
    ctx.config = runtime;
    this.declared = next;
    if (plan.empty) return;
    this.log.info({ components: plan.components, summary: plan.summary }, 'config: applying');

    if (plan.report) this.o.writer.setReport(reportPolicy(runtime));

    if (plan.buses.length > 0) {
      // the buses go down first, then their simulated peers are replaced, then the buses are wired
      // to them again: no transport sees its peer vanish (a 'bus lost' that is only the change)
      const simulators = async (): Promise<void> => {
        for (const bus of plan.buses) await this.rewireSimulator(bus);
      };
      if (built.modbus) await built.modbus.reconfigure(plan.buses, { whileDown: simulators });
      else await simulators();
    }
    if (plan.lorawan) {
      if (supervisor.has('lorawan')) await supervisor.restartNow('lorawan');
      if (supervisor.has('lorawan-sim')) await supervisor.restartNow('lorawan-sim');
    }
    if (plan.control === 'restart') {
      // rebuilt in place (the schedules with it): the lights already at their level are not written again
      const driven = built.control.applyCatalog();
      if (driven.length > 0) this.log.info({ driven }, 'config: lights driven to their wanted level');
    } else if (plan.control === 'schedules') built.control.applySchedules();

    if (plan.broker === 'restart' && supervisor.has('broker')) await supervisor.restartNow('broker');
    else if (plan.broker === 'users' && built.broker) {
      const { closed } = await built.broker.setAuth(runtime.broker);
      if (closed > 0) this.log.info({ closed }, 'config: broker connections of removed or changed users closed');
    }

    if (plan.api === 'restart' && supervisor.has('api')) await supervisor.restartNow('api');
    else if (plan.api === 'tokens' && built.api) built.api.setTokens(runtime.api.tokens);

    if (plan.sync) await supervisor.restartNow('sync');
  }

  /** The simulator of one rewired bus: restarted, added or removed as the new config has it. */
  private async rewireSimulator(bus: string): Promise<void> {
    const { ctx, supervisor } = this.o;
    const name = modbusSimName(bus);
    const component = createModbusSimComponent(ctx, bus);
    if (supervisor.has(name)) await supervisor.remove(name);
    if (component) await supervisor.insert(component, { before: 'modbus' });
  }

  /**
   * What must hold after a change: every component that ran before runs (the Modbus driver is
   * judged per bus, so a bus the change did not touch going down does not undo it); every changed
   * bus that had a device answering before, and every new bus, has a device that answered since the
   * change; the upstream is connected after a change of `sync` if it was before (or central asks).
   */
  probe(plan: ChangePlan, before: ProbeBaseline): { ok: true } | { ok: false; reason: string } {
    const { supervisor, built, ctx } = this.o;
    const states = new Map(supervisor.status().map((c) => [c.name, c]));
    const partNames = new Set([...before.running, ...plan.components]);
    for (const name of partNames) {
      if (name === 'modbus') continue;
      const c = states.get(name);
      if (c && c.state !== 'running') return { ok: false, reason: `${name} is ${c.state}${c.lastError ? `: ${c.lastError}` : ''}` };
    }
    if (plan.buses.length > 0 && built.modbus) {
      const buses = new Map(built.modbus.status().map((b) => [b.id, b]));
      for (const id of plan.buses) {
        if (!ctx.config.buses.some((b) => b.id === id)) continue; // removed
        const bus = buses.get(id);
        const configured = ctx.config.devices.some((d) => d.bus === id);
        if (!bus) {
          if (configured) return { ok: false, reason: `bus ${id}: the driver does not run it` };
          continue;
        }
        if (bus.devices.length === 0) continue;
        const mustAnswer = before.busesOnline.includes(id) || !before.buses.includes(id);
        if (!mustAnswer) continue; // nothing answered on it before the change either
        const answered = bus.devices.some((d) => d.lastSeen !== null && d.lastSeen >= before.since);
        if (!answered) {
          const why = bus.lastError ?? bus.devices.find((d) => d.lastError)?.lastError ?? 'no answer yet';
          return { ok: false, reason: `bus ${id}: no device has answered since the change (${why})` };
        }
      }
    }
    if (plan.sync && ctx.config.sync && ctx.config.sync.enabled !== false && (before.upstream || before.requireUpstream === true)) {
      const s = built.sync.status();
      if (!s.connected) return { ok: false, reason: `the upstream is not connected${s.lastError ? `: ${s.lastError}` : ''}` };
    }
    return { ok: true };
  }
}
