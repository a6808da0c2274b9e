/**
 * The server side of FC 20 (Read File Record) and FC 21 (Write File Record), for a unit that
 * keeps files (firmware.ts: a bootloader taking its image as file records).
 * // MODBUS Application Protocol V1.1b3 §6.14, §6.15: a request carries one or more
 * sub-requests, each a reference type (6), a file number (1..65535), a starting record number
 * (0..9999) and a record length in registers; a file holds 10000 records of one register.
 *
 * The requests are parsed here, the limits of the protocol checked; what the records hold is
 * the store's business. No framing and no imports: pdu.ts wraps the answer for the transport.
 */

export const FILE_READ = 0x14;
export const FILE_WRITE = 0x15;

/** §6.14: the only reference type */
const REFERENCE_TYPE = 6;
/** §6.14: records 0x0000..0x270F in a file */
export const RECORDS_PER_FILE = 10000;
const SUB_REQUEST = 7;
const ILLEGAL_DATA_ADDRESS = 0x02;
const ILLEGAL_DATA_VALUE = 0x03;

export interface FileRecordRef {
  file: number;
  /** the starting record number (0..9999) */
  record: number;
  /** registers (records) */
  length: number;
}

export interface FileRecordWrite extends FileRecordRef {
  /** 2 × length bytes, register by register, high byte first */
  data: Buffer;
}

/** What a unit with files implements; a refusal is an exception code for the whole request. */
export interface FileRecordStore {
  /** §6.14: each sub-request's record data (2 × length bytes), or an exception code */
  readFileRecords(refs: readonly FileRecordRef[]): Buffer[] | number;
  /** §6.15: writes every sub-request (all or none); undefined when done, or an exception code */
  writeFileRecords(writes: readonly FileRecordWrite[]): number | undefined;
}

/** The response PDU to an FC 20 / FC 21 request (function code first), or the exception code. */
export function fileRecordAnswer(store: FileRecordStore, pdu: Uint8Array): Buffer | number {
  return pdu[0] === FILE_READ ? read(store, pdu) : write(store, pdu);
}

/**
 * §6.14 Read File Record. Request: byte count (0x07..0xF5), then sub-requests of 7 bytes.
 * Response: response data length, then per sub-request: file response length (1 + 2N),
 * reference type 6, N registers.
 */
function read(store: FileRecordStore, pdu: Uint8Array): Buffer | number {
  const count = pdu[1] ?? 0;
  if (count < SUB_REQUEST || count > 0xf5 || count % SUB_REQUEST !== 0 || pdu.length < 2 + count) return ILLEGAL_DATA_VALUE;
  const refs: FileRecordRef[] = [];
  for (let o = 2; o < 2 + count; o += SUB_REQUEST) {
    const ref = { file: u16(pdu, o + 1), record: u16(pdu, o + 3), length: u16(pdu, o + 5) };
    if (pdu[o] !== REFERENCE_TYPE || !addressable(ref)) return ILLEGAL_DATA_ADDRESS;
    refs.push(ref);
  }
  // the response must fit a PDU: its data length is one byte, at most 0xF5
  const total = refs.reduce((n, r) => n + 2 + 2 * r.length, 0);
  if (total > 0xf5) return ILLEGAL_DATA_VALUE;
  const data = store.readFileRecords(refs);
  if (typeof data === 'number') return data;
  const out = Buffer.alloc(2 + total);
  out[0] = FILE_READ;
  out[1] = total;
  let o = 2;
  refs.forEach((r, i) => {
    out[o++] = 1 + 2 * r.length;
    out[o++] = REFERENCE_TYPE;
    const bytes = data[i]!;
    bytes.copy(out, o, 0, 2 * r.length);
    o += 2 * r.length;
  });
  return out;
}

/**
 * §6.15 Write File Record. Request: request data length (0x09..0xFB), then sub-requests of a
 * reference type, file number, record number, record length N and N registers. The normal
 * response is an echo of the request.
 */
function write(store: FileRecordStore, pdu: Uint8Array): Buffer | number {
  const count = pdu[1] ?? 0;
  if (count < SUB_REQUEST + 2 || count > 0xfb || pdu.length < 2 + count) return ILLEGAL_DATA_VALUE;
  const writes: FileRecordWrite[] = [];
  const end = 2 + count;
  for (let o = 2; o < end; ) {
    if (end - o < SUB_REQUEST) return ILLEGAL_DATA_VALUE;
    const ref = { file: u16(pdu, o + 1), record: u16(pdu, o + 3), length: u16(pdu, o + 5) };
    const bytes = 2 * ref.length;
    if (o + SUB_REQUEST + bytes > end) return ILLEGAL_DATA_VALUE;
    if (pdu[o] !== REFERENCE_TYPE || !addressable(ref)) return ILLEGAL_DATA_ADDRESS;
    writes.push({ ...ref, data: Buffer.from(pdu.subarray(o + SUB_REQUEST, o + SUB_REQUEST + bytes)) });
    o += SUB_REQUEST + bytes;
  }
  const refused = store.writeFileRecords(writes);
  if (refused !== undefined) return refused;
  return Buffer.from(pdu.subarray(0, end));
}

/** §6.14: file 1..65535, records 0..9999, and the last record read or written in the file too. */
function addressable(r: FileRecordRef): boolean {
  return r.file >= 1 && r.length >= 1 && r.record + r.length <= RECORDS_PER_FILE;
}

function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}
