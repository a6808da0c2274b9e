/** GET /api/v1/devices, /api/v1/devices/:id: the configured devices, their availability and latest values. */
import { z } from 'zod';
import { identifier, type DeviceConfig } from '../../config/schema.js';
import { deviceAvailability } from '../deviceState.js';
import { notFound } from '../errors.js';
import type { Router } from '../router.js';
import { field, ID_WORDS } from '../schemas.js';
import { driverRow, type RouteEnv } from './env.js';

function availability(env: RouteEnv, d: DeviceConfig, lastValueTs: number | null): { online: boolean | null; lastSeen: number | null } {
  return deviceAvailability(driverRow(env, d.id), env.availability.get(d.id), lastValueTs);
}

function summary(d: DeviceConfig): Record<string, unknown> {
  return {
    id: d.id,
    name: d.name ?? null,
    profile: d.profile,
    transport: d.devEui !== undefined ? 'lorawan' : 'modbus',
    ...(d.bus !== undefined ? { bus: d.bus, unit: d.unit ?? null } : {}),
    ...(d.devEui !== undefined ? { devEui: d.devEui } : {}),
    groups: d.groups,
    allowCommands: d.allowCommands,
  };
}

const deviceId = z.strictObject({ id: field(identifier, ID_WORDS, { description: 'the device id', required: true }) });

export function deviceRoutes(r: Router, env: RouteEnv): void {
  const byId = (): Map<string, DeviceConfig> => new Map(env.ctx.config.devices.map((d) => [d.id, d]));

  r.add({
    method: 'GET',
    path: '/api/v1/devices',
    access: 'read',
    doc: (a) => ({
      operationId: 'listDevices',
      summary: 'The configured devices',
      description: 'Each with its profile, transport, groups, whether it takes commands, and its availability (online, last seen).',
      tags: ['devices'],
      responses: { 200: { description: 'the devices, in the order of devices.yaml', schema: a.deviceList } },
    }),
    handler: () => {
      const latest = env.ctx.store.latestAll();
      const devices = env.ctx.config.devices.map((d) => {
        let ts: number | null = null;
        for (const v of latest.get(d.id)?.values() ?? []) ts = Math.max(ts ?? 0, v.ts);
        return { ...summary(d), ...availability(env, d, ts) };
      });
      return { status: 200, body: { devices } };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/devices/:id',
    access: 'read',
    params: deviceId,
    doc: (a) => ({
      operationId: 'getDevice',
      summary: 'A device: its config, latest values and availability',
      tags: ['devices'],
      responses: {
        200: { description: 'the device', schema: a.device },
        404: { description: 'no such device', schema: a.errorBody },
      },
    }),
    handler: ({ params: { id } }) => {
      const d = byId().get(id);
      if (!d) throw notFound(`device ${id}`);
      const values: Record<string, unknown> = {};
      let ts: number | null = null;
      for (const [point, v] of env.ctx.store.latest(id)) {
        values[point] = { value: v.value, unit: v.unit, quality: v.quality, ts: v.ts, seq: v.seq };
        ts = Math.max(ts ?? 0, v.ts);
      }
      return {
        status: 200,
        body: { ...summary(d), config: d, ...availability(env, d, ts), values, driver: driverRow(env, id) ?? null },
      };
    },
  });
}
