/**
 * streetbox in: every value the gateway polls (stored or not by its point's report strategy: seq
 * 0 when not) and the events it commits to its store, filtered by device, point and event kind.
 * One message per reading or event; past the node's rate limit messages are dropped (and counted
 * in its status), never queued.
 */
'use strict';

const { runtimeOf, splitList, matcher, RateLimit, errorText } = require('./lib.js');

module.exports = function (RED) {
  function StreetboxInNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const sb = runtimeOf(RED, node);
    if (!sb) return;
    const what = config.what === 'events' || config.what === 'both' ? config.what : 'readings';
    const devices = new Set(splitList(config.devices));
    const deviceOk = (d) => devices.size === 0 || devices.has(d);
    const pointOk = matcher(config.points);
    const kindOk = matcher(config.kinds);
    const goodOnly = config.goodOnly === true;
    const limit = new RateLimit(Number(config.maxRate) || 200);
    const unsubscribe = [];
    let sent = 0;
    let reported = 0;

    const statusTimer = setInterval(() => {
      if (sent === reported && limit.dropped === 0) return;
      reported = sent;
      node.status(limit.dropped > 0 ? { fill: 'yellow', shape: 'dot', text: `${sent} sent, ${limit.dropped} dropped (rate limit)` } : { fill: 'green', shape: 'dot', text: `${sent} sent` });
    }, 2000);
    statusTimer.unref?.();

    if (what !== 'events') {
      unsubscribe.push(
        sb.onReadings((readings) => {
          try {
            for (const r of readings) {
              if (!deviceOk(r.device) || !pointOk(r.point)) continue;
              if (goodOnly && r.quality !== 'good') continue;
              if (!limit.take()) continue;
              sent++;
              node.send({ topic: `${r.device}/${r.point}`, payload: r.value, device: r.device, point: r.point, ts: r.ts, quality: r.quality, seq: r.seq, reading: r });
            }
          } catch (err) {
            node.error(`streetbox in: ${errorText(err)}`);
          }
        }),
      );
    }
    if (what !== 'readings') {
      unsubscribe.push(
        sb.onEvent((e) => {
          try {
            if (e.device !== null ? !deviceOk(e.device) : devices.size > 0) return;
            if (!kindOk(e.kind) || !limit.take()) return;
            sent++;
            node.send({ topic: `${e.device ?? sb.gatewayId}/${e.kind}`, payload: e, device: e.device, kind: e.kind, ts: e.ts, seq: e.seq, event: e });
          } catch (err) {
            node.error(`streetbox in: ${errorText(err)}`);
          }
        }),
      );
    }
    node.status({ fill: 'green', shape: 'ring', text: 'listening' });

    node.on('close', (done) => {
      clearInterval(statusTimer);
      for (const off of unsubscribe) off();
      done();
    });
  }
  RED.nodes.registerType('streetbox in', StreetboxInNode);
};
