/** The control plane as the rest of the gateway imports it (DESIGN.md: components talk through edge/<x>/index.ts). */
export { createControl, type ControlComponent, type ControlDeps, type WantedStatus } from './controlComponent.js';
export type { CommandService, CommandRequestBody, CommandTargetRef, Principal } from './api.js';
export { validateCommand, parseBody, ACTIONS, type Action, type ParsedCommand } from './validate.js';
export { ControlError } from './errors.js';
export { can, priorityBand, mqttAllowed, ROLES, type Role, type Permission, type DeviceKind } from './roles.js';
export { hashPassword, verifyPassword, hashToken, verifyToken, findToken, generateToken } from './passwords.js';
export { createScheduler, formatPreview, type Scheduler } from './schedule.js';
