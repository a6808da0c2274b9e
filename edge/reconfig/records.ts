/**
 * The records of configuration changes (issue 16), as data: what the store keeps, what a door
 * gets back, what an event carries. No imports, so the bus, the event kinds and the error codes
 * can name them without tying themselves to the config schema. The road itself: types.ts.
 */
/** the largest configuration text a gateway takes, from any door (the shipped one is ~6 KB) */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** a change's id: what central may use as one (the same rule as a command's), and a topic level */
export const CHANGE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export type ConfigSource = 'file' | 'technician' | 'central';

export const CONFIG_STAGES = ['staged', 'rejected', 'applied', 'confirmed', 'rolledBack'] as const;
export type ConfigStage = (typeof CONFIG_STAGES)[number];
/** the stages after which nothing happens to a change any more */
export const FINAL_STAGES: readonly ConfigStage[] = ['rejected', 'confirmed', 'rolledBack'];

/** One problem of a submitted text, at line:col of that text (1-based; 0:0 when it has no place). */
export interface ConfigProblem {
  line: number;
  col: number;
  /** the field path, `devices[3].unit`; '' for the document */
  path: string;
  message: string;
}

/** A change as it arrives at any of the three doors. */
export interface ConfigChangeRequest {
  /** the requester's id (central's message id); generated for local doors when absent */
  id?: string;
  source: ConfigSource;
  /** who: the API token's name, 'upstream' (central), 'file' (SIGHUP/reload) */
  principal: string;
  /** the whole devices.yaml text */
  content: string;
  /** the version the requester edited; older than the running one: refused as stale unless `force` */
  baseVersion?: number | null;
  force?: boolean;
  /** commit-confirm (technician only): a manual confirm must come within this, else roll back */
  confirmWithinMs?: number;
  /** central: ed25519 signature, base64, over signedMessage() (signature.ts) */
  signature?: string;
  /** the version whose content this restores (`streetbox config rollback <v>`) */
  rollbackOf?: number;
}

/** A version row: every configuration the gateway ran, or was asked to run and refused. */
export interface ConfigVersion {
  /** 1, 2, …: never reused */
  version: number;
  /** the change's id (unique: a second change with the same id is refused as a duplicate) */
  id: string;
  sha256: string;
  bytes: number;
  source: ConfigSource;
  principal: string;
  /** when it was submitted, ms UTC */
  at: number;
  baseVersion: number | null;
  /** its latest stage */
  stage: ConfigStage;
  /** why it was rejected or rolled back, in words */
  reason: string | null;
  /** a rejected text's problems, at line:col of that text */
  errors: ConfigProblem[];
  /** the components the apply touched (`modbus bus rtu1`, `control schedules`, `broker users`, `sync`) */
  components: string[];
  appliedAt: number | null;
  confirmedAt: number | null;
  /** when it was rejected, rolled back, or replaced by a later version */
  endedAt: number | null;
  rollbackOf: number | null;
  /** whether the gateway runs this version now */
  running: boolean;
}

/** What versions.ts adds as a new row. */
export interface NewConfigVersion {
  id: string;
  content: string | null;
  source: ConfigSource;
  principal: string;
  at: number;
  baseVersion: number | null;
  stage: 'staged' | 'rejected';
  reason?: string | null;
  code?: ConfigRefusalCode | null;
  errors?: ConfigProblem[];
  rollbackOf?: number | null;
}

/** One stage of one change, as it goes to `up/config/<id>`, the HTTP answer and the CLI. */
export interface ConfigStageReport {
  id: string;
  /** null when the change was refused before it became a version (a duplicate id, a message that is not JSON) */
  version: number | null;
  stage: ConfigStage;
  at: number;
  source: ConfigSource;
  principal: string;
  reason?: string;
  /** machine-readable reason: E_CONFIG_INVALID, E_CONFIG_STALE, E_CONFIG_DUPLICATE, E_CONFIG_SIGNATURE, E_CONFIG_FORBIDDEN, E_CONFIG_RESTART, E_CONFIG_UNCHANGED, E_CONFIG_PROBE, E_CONFIG_CONFIRM_TIMEOUT, E_CONFIG_APPLY, E_CONFIG_BUSY */
  code?: ConfigRefusalCode;
  errors?: ConfigProblem[];
  components?: string[];
  /** the version running after this stage */
  runningVersion: number | null;
  /** `applied` with commit-confirm: the deadline of the manual confirm, ms UTC */
  confirmBy?: number;
}

export type ConfigRefusalCode =
  | 'E_CONFIG_INVALID'
  | 'E_CONFIG_STALE'
  | 'E_CONFIG_DUPLICATE'
  | 'E_CONFIG_SIGNATURE'
  | 'E_CONFIG_FORBIDDEN'
  | 'E_CONFIG_RESTART'
  | 'E_CONFIG_UNCHANGED'
  | 'E_CONFIG_PROBE'
  | 'E_CONFIG_CONFIRM_TIMEOUT'
  | 'E_CONFIG_APPLY'
  | 'E_CONFIG_BUSY'
  | 'E_CONFIG_TOO_LARGE';

/** `config.<stage>` events' detail (edge/store/eventKinds.ts). */
export interface ConfigEventDetail {
  id: string;
  version: number | null;
  source: ConfigSource;
  principal: string;
  code?: ConfigRefusalCode;
  reason?: string;
  /** the first problems of a rejected text (at most 5) and how many there were */
  errors?: ConfigProblem[];
  errorCount?: number;
  components?: string[];
  baseVersion?: number | null;
  runningVersion: number | null;
}
