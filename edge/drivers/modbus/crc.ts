/**
 * CRC-16/MODBUS, the one implementation the driver (framing.ts) and the simulator
 * (edge/sim/modbus/rtuServer.ts) share. // Modbus over serial line V1.02 §6.2.2: polynomial
 * 0xA001 (reflected 0x8005), initial value 0xFFFF, appended low byte first. Table-driven for speed.
 */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}

/** Writes the CRC of `buf[0, end)` into `buf[end]` (low byte) and `buf[end + 1]`. */
export function putCrc(buf: Uint8Array, end: number): void {
  const crc = crc16(buf, 0, end);
  buf[end] = crc & 0xff;
  buf[end + 1] = crc >>> 8;
}

/** A frame (unit + PDU) with its CRC appended. */
export function withCrc(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(frame.length + 2);
  out.set(frame, 0);
  putCrc(out, frame.length);
  return out;
}

/** True when the last two bytes of `frame` are the CRC of the bytes before them. */
export function crcOk(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const crc = crc16(frame, 0, frame.length - 2);
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >>> 8;
}
