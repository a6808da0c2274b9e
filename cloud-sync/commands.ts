/**
 * Commands from central on `streetbox/<gw>/down/commands`: the sync subscribes (QoS 1, in the
 * persistent session, so commands sent while the gateway was offline still arrive), parses each
 * message and hands it to an injected handler (the control pipeline, with role `central`).
 * Without a handler, or for a malformed message, the command is rejected: a `command.rejected`
 * event is recorded (and so goes upstream with the events) and the outcome is published on
 * `streetbox/<gw>/commands/<id>`.
 *
 * Home Assistant's commands upstream (`devices/<id>/set`, cloud-sync/homeAssistant.ts) take the
 * same road through `handle` with the target from the topic and their own principal, and the
 * shorthand of every set topic (a bare level, ON / OFF: edge/flows/nodes/commandShorthand.js).
 */
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { Clock } from '../edge/clock.js';
import { errorMessage, type ErrorCode } from '../edge/errors.js';
import { commandShorthand } from '../edge/flows/nodes/commandShorthand.js';
import { parseJsonWithin, type JsonParsed } from '../edge/jsonLimits.js';
import type { Logger } from '../edge/log.js';
import type { Store } from '../edge/store/api.js';
import type { CommandStatus } from '../edge/store/types.js';
import type { GatewayTopics } from './topics.js';

/** A parsed command message from central, as the handler receives it. */
export interface CentralCommand {
  /** the message's `id` (else its `transaction`) when it is a usable id, else one generated here */
  id: string;
  /** the message as central sent it: `{ "id", "target": {…}, "action", … }` */
  message: Record<string, unknown>;
  topic: string;
  receivedAt: number;
  /** who sent it, when not central's `down/commands` (`upstream`): `upstream:homeassistant` */
  principal?: string;
}

/** A command that came on a device's set topic: its target is the topic's, the body may be the shorthand. */
export interface SetTopicCommand {
  target: { kind: 'device'; id: string };
  principal: string;
}

export interface CommandOutcome {
  id: string;
  status: CommandStatus | 'error';
  code?: ErrorCode;
  error?: string;
  result?: unknown;
}

/** The control pipeline's entry for central; resolves with the outcome to publish. */
export type CommandHandler = (cmd: CentralCommand) => Promise<CommandOutcome>;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export interface CentralCommandsOptions {
  store: Store;
  topics: GatewayTopics;
  log: Logger;
  clock: Clock;
  /** undefined: every command is rejected (E_FORBIDDEN) */
  handler?: CommandHandler | undefined;
}

export class CentralCommands {
  received = 0;
  rejected = 0;
  private lastRejectLog = -Infinity;
  private rejectedLogged = 0;

  constructor(private readonly opts: CentralCommandsOptions) {}

  subscribe(client: MqttClient): void {
    client.subscribe(this.opts.topics.commandsDown, { qos: 1 }, (err) => {
      if (!err) return;
      // a connection that closes fails its pending SUBSCRIBE too: the next connection subscribes again
      const level = /closed|disconnecting/i.test(err.message) ? 'debug' : 'warn';
      this.opts.log[level]({ err, topic: this.opts.topics.commandsDown }, 'subscribing to commands from central failed');
    });
  }

  /** Handles one message of the commands topic, or of a device's set topic (`set`); never rejects. */
  async handle(client: MqttClient, topic: string, payload: Buffer, set?: SetTopicCommand): Promise<void> {
    this.received++;
    const receivedAt = this.opts.clock.now();
    const principal = set?.principal ?? 'upstream';
    // the shorthand on a set topic, else within the limits of edge/jsonLimits.ts (size, nesting) before anything recurses into it
    const short = set ? commandShorthand(payload.toString('utf8')) : null;
    const parsed: JsonParsed = short ? { ok: true, value: short } : parseJsonWithin(payload);
    const message = parsed.ok ? parsed.value : undefined;
    const m = message as { id?: unknown; transaction?: unknown } | undefined;
    const rawId = typeof m?.id === 'string' ? m.id : m?.transaction;
    const id = typeof rawId === 'string' && ID_RE.test(rawId) ? rawId : randomUUID();
    const extra: Record<string, unknown> = set ? { target: set.target } : {};
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return this.reject(client, id, principal, 'E_INVALID_COMMAND', `malformed command: ${parsed.ok || parsed.limit === null ? 'expected a JSON object' : parsed.error}`, { bytes: payload.length, ...extra });
    }
    // a set topic's target is the topic's, whatever the body says
    const msg: Record<string, unknown> = { ...(message as Record<string, unknown>), ...extra };
    if (typeof msg.action !== 'string' || msg.action === '') {
      return this.reject(client, id, principal, 'E_INVALID_COMMAND', 'malformed command: "action" must be a non-empty string', extra);
    }
    const handler = this.opts.handler;
    if (!handler) {
      return this.reject(client, id, principal, 'E_FORBIDDEN', 'commands from central are not enabled on this gateway', { action: msg.action, ...extra });
    }
    let outcome: CommandOutcome;
    try {
      outcome = await handler({ id, message: msg, topic, receivedAt, ...(set ? { principal } : {}) });
    } catch (err) {
      outcome = { id, status: 'error', code: 'E_SYNC', error: errorMessage(err) };
    }
    this.publish(client, { ...outcome, id });
  }

  private reject(client: MqttClient, id: string, principal: string, code: ErrorCode, reason: string, extra: Record<string, unknown>): void {
    this.rejected++;
    try {
      // in the refusal share of the quota (edge/store/quota.ts): a flood of malformed commands
      // from upstream can only push out older refusals, never readings, events or commands
      this.opts.store.appendEvent(
        {
          kind: 'command.rejected',
          severity: 'warning',
          detail: { transaction: id, source: { role: 'central', principal }, code, error: reason, ...extra },
        },
        { refusal: true },
      );
    } catch (err) {
      this.opts.log.error({ err, id }, 'recording a rejected command failed');
    }
    // logged at most every 10 s, with the count since (a flood must not flood the log)
    const now = Date.now();
    if (now - this.lastRejectLog >= 10_000) {
      this.opts.log.warn({ id, code, reason, rejectedSinceLastLine: this.rejected - this.rejectedLogged }, 'command from central rejected');
      this.lastRejectLog = now;
      this.rejectedLogged = this.rejected;
    }
    this.publish(client, { id, status: 'rejected', code, error: reason });
  }

  private publish(client: MqttClient, outcome: CommandOutcome): void {
    client.publish(this.opts.topics.commandOutcome(outcome.id), JSON.stringify(outcome), { qos: 1 }, (err) => {
      if (err) this.opts.log.debug({ err, id: outcome.id }, 'publishing a command outcome failed');
    });
  }
}
