/**
 * createLogger's formats: JSON lines as before when the destination is not a terminal, lines
 * for people on a terminal (or asked for), secrets redacted in both; journald priority prefixes
 * when stdout is the journal — checked in a real child process whose stdout is a file named by
 * $JOURNAL_STREAM.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, journalStreamMatches, stdoutIsJournal } from '../../edge/log.js';
import { tempDir } from '../helpers/tmp.js';

const LOG_TS = new URL('../../edge/log.ts', import.meta.url).pathname;

/** A destination that collects what is written; `isTTY` as a terminal would say. */
function capture(isTTY?: boolean): { stream: Writable & { isTTY?: boolean }; text: () => string } {
  let text = '';
  const stream: Writable & { isTTY?: boolean } = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  if (isTTY !== undefined) stream.isTTY = isTTY;
  return { stream, text: () => text };
}

const SECRETS = { password: 'PASS-1', sync: { url: 'mqtts://gw:URLPASS-1@city.example', token: 'TOK-1' }, appKey: 'APPKEY-1' };

describe('createLogger formats', () => {
  it('writes JSON lines, byte for byte as before, when the destination is not a terminal', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out.stream });
    log.child({ module: 'modbus' }).info({ device: 'lamp-1', value: 40 }, 'read');
    expect(out.text()).toMatch(new RegExp(`^\\{"level":30,"time":\\d+,"pid":${process.pid},"module":"modbus","device":"lamp-1","value":40,"msg":"read"\\}\\n$`));
  });

  it('writes lines for people on a terminal, in the gateway zone, without colour under NO_COLOR', () => {
    const out = capture(true);
    const log = createLogger({ level: 'info', destination: out.stream, timezone: 'Europe/Amsterdam', env: { NO_COLOR: '1' } });
    log.child({ gateway: 'gw-1', module: 'modbus' }).warn({ device: 'lamp-12', unit: 12 }, 'modbus device offline');
    const text = out.text();
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0[12]:00 WARN {2}modbus\/lamp-12 modbus device offline unit=12\n$/);
    expect(text).not.toContain('\x1b[');
  });

  it('colours on a terminal, and when forced', () => {
    const tty = capture(true);
    createLogger({ destination: tty.stream, env: {} }).error('bad');
    expect(tty.text()).toContain('\x1b[31mERROR');
    const forced = capture();
    createLogger({ destination: forced.stream, format: 'pretty', env: { FORCE_COLOR: '1' } }).info('ok');
    expect(forced.text()).toContain('\x1b[32mINFO');
  });

  it('--log-format json keeps JSON on a terminal; pretty gives lines in a pipe', () => {
    const tty = capture(true);
    createLogger({ destination: tty.stream, format: 'json' }).info('x');
    expect(JSON.parse(tty.text())).toMatchObject({ level: 30, msg: 'x' });
    const pipe = capture();
    createLogger({ destination: pipe.stream, format: 'pretty' }).info('x');
    expect(pipe.text()).toMatch(/^\S+\+00:00 INFO {2}x\n$/);
  });

  it('redacts secrets in both formats', () => {
    for (const format of ['json', 'pretty'] as const) {
      const out = capture();
      createLogger({ destination: out.stream, format }).error({ ...SECRETS, err: Object.assign(new Error('failed'), { password: 'ERRPASS-1' }) }, 'with secrets');
      const text = out.text();
      for (const secret of ['PASS-1', 'URLPASS-1', 'TOK-1', 'APPKEY-1', 'ERRPASS-1']) expect(text, `${format}: ${secret}`).not.toContain(secret);
      expect(text, format).toContain('[redacted]');
    }
  });

  it('refuses a time zone that does not exist, naming the option', () => {
    expect(() => createLogger({ destination: capture().stream, format: 'pretty', timezone: 'Mars/Olympus' })).toThrow(/"timezone" must be an IANA time zone.*Mars\/Olympus/);
  });
});

describe('journald priorities', () => {
  it('knows stdout is the journal only when $JOURNAL_STREAM names fd 1', () => {
    const fd1 = { dev: 64768n, ino: 1234567n };
    expect(journalStreamMatches('64768:1234567', fd1)).toBe(true);
    expect(journalStreamMatches('64768:1234567', { dev: 64768, ino: 1234567 })).toBe(true);
    expect(journalStreamMatches('64768:1234568', fd1)).toBe(false);
    expect(journalStreamMatches('1:1234567', fd1)).toBe(false);
    expect(journalStreamMatches('garbage', fd1)).toBe(false);
    expect(journalStreamMatches(undefined, fd1)).toBe(false);
    expect(stdoutIsJournal({ JOURNAL_STREAM: '64768:1234567' }, () => fd1)).toBe(true);
    // stdout redirected elsewhere by a shell inside the unit: the variable is inherited, the fd is not the journal
    expect(stdoutIsJournal({ JOURNAL_STREAM: '64768:1234567' }, () => ({ dev: 64768n, ino: 99n }))).toBe(false);
    expect(stdoutIsJournal({}, () => fd1)).toBe(false);
    expect(stdoutIsJournal({ JOURNAL_STREAM: '64768:1234567' }, () => {
      throw new Error('EBADF');
    })).toBe(false);
  });

  it('prefixes each line with its priority when asked, JSON and pretty (continuation lines too)', () => {
    const json = capture();
    const log = createLogger({ level: 'trace', destination: json.stream, journald: true });
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.child({ module: 'm' }).warn('w');
    log.error('e');
    log.fatal('f');
    const lines = json.text().trim().split('\n');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<7>', '<7>', '<6>', '<4>', '<3>', '<2>']);
    expect(JSON.parse(lines[3]!.slice(3))).toMatchObject({ level: 40, module: 'm', msg: 'w' });

    const pretty = capture();
    createLogger({ destination: pretty.stream, format: 'pretty', journald: true }).error({ err: new Error('boom') }, 'failed');
    const plines = pretty.text().trim().split('\n');
    expect(plines.length).toBeGreaterThan(2);
    for (const l of plines) expect(l.startsWith('<3>'), l).toBe(true);
    expect(plines[0]).toMatch(/^<3>\S+ ERROR failed err=boom$/);
  });

  describe('end to end: a child process whose stdout is the file $JOURNAL_STREAM names', () => {
    const dir = tempDir('streetbox-log-');
    afterAll(() => dir.remove());

    async function runChild(file: string, journalStream: (fd: number) => string | undefined): Promise<string> {
      const fd = openSync(file, 'w');
      try {
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.JOURNAL_STREAM;
        const js = journalStream(fd);
        if (js !== undefined) env.JOURNAL_STREAM = js;
        const code = `import { createLogger } from ${JSON.stringify(LOG_TS)};
          const log = createLogger({ level: 'debug' }).child({ gateway: 'gw-1', module: 'test' });
          log.debug('d'); log.info('i'); log.warn('w'); log.error({ password: 'CHILD-PASS' }, 'e');`;
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { env, stdio: ['ignore', fd, 'pipe'] });
        let stderr = '';
        child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const exit = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
        expect(exit, stderr).toBe(0);
      } finally {
        closeSync(fd);
      }
      return readFileSync(file, 'utf8');
    }

    it('prefixes the priority when stdout is the journal', async () => {
      const text = await runChild(dir.file('journal.log'), (fd) => {
        const st = fstatSync(fd, { bigint: true });
        return `${st.dev}:${st.ino}`;
      });
      const lines = text.trim().split('\n');
      expect(lines.map((l) => l.slice(0, 3))).toEqual(['<7>', '<6>', '<4>', '<3>']);
      expect(JSON.parse(lines[2]!.slice(3))).toMatchObject({ level: 40, gateway: 'gw-1', module: 'test', msg: 'w' });
      expect(text).not.toContain('CHILD-PASS');
    });

    it('writes plain JSON lines when $JOURNAL_STREAM names another file, or is unset', async () => {
      for (const [name, js] of [
        ['other.log', (fd: number) => `${fstatSync(fd, { bigint: true }).dev}:1`],
        ['unset.log', () => undefined],
      ] as const) {
        const lines = (await runChild(dir.file(name), js)).trim().split('\n');
        expect(lines, name).toHaveLength(4);
        for (const l of lines) expect(JSON.parse(l), name).toMatchObject({ gateway: 'gw-1', module: 'test' });
      }
    });
  });
});
