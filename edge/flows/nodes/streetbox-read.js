/**
 * streetbox read: reads a device's points now (ahead of its polls), through the Modbus driver's
 * bus scheduler. One point: msg.payload is its value; all points: msg.payload maps point → value.
 * msg.readings has every value with its unit, quality and time.
 */
'use strict';

const { runtimeOf, errorText } = require('./lib.js');

module.exports = function (RED) {
  function StreetboxReadNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const sb = runtimeOf(RED, node);
    if (!sb) return;
    let busy = 0;

    node.on('input', (msg, send, done) => {
      const device = (config.device || '').trim() || msg.device;
      const point = (config.point || '').trim() || msg.point || undefined;
      if (typeof device !== 'string' || device === '') {
        done(new Error('no device: configure one or give msg.device'));
        return;
      }
      busy++;
      node.status({ fill: 'blue', shape: 'ring', text: `reading ${device}` });
      // the driver's promise is always settled here: a failure becomes a node error, never an unhandled rejection
      sb.read(device, point).then(
        (values) => {
          busy--;
          msg.device = device;
          msg.readings = values;
          msg.payload = point !== undefined ? (values[0] ? values[0].value : null) : Object.fromEntries(values.map((v) => [v.point, v.value]));
          const bad = values.filter((v) => v.quality !== 'good').length;
          node.status(bad > 0 ? { fill: 'yellow', shape: 'dot', text: `${device}: ${bad} bad` } : { fill: 'green', shape: 'dot', text: `${device}: ${values.length} read` });
          send(msg);
          done();
        },
        (err) => {
          busy--;
          node.status({ fill: 'red', shape: 'dot', text: `${device}: ${errorText(err)}`.slice(0, 60) });
          done(err instanceof Error ? err : new Error(errorText(err)));
        },
      );
    });

    node.on('close', (done) => {
      busy = 0;
      done();
    });
  }
  RED.nodes.registerType('streetbox read', StreetboxReadNode);
};
