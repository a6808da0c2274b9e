/** Operations: commissioning checks, backup and restore, the systemd watchdog, clock-jump detection. */
export { registerOpsCommands } from './cli.js';
export { runDoctor, formatReport, type Check, type CheckStatus, type DoctorReport, type DoctorOptions } from './doctor.js';
export { backup, restore, type BackupManifest, type BackupResult, type RestoreResult } from './backup.js';
export { createWatchdog, systemdNotify, watchdogIntervalMs, type Watchdog, type WatchdogOptions, type Notify } from './watchdog.js';
export { createClockWatch, type ClockWatch, type ClockWatchOptions, type ClockJump } from './clockWatch.js';
export { discover, renderConfig, type Discovery, type FoundUnit, type InitOptions } from './init.js';
