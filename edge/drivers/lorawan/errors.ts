/**
 * Typed errors of the LoRaWAN driver (as ChirpStack's per-module errors: InvalidMIC,
 * InvalidDevNonce, …). Each carries a `reason`, the key it is counted under in metrics.
 */
import { StreetboxError, type ErrorCode } from '../../errors.js';

export type LoraErrorCode = Extract<ErrorCode, `E_LORA_${string}`>;

export class LoraError extends StreetboxError {
  /** metric key: why a datagram, frame or downlink was rejected */
  readonly reason: string;

  constructor(code: LoraErrorCode, reason: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.reason = reason;
  }
}

/** A datagram that is not Semtech UDP protocol v1/v2 (too short, too long, bad JSON, unknown version). */
export class ProtocolError extends LoraError {
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super('E_LORA_PROTOCOL', reason, message, options);
  }
}

/**
 * A well-formed datagram from a forwarder that is not served (semtech/forwarders.ts): reason
 * `unknown_forwarder` (not in lorawan.forwarders) or `forwarders_full` (no list, no free slot).
 */
export class ForwarderRefusedError extends LoraError {
  readonly gatewayEui: string;

  constructor(reason: 'unknown_forwarder' | 'forwarders_full', gatewayEui: string) {
    super(
      'E_LORA_PROTOCOL',
      reason,
      reason === 'unknown_forwarder' ? `gateway ${gatewayEui} is not in lorawan.forwarders` : `no free forwarder slot for gateway ${gatewayEui}`,
    );
    this.gatewayEui = gatewayEui;
  }
}

/** A PHYPayload that lora-packet cannot parse, or with an MType we do not accept. */
export class FrameError extends LoraError {
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super('E_LORA_FRAME', reason, message, options);
  }
}

export class MicError extends LoraError {
  constructor(message: string) {
    super('E_LORA_MIC', 'mic', message);
  }
}

/** reason: `replay` (counter not above the last one) or `fcnt_gap` (jump ≥ MAX_FCNT_GAP) */
export class FCntError extends LoraError {
  constructor(reason: 'replay' | 'fcnt_gap', message: string) {
    super('E_LORA_FCNT', reason, message);
  }
}

export class DevNonceError extends LoraError {
  constructor(message: string) {
    super('E_LORA_DEVNONCE', 'devnonce_reused', message);
  }
}

/** reason: `unknown_devaddr`, `unknown_deveui` */
export class UnknownDeviceError extends LoraError {
  constructor(reason: 'unknown_devaddr' | 'unknown_deveui' | 'unknown_device', message: string) {
    super('E_LORA_UNKNOWN_DEVICE', reason, message);
  }
}

export class DutyCycleError extends LoraError {
  constructor(message: string) {
    super('E_LORA_DUTY_CYCLE', 'duty_cycle', message);
  }
}

/** a downlink that cannot be sent: no forwarder address, too late for RX1 and RX2, TX_ACK error */
export class TxError extends LoraError {
  constructor(reason: string, message: string) {
    super('E_LORA_TX', reason, message);
  }
}
