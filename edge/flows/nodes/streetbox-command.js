/**
 * streetbox command: sends msg.payload as a command through the gateway's command pipeline
 * (validated, authorised with the node's role, recorded with its principal) and outputs the
 * outcome once the command row is final (verified, failed, expired or rejected): the pipeline's
 * promise of it, awaited up to the node's timeout (then the row as it stands, `timedOut`).
 *
 * Flows act at maintenance priority unless configured otherwise, so a technician's override
 * still wins.
 */
'use strict';

const { runtimeOf, parseTarget, FINAL, errorText, commandShorthand } = require('./lib.js');

const ROLES = new Set(['maintenance', 'central', 'technician']);
/** at most this many commands await their outcome per node; the oldest is reported early past it */
const MAX_PENDING = 1000;

/**
 * msg.payload as a command body: an object as is; the shorthand every door takes (a number or
 * "45" is a dim level, "on" / "OFF" / "release" that action: commandShorthand.js); other text as
 * JSON when it looks like it, else as an action the pipeline refuses with the reason.
 */
function bodyOf(payload) {
  if (payload !== null && typeof payload === 'object' && !Array.isArray(payload) && !Buffer.isBuffer(payload)) return { ...payload };
  const short = commandShorthand(payload);
  if (short) return short;
  if (typeof payload === 'string') {
    const s = payload.trim();
    if (s.startsWith('{')) return s;
    return { action: s };
  }
  return payload;
}

module.exports = function (RED) {
  function StreetboxCommandNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const sb = runtimeOf(RED, node);
    if (!sb) return;
    const role = ROLES.has(config.role) ? config.role : 'maintenance';
    const principal = `node-red:${(config.principal || '').trim() || config.name || node.id}`;
    const fixedTarget = config.targetKind === 'device' || config.targetKind === 'group' ? parseTarget({ kind: config.targetKind, id: (config.target || '').trim() }) : null;
    const priority = config.priority === '' || config.priority === undefined ? undefined : Number(config.priority);
    const timeoutMs = Math.max(1, Number(config.timeout) || 600) * 1000;
    /** command id → { msg, send, done, timer } */
    const pending = new Map();

    const finish = (id, row, extra) => {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      clearTimeout(p.timer);
      show(row);
      p.msg.payload = row;
      p.msg.command = row;
      Object.assign(p.msg, extra || {});
      p.send(p.msg);
      p.done();
    };

    const show = (row) => {
      const fill = row.status === 'verified' ? 'green' : row.status === 'rejected' || row.status === 'failed' ? 'red' : row.status === 'expired' ? 'grey' : 'blue';
      const what = row.action === 'dim' || row.action === 'override' ? `${row.action} ${row.params && row.params.level}` : row.action;
      node.status({ fill, shape: 'dot', text: `${row.target.id}: ${what} ${row.status}` });
    };

    node.on('input', (msg, send, done) => {
      const target = fixedTarget || parseTarget(msg.target);
      if (!target) {
        done(new Error('no target: configure one, or give msg.target as { kind: "group", id } or "group:<id>" / "device:<id>"'));
        return;
      }
      let body = bodyOf(msg.payload);
      if (body && typeof body === 'object' && priority !== undefined && body.priority === undefined && body.action !== 'release' && body.action !== 'program') body.priority = priority;
      let submitted;
      try {
        submitted = sb.submit(target, body, { role, principal });
      } catch (err) {
        done(err);
        return;
      }
      const { row, outcome } = submitted;
      if (FINAL.has(row.status)) {
        show(row);
        msg.payload = row;
        msg.command = row;
        send(msg);
        done();
        return;
      }
      show(row);
      const timer = setTimeout(() => {
        const now = sb.getCommand(row.id) || row;
        finish(row.id, now, { timedOut: true });
      }, timeoutMs);
      timer.unref?.();
      pending.set(row.id, { msg, send, done, timer });
      if (pending.size > MAX_PENDING) {
        const oldest = pending.keys().next().value;
        finish(oldest, sb.getCommand(oldest) || row, { timedOut: true });
      }
      // the pipeline's promise of the final row never rejects; a finish() that throws is reported
      outcome.then((final) => finish(row.id, final)).catch((err) => node.error(`streetbox command: ${errorText(err)}`));
    });

    node.on('close', (done) => {
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.done();
      }
      pending.clear();
      done();
    });
  }
  RED.nodes.registerType('streetbox command', StreetboxCommandNode);
};
