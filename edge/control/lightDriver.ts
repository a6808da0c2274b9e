/**
 * Drives one light to a level and says whether it got there.
 *
 * - Modbus streetlight controllers: every channel of the profile gets chN_dim_setpoint, then
 *   chN_on; the driver reads each write back (verified / failed with the reason). A ramp
 *   (TALQ dim with ramp time) uses the profile's ramp register when it has one; otherwise the
 *   gateway steps the setpoint every `rampStepMs` (1 s) from the level it last set.
 * - LoRaWAN streetlight nodes: a confirmed downlink (enqueueDownlink), whose outcome promise
 *   says verified (the node acknowledged), failed, or expired (not delivered before its
 *   expiresAt; the network server sweeps those itself, so no timer of ours is needed).
 *
 * One Modbus drive at a time per device. A drive asked for while one runs waits and the newest level
 * wins (the waiters of superseded requests get the outcome of the one that ran); a ramp in
 * progress stops at its next step when a newer level is asked for. LoRaWAN downlinks are not
 * held back: the network server queues them per node, in order.
 */
import type { Clock } from '../clock.js';
import type { DownlinkOutcome } from '../drivers/lorawan/api.js';
import type { LorawanDriver } from '../drivers/lorawan/index.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage, StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CatalogDevice, LightChannel } from './catalog.js';

export interface DeviceOutcome {
  device: string;
  status: 'verified' | 'failed' | 'expired';
  level: number;
  reason?: string;
  code?: string;
  via: 'modbus' | 'lorawan';
}

/** A drive under way: `sent` when its first frame goes out (false: none went), then its outcome. */
export interface Drive {
  sent: Promise<boolean>;
  outcome: Promise<DeviceOutcome>;
}

export interface LightDriverOptions {
  modbus?: ModbusDriver | undefined;
  lorawan?: LorawanDriver | undefined;
  clock: Clock;
  log: Logger;
  /** the gateway's ramp step (default 1000 ms) */
  rampStepMs?: number;
  /** how long a LoRaWAN downlink may wait for its node (default 30 min) */
  loraTimeoutMs?: number;
}

interface Request {
  level: number;
  rampS: number;
  waiters: ((o: DeviceOutcome) => void)[];
  onSent: (() => void)[];
}

interface Slot {
  busy: boolean;
  pending: Request | null;
  /** wakes a ramp sleeping between steps */
  wake: (() => void) | null;
}

const SUPERSEDED = Symbol('superseded');

const onValue = (c: LightChannel, on: boolean): boolean | number => (c.onBool ? on : on ? 1 : 0);

export class LightDriver {
  private readonly slots = new Map<string, Slot>();
  private readonly last = new Map<string, number>();
  private readonly stepMs: number;
  private readonly loraTimeoutMs: number;
  private running = false;
  /** the LoRaWAN drives awaiting their node: each ends failed at stop, and leaves the set when it settles */
  private readonly awaiting = new Set<() => void>();

  constructor(private readonly o: LightDriverOptions) {
    this.stepMs = o.rampStepMs ?? 1000;
    this.loraTimeoutMs = o.loraTimeoutMs ?? 30 * 60_000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    for (const end of [...this.awaiting]) end();
    for (const slot of this.slots.values()) slot.wake?.();
  }

  /** The level last verified on the device (this process), if any. */
  lastVerified(deviceId: string): number | undefined {
    return this.last.get(deviceId);
  }

  /**
   * Drives `dev` to `level` (0..100). `sent` settles true when the first frame is about to go out
   * (false when the drive ended without sending anything); `outcome` settles after it, never rejects.
   */
  drive(dev: CatalogDevice, level: number, rampS = 0): Drive {
    let markSent: (went: boolean) => void = () => undefined;
    const sent = new Promise<boolean>((resolve) => (markSent = resolve));
    const outcome = this.begin(dev, level, rampS, () => markSent(true)).then((o) => {
      markSent(false);
      return o;
    });
    return { sent, outcome };
  }

  private begin(dev: CatalogDevice, level: number, rampS: number, onSent: () => void): Promise<DeviceOutcome> {
    if (dev.transport === 'lorawan') {
      // the network server keeps a downlink queue per node, in order: a newer level is queued
      // behind an older one instead of waiting for it (a class A node may take minutes to answer)
      onSent();
      return this.downlink(dev, level).then(
        (o) => {
          if (o.status === 'verified') this.last.set(dev.id, o.level);
          return o;
        },
        (err: unknown) => ({ device: dev.id, status: 'failed' as const, level, reason: errorMessage(err), via: 'lorawan' as const, ...(err instanceof StreetboxError ? { code: err.code } : {}) }),
      );
    }
    return new Promise((resolve) => {
      let slot = this.slots.get(dev.id);
      if (!slot) this.slots.set(dev.id, (slot = { busy: false, pending: null, wake: null }));
      const req = slot.pending ?? { level, rampS, waiters: [], onSent: [] };
      req.level = level;
      req.rampS = rampS;
      req.waiters.push(resolve);
      req.onSent.push(onSent);
      slot.pending = req;
      slot.wake?.();
      if (!slot.busy) {
        const s = slot;
        void this.run(dev, s).catch((err: unknown) => this.o.log.error({ err, device: dev.id }, 'light drive loop failed'));
      }
    });
  }

  private async run(dev: CatalogDevice, slot: Slot): Promise<void> {
    slot.busy = true;
    try {
      while (slot.pending) {
        const req = slot.pending;
        slot.pending = null;
        for (const cb of req.onSent.splice(0)) cb();
        let out: DeviceOutcome | typeof SUPERSEDED;
        try {
          out = await this.execute(dev, req, slot);
        } catch (err) {
          out = { device: dev.id, status: 'failed', level: req.level, reason: errorMessage(err), via: dev.transport, ...(err instanceof StreetboxError ? { code: err.code } : {}) };
        }
        if (out === SUPERSEDED && slot.pending) {
          const next: Request = slot.pending;
          next.waiters.unshift(...req.waiters);
          continue;
        }
        const outcome = out === SUPERSEDED ? { device: dev.id, status: 'failed' as const, level: req.level, reason: 'stopped', via: dev.transport } : out;
        if (outcome.status === 'verified') this.last.set(dev.id, outcome.level);
        for (const w of req.waiters) w(outcome);
      }
    } finally {
      slot.busy = false;
    }
  }

  private async execute(dev: CatalogDevice, req: Request, slot: Slot): Promise<DeviceOutcome | typeof SUPERSEDED> {
    const modbus = this.o.modbus;
    if (!modbus) return { device: dev.id, status: 'failed', level: req.level, reason: 'no Modbus driver is running', code: 'E_COMPONENT', via: 'modbus' };
    if (req.rampS > 0) {
      const rampRegs = dev.channels.filter((c) => c.ramp !== undefined);
      if (rampRegs.length > 0) {
        for (const c of rampRegs) {
          const r = await modbus.write(dev.id, c.ramp!, Math.round(req.rampS));
          if (r.status === 'failed') return this.failed(dev, req.level, r.point, r.reason, r.code);
        }
      } else {
        const stepped = await this.ramp(dev, req, slot);
        if (stepped !== null) return stepped;
      }
    }
    return this.writeLevel(dev, req.level);
  }

  /** Steps the setpoints towards req.level; null when the final write is due, else a failure or SUPERSEDED. */
  private async ramp(dev: CatalogDevice, req: Request, slot: Slot): Promise<DeviceOutcome | typeof SUPERSEDED | null> {
    const modbus = this.o.modbus!;
    const from = this.last.get(dev.id) ?? (await this.currentLevel(dev));
    const steps = Math.ceil((req.rampS * 1000) / this.stepMs);
    if (from === null || from === req.level || steps <= 1) return null;
    let lit = from > 0;
    for (let i = 1; i < steps; i++) {
      const level = Math.round(from + ((req.level - from) * i) / steps);
      for (const c of dev.channels) {
        const r = await modbus.write(dev.id, c.setpoint, level);
        if (r.status === 'failed') return this.failed(dev, req.level, r.point, r.reason, r.code);
        if (!lit && level > 0) {
          const on = await modbus.write(dev.id, c.on, onValue(c, true));
          if (on.status === 'failed') return this.failed(dev, req.level, on.point, on.reason, on.code);
        }
      }
      lit ||= level > 0;
      if (await this.sleep(slot)) return SUPERSEDED;
    }
    return null;
  }

  /** Sleeps one ramp step; true when woken by a newer request (or a stop). */
  private sleep(slot: Slot): Promise<boolean> {
    if (slot.pending || !this.running) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = this.o.clock.setTimeout(() => {
        slot.wake = null;
        resolve(false);
      }, this.stepMs);
      slot.wake = () => {
        slot.wake = null;
        this.o.clock.clearTimeout(timer);
        resolve(true);
      };
    });
  }

  private async currentLevel(dev: CatalogDevice): Promise<number | null> {
    const c = dev.channels[0];
    if (!c) return null;
    try {
      const values = await this.o.modbus!.read(dev.id);
      const on = values.find((v) => v.point === c.on)?.value;
      const sp = values.find((v) => v.point === c.setpoint)?.value;
      if (typeof sp !== 'number') return null;
      return on === false || on === 0 ? 0 : sp;
    } catch {
      return null;
    }
  }

  /** setpoint then on/off, for every channel; the first failure ends it. */
  private async writeLevel(dev: CatalogDevice, level: number): Promise<DeviceOutcome> {
    const modbus = this.o.modbus!;
    for (const c of dev.channels) {
      const sp = await modbus.write(dev.id, c.setpoint, level);
      if (sp.status === 'failed') return this.failed(dev, level, sp.point, sp.reason, sp.code);
      const on = await modbus.write(dev.id, c.on, onValue(c, level > 0));
      if (on.status === 'failed') return this.failed(dev, level, on.point, on.reason, on.code);
    }
    return { device: dev.id, status: 'verified', level, via: 'modbus' };
  }

  private failed(dev: CatalogDevice, level: number, point: string, reason: string | undefined, code: string | undefined): DeviceOutcome {
    const out: DeviceOutcome = { device: dev.id, status: 'failed', level, reason: `${point}: ${reason ?? 'write failed'}`, via: dev.transport };
    if (code !== undefined) out.code = code;
    return out;
  }

  // ------------------------------------------------------------------ LoRaWAN

  private async downlink(dev: CatalogDevice, level: number): Promise<DeviceOutcome> {
    const lorawan = this.o.lorawan;
    if (!lorawan) return { device: dev.id, status: 'failed', level, reason: 'no LoRaWAN driver is running', code: 'E_COMPONENT', via: 'lorawan' };
    const expiresAt = this.o.clock.now() + this.loraTimeoutMs;
    const { outcome } = lorawan.enqueueDownlink(dev.id, level === 0 ? { action: 'off', confirmed: true, expiresAt } : { action: 'dim', level, confirmed: true, expiresAt });
    return new Promise((resolve) => {
      const end = (): void => {
        this.awaiting.delete(end);
        resolve({ device: dev.id, status: 'failed', level, reason: 'the control plane stopped before the node answered', via: 'lorawan' });
      };
      this.awaiting.add(end);
      // the outcome promise never rejects (lorawan/api.ts); a settled one is ignored by resolve
      void outcome.then((o) => {
        this.awaiting.delete(end);
        resolve(fromDownlink(dev.id, level, o));
      });
    });
  }
}

/** A downlink's outcome as the outcome of a light: only an acknowledged (confirmed) downlink verifies a level. */
function fromDownlink(device: string, level: number, o: DownlinkOutcome): DeviceOutcome {
  if (o.status === 'verified') return { device, status: 'verified', level, via: 'lorawan' };
  const reason = o.status === 'sent' ? 'sent without an acknowledgement: the level is not verified' : (o.reason ?? o.status);
  const out: DeviceOutcome = { device, status: o.status === 'expired' ? 'expired' : 'failed', level, reason: `lorawan: ${reason}`, via: 'lorawan' };
  if (o.code !== undefined) out.code = o.code;
  return out;
}
