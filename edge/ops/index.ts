/** Operations: commissioning checks, backup and restore, password hashes, the systemd watchdog, clock-jump detection. */
export { registerOpsCommands } from './cli.js';
export { runDoctor, formatReport, secretsCheck, type Check, type CheckStatus, type DoctorReport, type DoctorOptions } from './doctor.js';
export { backup, nodeRedUserDir, SECRETS_WARNING, type BackupManifest, type BackupResult, type OpsOptions } from './backup.js';
export { restore, type RestoreResult } from './restore.js';
export { packTarGz, unpackTarGz } from './archive.js';
export { createProgress, noProgress, type Progress, type ProgressSink } from '../progress.js';
export { demoSecrets, findDemoSecrets, DEMO_CONFIG } from './demoSecrets.js';
export { readPassword, passwordHashFor, type HashFor } from './hashPassword.js';
export { generateSecrets, renderCredentials, type InitSecrets } from './initSecrets.js';
export { createWatchdog, systemdNotify, watchdogIntervalMs, type Watchdog, type WatchdogOptions, type Notify } from './watchdog.js';
export { createClockWatch, type ClockWatch, type ClockWatchOptions, type ClockJump } from './clockWatch.js';
export { discover, renderConfig, type Discovery, type FoundUnit, type InitOptions, type RenderOptions } from './init.js';
