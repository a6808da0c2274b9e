/**
 * The zod schemas only the OpenAPI document uses (openapi.ts): what the API answers, and the
 * request bodies that are checked elsewhere (a command's by the command pipeline, a deployment's
 * envelope by the firmware service). Each one is named: the document lists it once under
 * components.schemas, in the order they are named here, and refers to it.
 *
 * `answerSchemas` makes them when a document is made (at the first request for it) and they go
 * with it: a gateway nobody asks for its document holds none of these 400-odd schemas
 * (bench/footprint.ts).
 *
 * The answers are made from the store's and the services' typed rows (edge/store/types.ts,
 * edge/reconfig/records.ts, edge/firmware/records.ts); the `Fits` checks at the end fail the
 * typecheck when a row loses or retypes a field that a schema requires, and tests/api/openapi.test.ts
 * validates real answers against the document (a field added to a row and not here fails there).
 */
import { z } from 'zod';
import type { Named } from './schemas.js';
import { COMMAND_BODIES } from '../control/validate.js';
import type { ComponentStatus } from '../supervisor.js';
import type { ConfigStageReport, ConfigVersion } from '../reconfig/records.js';
import { CONFIG_STAGES } from '../reconfig/records.js';
import type { DeploymentReport, JobRecord } from '../firmware/records.js';
import { DEPLOYMENT_STATUSES, JOB_STAGES } from '../firmware/records.js';
import type { AlarmSpans, History } from '../store/api.js';
import type { CommandRecord, Consumer, LatestValue, Reading, StoreStats } from '../store/types.js';
import { COMMAND_STATUSES } from '../store/types.js';

/** The schemas of one document, each named with `named` (openapi.ts Components) as it is made. */
export function answerSchemas(named: Named) {
  const seq = z.int().min(0).describe('position in the buffer: readings and events share one seq space, never reused');
  const ms = z.int().describe('ms since the epoch, UTC');
  const severity = z.enum(['debug', 'info', 'warning', 'error', 'critical']);
  const role = z.enum(['technician', 'maintenance', 'central', 'viewer']);
  /** an open object: what a component or a driver reports, its fields its own */
  const open = z.record(z.string(), z.unknown());

  const errorBody = named(
    'Error',
    z
      .object({
        status: z.literal('error'),
        code: z.string().describe('E_USAGE, E_UNAUTHORIZED, E_FORBIDDEN, E_NOT_FOUND, E_INVALID_COMMAND, E_INTERLOCK, E_CONFIG_…, E_FW_…, E_COMPONENT'),
        error: z.string().describe('what is wrong; a bad parameter or field is named first: `limit: expected an integer 1..10000, got "x"`'),
        field: z.string().nullable().optional().describe('the parameter or field it is about'),
        id: z.string().optional().describe("a refused command: the recorded row's id"),
        reason: z.string().optional(),
        transaction: z.union([z.string(), z.number(), z.null()]).describe("the request's transaction, when it gave one"),
      })
      .describe('Every refusal and error: `{ status: "error", code, error, transaction }`'),
  );

  const health = named('Health', z.strictObject({ status: z.literal('ok') }));

  // ---- the buffer ----------------------------------------------------------------------------

  const quality = z.enum(['good', 'stale', 'bad']);
  const value = z.union([z.number(), z.boolean(), z.string(), z.null()]).describe('null only when quality is bad');

  const reading = named(
    'Reading',
    z.strictObject({ seq, ts: ms, device: z.string(), point: z.string(), value, unit: z.string().nullable(), quality }),
  );

  const event = named(
    'Event',
    z.strictObject({
      seq,
      ts: ms,
      device: z.string().nullable(),
      kind: z.string().describe('alarm.raised, alarm.cleared, comms.lost, comms.restored, command.*, storage.dropped, config.*, firmware.*, …'),
      severity,
      detail: open.describe('by kind'),
    }),
  );

  const readingsPage = named('ReadingsPage', z.strictObject({ readings: z.array(reading), next: seq.describe('pass as `after` for the next page') }));
  const eventsPage = named('EventsPage', z.strictObject({ events: z.array(event), next: seq.describe('pass as `after` for the next page') }));

  const refusalStats = z.strictObject({ events: z.int(), commands: z.int(), usedBytes: z.int(), maxBytes: z.int() });
  const autonomy = z.strictObject({
    bytesPerReading: z.number(),
    readingsPerDay: z.number().nullable(),
    days: z.number().nullable().describe('days of readings the buffer holds offline at the load measured'),
    measuredSinceMs: z.number(),
  });

  const storeStats = named(
    'StoreStats',
    z.strictObject({
      lastSeq: seq,
      readings: z.int(),
      events: z.int(),
      commands: z.int(),
      oldestReadingSeq: seq.nullable(),
      usedBytes: z.int(),
      fileBytes: z.int(),
      maxBytes: z.int(),
      droppedTotal: z.int(),
      refusals: refusalStats.optional(),
      autonomy,
    }),
  );

  const consumer = named('Consumer', z.strictObject({ name: z.string(), ackedSeq: seq, updatedAt: ms }));
  const consumerList = named(
    'ConsumerList',
    z.strictObject({ lastSeq: seq, consumers: z.array(consumer.extend({ behind: z.int().min(0).describe('seqs after its ack') })) }),
  );
  const consumerAck = named('ConsumerAck', consumer.extend({ moved: z.boolean().describe('false: the seq was not past its ack (forward only)') }));

  // ---- the gateway and its devices -----------------------------------------------------------

  const componentStatus = z.strictObject({
    name: z.string(),
    state: z.string().describe('running, starting, degraded, stopped, …'),
    restarts: z.int(),
    failures: z.int(),
    lastError: z.string().nullable(),
    since: ms,
  });

  const status = named(
    'Status',
    z
      .looseObject({
        gateway: z.string(),
        now: ms,
        startedAt: ms.optional(),
        components: z.array(componentStatus).optional(),
        store: storeStats,
        ingestPending: z.int().optional(),
        config: open.optional().describe('the configuration version that runs, and one awaiting a manual confirm'),
        sync: open.nullable().optional().describe('the upstream: connected, lag, bytes today'),
        lorawan: open.nullable().optional(),
        consumers: z.array(consumer),
        devices: z.array(open).describe("the drivers' rows: id, online, lastSeen, failures, …"),
      })
      .describe("the gateway's status; components may add fields of their own"),
  );

  const availability = {
    online: z.boolean().nullable().describe('null: not known yet'),
    lastSeen: ms.nullable(),
  };

  const deviceSummary = z.strictObject({
    id: z.string(),
    name: z.string().nullable(),
    profile: z.string(),
    transport: z.enum(['modbus', 'lorawan']),
    bus: z.string().optional(),
    unit: z.int().nullable().optional(),
    devEui: z.string().optional(),
    groups: z.array(z.string()),
    allowCommands: z.boolean(),
    ...availability,
  });

  const deviceList = named('DeviceList', z.strictObject({ devices: z.array(named('DeviceSummary', deviceSummary)) }));

  const latestValue = named('LatestValue', z.strictObject({ value, unit: z.string().nullable(), quality, ts: ms, seq }));

  const device = named(
    'Device',
    deviceSummary.extend({
      config: open.describe("the device's entry of devices.yaml as loaded (defaults filled in)"),
      values: z.record(z.string(), latestValue).describe('the latest value of each point'),
      driver: open.nullable().describe("its driver's row (failures, last error, radio figures)"),
    }),
  );

  // ---- history -------------------------------------------------------------------------------

  const series = z.strictObject({
    point: z.string(),
    unit: z.string().nullable(),
    type: z.enum(['number', 'boolean', 'string']),
    t: z.array(z.number()).describe('bucket starts'),
    min: z.array(z.number().nullable()),
    mean: z.array(z.number().nullable()),
    max: z.array(z.number().nullable()),
    last: z.array(z.union([z.number(), z.string(), z.null()])),
    count: z.array(z.int()).describe('good readings'),
    bad: z.array(z.int()).describe('readings of quality bad or stale'),
  });

  const alarmSpans = z.strictObject({
    name: z.string(),
    severity: severity.nullable(),
    spans: z.array(z.tuple([ms, ms.nullable()])).describe('[start, end]; end null: still active'),
    dropped: z.int().describe('the oldest spans left out'),
  });

  const history = named(
    'History',
    z.strictObject({
      device: z.string(),
      from: ms,
      to: ms,
      step: z.int().describe('ms per bucket'),
      series: z.array(series),
      marks: z
        .array(
          z.strictObject({
            ts: ms,
            id: z.string(),
            action: z.string(),
            level: z.number().nullable(),
            status: z.enum(COMMAND_STATUSES as [string, ...string[]]),
            by: z.string(),
            role: z.string(),
            target: z.strictObject({ kind: z.enum(['device', 'group']), id: z.string() }),
          }),
        )
        .describe("the commands of the device and its groups over the range (the charts' marks)"),
      alarms: z.array(alarmSpans),
    }),
  );

  // ---- commands ------------------------------------------------------------------------------

  const command = named(
    'Command',
    z.strictObject({
      id: z.string(),
      ts: ms,
      source: z.strictObject({ role: z.union([role, z.enum(['schedule', 'system'])]), principal: z.string() }),
      target: z.strictObject({ kind: z.enum(['device', 'group']), id: z.string() }),
      action: z.string(),
      params: open,
      priority: z.int(),
      expiresAt: ms.nullable(),
      status: z.enum(COMMAND_STATUSES as [string, ...string[]]),
      result: z.unknown().describe('the outcome: read-back values, or the refusal `{ code, error, field }`'),
      updatedAt: ms,
    }),
  );

  const commandList = named('CommandList', z.strictObject({ commands: z.array(command) }));

  const commandAccepted = named(
    'CommandAccepted',
    z.strictObject({ id: z.string(), status: z.literal('queued'), transaction: z.union([z.string(), z.number()]).optional() }),
  );

  // ---- the live feed -------------------------------------------------------------------------

  const liveTicket = named(
    'LiveTicket',
    z.strictObject({
      ticket: z.string().describe('single use: GET /api/v1/live?ticket=…'),
      expiresInS: z.number(),
      role,
      principal: z.string(),
      may: z.strictObject({ commandLighting: z.boolean(), commandTraffic: z.boolean() }).describe('the controls the page may offer (the API checks again)'),
    }),
  );

  // ---- configuration -------------------------------------------------------------------------

  const configSource = z.enum(['file', 'technician', 'central']);
  const problem = z.strictObject({ line: z.int(), col: z.int(), path: z.string(), message: z.string() });

  const configVersion = named(
    'ConfigVersion',
    z.strictObject({
      version: z.int().min(1),
      id: z.string(),
      sha256: z.string(),
      bytes: z.int(),
      source: configSource,
      principal: z.string(),
      at: ms,
      baseVersion: z.int().nullable(),
      stage: z.enum(CONFIG_STAGES),
      reason: z.string().nullable(),
      errors: z.array(problem),
      components: z.array(z.string()),
      appliedAt: ms.nullable(),
      confirmedAt: ms.nullable(),
      endedAt: ms.nullable(),
      rollbackOf: z.int().nullable(),
      running: z.boolean(),
    }),
  );

  const configVersionList = named(
    'ConfigVersionList',
    z.strictObject({
      versions: z.array(configVersion),
      running: z.int().nullable(),
      awaitingConfirm: z.strictObject({ version: z.int(), confirmBy: ms }).nullable(),
    }),
  );

  const configVersionText = named(
    'ConfigVersionText',
    z.strictObject({ version: configVersion, content: z.string().nullable().describe('the text, every secret as ***; null for a change refused before it became a text') }),
  );

  const configReport = named(
    'ConfigStageReport',
    z.strictObject({
      id: z.string(),
      version: z.int().nullable(),
      stage: z.enum(CONFIG_STAGES),
      at: ms,
      source: configSource,
      principal: z.string(),
      reason: z.string().optional(),
      code: z.string().optional().describe('E_CONFIG_INVALID, E_CONFIG_STALE, E_CONFIG_DUPLICATE, …'),
      errors: z.array(problem).optional(),
      components: z.array(z.string()).optional(),
      runningVersion: z.int().nullable(),
      confirmBy: ms.optional(),
    }),
  );

  // ---- firmware ------------------------------------------------------------------------------

  const firmwareCode = z.string().nullable().describe('E_FW_INVALID, E_FW_SIGNATURE, E_FW_TARGET, …');
  const version = z.union([z.number(), z.string(), z.null()]);

  const deploymentReport = named(
    'DeploymentReport',
    z.strictObject({
      id: z.string(),
      gateway: z.string(),
      status: z.enum(DEPLOYMENT_STATUSES),
      code: firmwareCode,
      reason: z.string().nullable(),
      artifact: z.strictObject({ name: z.string(), version: z.string(), size: z.int(), sha256: z.string() }),
      wave: z.int(),
      waves: z.int(),
      counts: z.record(z.enum(JOB_STAGES), z.int()),
      jobs: z.array(
        z.strictObject({
          device: z.string(),
          stage: z.enum(JOB_STAGES),
          wave: z.int(),
          bytesAcked: z.int(),
          bytes: z.int(),
          waiting: z.string().nullable(),
          code: firmwareCode,
          reason: z.string().nullable(),
          versionBefore: version,
          versionAfter: version,
        }),
      ),
      at: ms,
    }),
  );

  const deploymentList = named('DeploymentList', z.strictObject({ deployments: z.array(deploymentReport) }));

  const job = named(
    'Job',
    z.strictObject({
      deployment: z.string(),
      device: z.string(),
      method: z.string(),
      wave: z.int(),
      stage: z.enum(JOB_STAGES),
      blocksAcked: z.int(),
      blocksTotal: z.int(),
      bytesAcked: z.int(),
      versionBefore: version,
      versionAfter: version,
      waiting: z.string().nullable(),
      code: firmwareCode,
      reason: z.string().nullable(),
      attempts: z.int(),
      stageAt: ms,
      startedAt: ms.nullable(),
      endedAt: ms.nullable(),
    }),
  );

  const deploymentDetail = named('DeploymentDetail', z.strictObject({ report: deploymentReport, jobs: z.array(job) }));

  const storedArtifact = named('StoredArtifact', z.strictObject({ sha256: z.string(), size: z.int() }));

  // ---- request bodies checked elsewhere ------------------------------------------------------

  /** The body of a command, one schema per action: what the pipeline validates (edge/control/validate.ts). */
  const commandBody = named(
    'CommandBody',
    z.discriminatedUnion('action', [
      named('DimCommand', COMMAND_BODIES.dim),
      named('OnCommand', COMMAND_BODIES.on),
      named('OffCommand', COMMAND_BODIES.off),
      named('OverrideCommand', COMMAND_BODIES.override),
      named('ReleaseCommand', COMMAND_BODIES.release),
      named('ProgramCommand', COMMAND_BODIES.program),
      named('WriteCommand', COMMAND_BODIES.write),
    ]),
  );

  /** The envelope as the firmware service parses it (edge/firmware/manifest.ts parseEnvelope): documented here, checked there. */
  const deploymentEnvelope = named(
    'DeploymentEnvelope',
    z.strictObject({
      manifest: z.string().meta({ contentMediaType: 'application/json' }).describe('the manifest as its JSON text, exactly what was signed (README "Firmware")'),
      signature: z.string().meta({ contentEncoding: 'base64' }).describe('ed25519 over `streetbox-deploy-v1\\n<gateway>\\n<sha256 of the manifest text>`, checked with firmware.signingKeys'),
    }),
  );

  /** What the document itself is, as far as the document says. */
  const openApiDocument = named(
    'OpenApiDocument',
    z.looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) }),
  );

  return {
    errorBody,
    health,
    reading,
    event,
    readingsPage,
    eventsPage,
    storeStats,
    consumer,
    consumerList,
    consumerAck,
    status,
    deviceList,
    device,
    history,
    command,
    commandList,
    commandAccepted,
    liveTicket,
    configVersion,
    configVersionList,
    configVersionText,
    configReport,
    deploymentReport,
    deploymentList,
    deploymentDetail,
    storedArtifact,
    commandBody,
    deploymentEnvelope,
    openApiDocument,
    // for the checks below
    latestValue,
    componentStatus,
    series,
    alarmSpans,
    job,
  };
}

/** The schemas of a document (answerSchemas). */
export type Answers = ReturnType<typeof answerSchemas>;

// ---- compile-time checks: the rows fit the schemas -----------------------------------------

/** T (a row the API answers with) fits the schema's output: a field the schema requires, renamed or retyped in T, fails the typecheck. */
type Fits<T extends z.output<S>, S extends z.ZodType> = [T, S];

export type RowsFitAnswers = [
  Fits<Reading, Answers['reading']>,
  Fits<Consumer, Answers['consumer']>,
  Fits<StoreStats, Answers['storeStats']>,
  Fits<LatestValue, Answers['latestValue']>,
  Fits<CommandRecord, Answers['command']>,
  Fits<ComponentStatus, Answers['componentStatus']>,
  Fits<History['series'][number], Answers['series']>,
  Fits<AlarmSpans, Answers['alarmSpans']>,
  Fits<ConfigVersion, Answers['configVersion']>,
  Fits<ConfigStageReport, Answers['configReport']>,
  Fits<DeploymentReport, Answers['deploymentReport']>,
  Fits<JobRecord, Answers['job']>,
];
