/**
 * Semtech UDP packet-forwarder protocol, versions 1 and 2 (Semtech PROTOCOL.TXT, "Basic
 * communication protocol between Lora gateway and server"): parse and serialise datagrams.
 * Wire spelling (rxpk, txpk, lsnr, …) stays in this file and the JSON types below.
 */
import { ProtocolError } from '../errors.js';

// PROTOCOL.TXT §3-§6: identifiers
export const PUSH_DATA = 0x00;
export const PUSH_ACK = 0x01;
export const PULL_DATA = 0x02;
export const PULL_RESP = 0x03;
export const PULL_ACK = 0x04;
export const TX_ACK = 0x05;

export const SUPPORTED_VERSIONS: ReadonlySet<number> = new Set([1, 2]);
/** The forwarder's own buffers are 2,048 bytes (TX_BUFF_SIZE ≈ 64 kB for a full batch); anything past this is not a forwarder. */
export const MAX_DATAGRAM_BYTES = 65_000;

/** PROTOCOL.TXT §4: an rxpk object (the fields streetbox uses; others are kept as is). */
export interface RxPk {
  time?: string;
  tmst: number;
  chan?: number;
  rfch?: number;
  freq: number;
  stat: number;
  modu: string;
  datr: string | number;
  codr?: string;
  rssi: number;
  lsnr?: number;
  size: number;
  data: string;
}

/** PROTOCOL.TXT §4: a stat object. */
export interface Stat {
  time?: string;
  lati?: number;
  long?: number;
  alti?: number;
  rxnb?: number;
  rxok?: number;
  rxfw?: number;
  ackr?: number;
  dwnb?: number;
  txnb?: number;
}

/** PROTOCOL.TXT §6: a txpk object. */
export interface TxPk {
  imme?: boolean;
  tmst?: number;
  freq: number;
  rfch: number;
  powe: number;
  modu: 'LORA';
  datr: string;
  codr: string;
  ipol: boolean;
  size: number;
  data: string;
  ncrc?: boolean;
}

export type Datagram =
  | { kind: 'push_data'; version: number; token: number; gatewayEui: string; rxpk: RxPk[]; stat: Stat | null }
  | { kind: 'pull_data'; version: number; token: number; gatewayEui: string }
  | { kind: 'tx_ack'; version: number; token: number; gatewayEui: string; error: string }
  | { kind: 'push_ack' | 'pull_ack'; version: number; token: number }
  | { kind: 'pull_resp'; version: number; token: number; txpk: TxPk };

function json(buf: Buffer, offset: number): unknown {
  try {
    return JSON.parse(buf.subarray(offset).toString('utf8')) as unknown;
  } catch (err) {
    throw new ProtocolError('malformed_json', 'the JSON object of the datagram does not parse', { cause: err });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** PROTOCOL.TXT §4: validates one rxpk; a bad one rejects the datagram (a forwarder never sends one). */
function rxpkOf(v: unknown): RxPk {
  if (!isObject(v)) throw new ProtocolError('bad_rxpk', 'rxpk item is not an object');
  const { tmst, freq, stat, modu, datr, rssi, size, data, lsnr } = v;
  if (typeof tmst !== 'number' || !Number.isInteger(tmst) || tmst < 0 || tmst > 0xffffffff) {
    throw new ProtocolError('bad_rxpk', 'rxpk.tmst: expected a 32-bit unsigned integer');
  }
  if (typeof freq !== 'number' || !Number.isFinite(freq)) throw new ProtocolError('bad_rxpk', 'rxpk.freq: expected MHz');
  if (typeof stat !== 'number') throw new ProtocolError('bad_rxpk', 'rxpk.stat: expected -1, 0 or 1');
  if (typeof modu !== 'string') throw new ProtocolError('bad_rxpk', 'rxpk.modu: expected "LORA" or "FSK"');
  if (typeof datr !== 'string' && typeof datr !== 'number') throw new ProtocolError('bad_rxpk', 'rxpk.datr: expected a data rate');
  if (typeof rssi !== 'number' || !Number.isFinite(rssi)) throw new ProtocolError('bad_rxpk', 'rxpk.rssi: expected dBm');
  if (lsnr !== undefined && (typeof lsnr !== 'number' || !Number.isFinite(lsnr))) throw new ProtocolError('bad_rxpk', 'rxpk.lsnr: expected dB');
  if (typeof size !== 'number' || typeof data !== 'string') throw new ProtocolError('bad_rxpk', 'rxpk.size/data: expected a size and base64 data');
  return v as unknown as RxPk;
}

/** Parses one datagram; throws a ProtocolError whose `reason` is the metric key. */
export function parseDatagram(buf: Buffer): Datagram {
  if (buf.length < 4) throw new ProtocolError('too_short', `datagram of ${buf.length} bytes: the header alone is 4`);
  if (buf.length > MAX_DATAGRAM_BYTES) throw new ProtocolError('too_long', `datagram of ${buf.length} bytes (max ${MAX_DATAGRAM_BYTES})`);
  const version = buf[0]!;
  if (!SUPPORTED_VERSIONS.has(version)) throw new ProtocolError('unknown_version', `protocol version ${version} (expected 1 or 2)`);
  const token = buf.readUInt16BE(1);
  const id = buf[3]!;
  switch (id) {
    case PUSH_DATA: {
      // §3.2: ver | token | 0x00 | gateway EUI (8) | JSON
      if (buf.length < 12 + 2) throw new ProtocolError('too_short', 'PUSH_DATA without gateway EUI and JSON');
      const gatewayEui = buf.subarray(4, 12).toString('hex');
      const body = json(buf, 12);
      if (!isObject(body)) throw new ProtocolError('malformed_json', 'PUSH_DATA: expected a JSON object');
      const rxpk = body.rxpk === undefined ? [] : body.rxpk;
      if (!Array.isArray(rxpk)) throw new ProtocolError('bad_rxpk', 'PUSH_DATA: rxpk is not an array');
      const stat = body.stat === undefined ? null : body.stat;
      if (stat !== null && !isObject(stat)) throw new ProtocolError('bad_stat', 'PUSH_DATA: stat is not an object');
      return { kind: 'push_data', version, token, gatewayEui, rxpk: rxpk.map(rxpkOf), stat: stat as Stat | null };
    }
    case PULL_DATA: {
      // §5.2: ver | token | 0x02 | gateway EUI (8)
      if (buf.length < 12) throw new ProtocolError('too_short', 'PULL_DATA without gateway EUI');
      if (buf.length > 12) throw new ProtocolError('too_long', 'PULL_DATA longer than 12 bytes');
      return { kind: 'pull_data', version, token, gatewayEui: buf.subarray(4, 12).toString('hex') };
    }
    case TX_ACK: {
      // §5.5 (v2): ver | token | 0x05 | gateway EUI (8) | optional JSON {"txpk_ack":{"error":…}}
      if (buf.length < 12) throw new ProtocolError('too_short', 'TX_ACK without gateway EUI');
      const gatewayEui = buf.subarray(4, 12).toString('hex');
      let error = 'NONE';
      // Some forwarders pad with a NUL; treat an empty/NUL body as success.
      const rest = buf.subarray(12);
      if (rest.length > 0 && !(rest.length === 1 && rest[0] === 0)) {
        const body = json(buf, 12);
        if (!isObject(body)) throw new ProtocolError('malformed_json', 'TX_ACK: expected a JSON object');
        const ack = body.txpk_ack;
        if (isObject(ack) && typeof ack.error === 'string') error = ack.error;
        else if (isObject(ack) && ack.error === undefined) error = 'NONE';
        else throw new ProtocolError('malformed_json', 'TX_ACK: expected {"txpk_ack":{"error":…}}');
      }
      return { kind: 'tx_ack', version, token, gatewayEui, error };
    }
    case PUSH_ACK:
    case PULL_ACK:
      if (buf.length !== 4) throw new ProtocolError('too_long', 'ACK longer than 4 bytes');
      return { kind: id === PUSH_ACK ? 'push_ack' : 'pull_ack', version, token };
    case PULL_RESP: {
      const body = json(buf, 4);
      if (!isObject(body) || !isObject(body.txpk)) throw new ProtocolError('malformed_json', 'PULL_RESP: expected {"txpk":{…}}');
      return { kind: 'pull_resp', version, token, txpk: body.txpk as unknown as TxPk };
    }
    default:
      throw new ProtocolError('unknown_identifier', `unknown identifier 0x${id.toString(16)}`);
  }
}

function header(version: number, token: number, id: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = version;
  b.writeUInt16BE(token & 0xffff, 1);
  b[3] = id;
  return b;
}

/** §3.3 / §5.3: PUSH_ACK and PULL_ACK echo the version and token of the request. */
export function ack(version: number, token: number, id: typeof PUSH_ACK | typeof PULL_ACK): Buffer {
  return header(version, token, id);
}

/** §5.4: PULL_RESP: ver | token (v2; zero in v1) | 0x03 | {"txpk":…} */
export function pullResp(version: number, token: number, txpk: TxPk): Buffer {
  return Buffer.concat([header(version, version >= 2 ? token : 0, PULL_RESP), Buffer.from(JSON.stringify({ txpk }))]);
}

// Encoders for the forwarder side (simulator, tests).
export function pushData(version: number, token: number, gatewayEui: string, body: { rxpk?: RxPk[]; stat?: Stat }): Buffer {
  return Buffer.concat([header(version, token, PUSH_DATA), Buffer.from(gatewayEui, 'hex'), Buffer.from(JSON.stringify(body))]);
}

export function pullData(version: number, token: number, gatewayEui: string): Buffer {
  return Buffer.concat([header(version, token, PULL_DATA), Buffer.from(gatewayEui, 'hex')]);
}

export function txAck(version: number, token: number, gatewayEui: string, error = 'NONE'): Buffer {
  return Buffer.concat([header(version, token, TX_ACK), Buffer.from(gatewayEui, 'hex'), Buffer.from(JSON.stringify({ txpk_ack: { error } }))]);
}

/** §5.5 Table: TX_ACK error values. NONE means the packet is programmed for emission. */
export const TX_ACK_ERRORS = ['NONE', 'TOO_LATE', 'TOO_EARLY', 'COLLISION_PACKET', 'COLLISION_BEACON', 'TX_FREQ', 'TX_POWER', 'GPS_UNLOCKED'] as const;

/** tmst is a 32-bit µs counter that wraps every ~71.6 min: all arithmetic modulo 2^32. */
export function tmstAdd(tmst: number, us: number): number {
  return (tmst + us) >>> 0;
}

/** b − a modulo 2^32, as a signed difference in (−2^31, 2^31]. */
export function tmstDiff(a: number, b: number): number {
  return ((b - a) | 0);
}
