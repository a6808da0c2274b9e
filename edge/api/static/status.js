// streetbox status page: plain JS, no build step, no CDN. Everything shown is set with
// textContent (never innerHTML): device ids, event details and errors are data, not markup.
'use strict';
(() => {
  const KEY = 'streetbox-token';
  const $ = (id) => document.getElementById(id);
  let token = null;
  let source = null;
  let retry = null;
  let devicesSeen = '';
  const cells = new Map(); // "device\u0000point" -> value element
  // sections in their own files (firmware.js), loaded before this one: told of each snapshot,
  // each update's events and a sign-out, with the helpers below to read the API and build nodes
  const sections = window.streetboxSections || [];
  const section = (hook, ...args) => {
    for (const s of sections) {
      try {
        if (s[hook]) s[hook](...args);
      } catch (err) {
        console.error('status page section failed', err);
      }
    }
  };

  /** An element with attributes and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') el.className = v;
      else el.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
    return el;
  }
  const clear = (el) => el.replaceChildren();
  /** the page's helpers, handed to each section with the snapshot (see firmware.js, device.js, map.js) */
  let ctx = null;
  /** Opens a device's view (device.js registers `open`): from the map, the list or a link. */
  function openDevice(id) {
    section('open', id);
  }

  // Times as the CLI prints them: ISO 8601 in the gateway's zone with its offset
  // ("2026-12-04T13:20:13+01:00", edge/timeFormat.ts), whatever the browser's own zone. The
  // offset of each instant comes from Intl (browsers carry the tz rules), so it is right on
  // either side of a clock change; a zone the browser lacks falls back to the offset the
  // gateway sends with its status.
  let zone = null; // Intl.DateTimeFormat for the gateway's zone
  let serverOffsetMin = 0;
  function setZone(name) {
    try {
      zone = new Intl.DateTimeFormat('en-US', { timeZone: name || 'UTC', hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    } catch {
      zone = null;
    }
  }
  function offsetMin(ms) {
    if (!zone) return serverOffsetMin;
    const f = {};
    for (const p of zone.formatToParts(ms)) if (p.type !== 'literal') f[p.type] = Number(p.value);
    return Math.round((Date.UTC(f.year, f.month - 1, f.day, f.hour % 24, f.minute, f.second) - Math.floor(ms / 1000) * 1000) / 60000);
  }
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  function iso(ms) {
    const off = offsetMin(ms);
    const d = new Date(ms + off * 60000);
    const a = Math.abs(off);
    return pad(d.getUTCFullYear(), 4) + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + 'T' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + (off < 0 ? '-' : '+') + pad(Math.floor(a / 60)) + ':' + pad(a % 60);
  }
  /** A <time> with the ISO string as text and the instant as its datetime attribute. */
  const time = (ms) => (typeof ms === 'number' ? h('time', { datetime: new Date(ms).toISOString() }, iso(ms)) : '—');
  const timeText = (ms) => (typeof ms === 'number' ? iso(ms) : '—');
  const ago = (ms, now) => (typeof ms === 'number' ? Math.max(0, Math.round((now - ms) / 1000)) + ' s ago' : 'never');
  const fmt = (c) => (c.v === null ? '—' : typeof c.v === 'number' ? String(Math.round(c.v * 100) / 100) : String(c.v)) + (c.u ? ' ' + c.u : '');
  const size = (b) => (b >= 1048576 ? (b / 1048576).toFixed(1) + ' MiB' : Math.round(b / 1024) + ' KiB');
  const availability = (on) => (on === true ? 'online' : on === false ? 'offline' : 'unknown');
  // the data economy as the CLI says it (edge/economyText.ts): decimal bytes, as plans are sold
  const bytes = (n) => (n < 1e3 ? Math.round(n) + ' B' : n < 1e6 ? (n / 1e3).toFixed(1) + ' kB' : n < 1e9 ? (n / 1e6).toFixed(1) + ' MB' : (n / 1e9).toFixed(1) + ' GB');
  function autonomyText(a) {
    if (!a || typeof a.days !== 'number' || typeof a.readingsPerDay !== 'number') return 'buffer autonomy: measuring…';
    const days = a.days < 10 ? a.days.toFixed(1) : String(Math.round(a.days));
    return 'buffer holds ≈ ' + days + ' days offline at the current load (' + Math.round(a.readingsPerDay).toLocaleString('en-US') + ' readings/day, ' + a.bytesPerReading.toFixed(1) + ' B each)';
  }
  function upstreamText(u) {
    if (!u || typeof u.bytesToday !== 'number') return '—';
    return bytes(u.bytesToday) + ' sent today, ' + (typeof u.bytesPerMonthEstimate === 'number' ? '≈ ' + bytes(u.bytesPerMonthEstimate) + ' a month' : 'a month estimated after the first full day');
  }

  async function api(path, opts) {
    return fetch(path, { ...opts, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' } });
  }

  function setConn(text, cls) {
    $('conn').textContent = text;
    $('conn').className = 'pill ' + (cls || '');
  }

  function signOut(message) {
    if (source) source.close();
    source = null;
    clearTimeout(retry);
    token = null;
    sessionStorage.removeItem(KEY);
    $('app').hidden = true;
    $('config-section').hidden = true;
    section('signOut');
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setConn('signed out');
  }

  async function connect() {
    clearTimeout(retry);
    let r;
    try {
      r = await api('/api/v1/live/ticket', { method: 'POST' });
    } catch {
      setConn('offline, retrying', 'bad');
      retry = setTimeout(connect, 3000);
      return;
    }
    if (r.status === 401) return signOut('That token was not accepted. Check it and sign in again.');
    if (!r.ok) {
      setConn('error ' + r.status + ', retrying', 'bad');
      retry = setTimeout(connect, 3000);
      return;
    }
    const t = await r.json();
    sessionStorage.setItem(KEY, token);
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    $('login-error').textContent = '';
    if (source) source.close();
    source = new EventSource('/api/v1/live?ticket=' + encodeURIComponent(t.ticket));
    source.addEventListener('snapshot', (e) => snapshot(JSON.parse(e.data)));
    // the snapshot's other values, a page at a time (also when catching up after falling behind)
    source.addEventListener('values', (e) => {
      const values = JSON.parse(e.data).values;
      setValues(values, false);
      section('values', values);
    });
    source.addEventListener('update', (e) => update(JSON.parse(e.data)));
    source.onopen = () => setConn('live · ' + t.principal + ' (' + t.role + ')', 'live');
    source.onerror = () => {
      // a ticket is single-use: close, and reconnect with a new one
      source.close();
      source = null;
      setConn('reconnecting…', 'bad');
      retry = setTimeout(connect, 2000);
    };
  }

  function snapshot(s) {
    setZone(s.gateway.timezone);
    $('gw').textContent = s.gateway.id + (s.gateway.site ? ' · ' + s.gateway.site : '');
    document.title = 'streetbox ' + s.gateway.id;
    devicesSeen = '';
    // the sections first: each status refresh (renderStatus) tells them too
    ctx = { api, h, clear, time, timeText, iso, fmt, commandText, openDevice, zone: s.gateway.timezone, may: s.may, signOut };
    section('snapshot', ctx, s);
    renderStatus(s);
    setValues(s.values, false);
    clear($('events'));
    addEvents(s.events);
    clear($('commands'));
    addCommands(s.commands, true);
    void loadConfigVersions();
  }

  function update(u) {
    if (u.devices) renderStatus(u);
    setValues(u.values, true);
    if (u.events) addEvents(u.events);
    if (u.commands) {
      addCommands(u.commands);
      section('commands', u.commands);
    }
    if (u.values) section('values', u.values);
    // a configuration change moved on (config.staged … config.rolledBack): its row changes
    if (u.events && u.events.some((e) => typeof e.kind === 'string' && e.kind.startsWith('config.'))) void loadConfigVersions();
    if (u.events) section('events', u.events);
  }

  function renderStatus(s) {
    const st = s.store;
    const sync = s.sync;
    if (typeof s.utcOffsetMin === 'number') serverOffsetMin = s.utcOffsetMin;
    const health = $('health');
    clear(health);
    const bad = s.components.filter((c) => c.state !== 'running').length;
    const rows = [
      ['health', bad === 0 ? 'all components running' : bad + ' component(s) not running'],
      ['buffer', st.readings + ' readings, ' + st.events + ' events · ' + size(st.usedBytes) + ' of ' + size(st.maxBytes) + (st.droppedTotal ? ' · ' + st.droppedTotal + ' dropped' : '')],
      ['autonomy', autonomyText(st.autonomy)],
      ['sync', sync ? (sync.connected ? 'connected' : 'not connected') + ' · lag ' + sync.lagSeq + ' items, ' + Math.round(sync.lagMs / 1000) + ' s' + (sync.lastError ? ' · ' + sync.lastError : '') : '—'],
      ['upstream', upstreamText(sync)],
      ['updated', timeText(s.now)],
    ];
    for (const [k, v] of rows) health.append(h('dt', null, k), h('dd', { 'data-row': k }, v));
    const comps = $('components');
    clear(comps);
    for (const c of s.components) comps.append(h('li', { class: c.state, title: c.lastError || '' }, c.name + ': ' + c.state));

    // devices: rebuild the cards only when the set of devices changes; otherwise update in place
    const ids = s.devices.map((d) => d.id).join('\u0000');
    if (ids !== devicesSeen) {
      devicesSeen = ids;
      buildDevices(s.buses, s.devices);
    }
    for (const d of s.devices) {
      const card = document.querySelector('details.device[data-device="' + CSS.escape(d.id) + '"]');
      if (!card) continue;
      const state = card.querySelector('.avail');
      state.textContent = availability(d.online);
      state.className = 'avail ' + availability(d.online);
      card.querySelector('.seen').textContent = 'last seen ' + ago(d.lastSeen, s.now) + (d.failures ? ' · ' + d.failures + ' failures' : '');
      card.querySelector('.error').textContent = d.lastError ? 'last error: ' + d.lastError : '';
    }
    section('status', s);
  }

  function buildDevices(buses, devices) {
    const root = $('buses');
    clear(root);
    const known = new Map(cells);
    cells.clear();
    const byBus = new Map();
    for (const d of devices) {
      const k = d.bus || '—';
      if (!byBus.has(k)) byBus.set(k, []);
      byBus.get(k).push(d);
    }
    for (const [bus, list] of byBus) {
      const b = buses.find((x) => x.id === bus);
      root.append(h('h3', null, 'bus ' + bus + (b ? ' (' + b.type + ', ' + b.endpoint + ')' : '')));
      for (const d of list) {
        const vals = h('div', { class: 'values' });
        const card = h(
          'details',
          { class: 'device', 'data-device': d.id },
          h('summary', null, h('b', null, d.name ? d.name + ' ' : '', h('span', { class: 'meta' }, d.id)), h('span', { class: 'avail' }, ''), h('span', { class: 'meta' }, d.profile + (d.address !== null ? ' · ' + d.address : '') + (d.groups.length ? ' · ' + d.groups.join(', ') : '')), h('span', { class: 'meta seen' }, ''), h('span', { class: 'meta error offline' }, '')),
          vals,
          openButton(d),
        );
        root.append(card);
        for (const [k, el] of known) if (k.startsWith(d.id + '\u0000')) {
          vals.append(el.parentNode);
          cells.set(k, el);
        }
      }
    }
  }

  /** A button that opens the device's view: its charts and its controls (device.js). */
  function openButton(d) {
    const b = h('button', { type: 'button', class: 'open-device', 'data-open': d.id }, 'Charts and control');
    b.addEventListener('click', () => openDevice(d.id));
    return b;
  }

  function setValues(values, flash) {
    for (const [device, points] of Object.entries(values || {})) for (const [p, c] of Object.entries(points)) setValue(device, p, c, flash);
  }

  function setValue(device, point, c, flash) {
    const key = device + '\u0000' + point;
    let el = cells.get(key);
    if (!el) {
      const card = document.querySelector('details.device[data-device="' + CSS.escape(device) + '"] .values');
      if (!card) return;
      el = h('span', { 'data-point': point });
      card.append(h('div', null, h('span', null, point), el));
      cells.set(key, el);
    }
    const text = fmt(c);
    if (el.textContent === text) return;
    el.textContent = text;
    el.title = c.q + ' · ' + timeText(c.ts);
    if (flash) {
      el.classList.add('flash');
      setTimeout(() => el.classList.remove('flash'), 600);
    }
  }

  function addEvents(events) {
    const ul = $('events');
    for (const e of events) {
      ul.prepend(h('li', { class: e.severity }, time(e.ts), ' ', h('b', null, e.kind), e.device ? ' · ' + e.device : '', ' ', h('span', { class: 'meta' }, detailText(e.detail))));
    }
    while (ul.children.length > 20) ul.lastChild.remove();
  }

  /** An event's detail as `key=value …`, short (the command id and source are in Recent commands). */
  function detailText(d) {
    const parts = Object.entries(d || {})
      .filter(([k]) => k !== 'commandId' && k !== 'source')
      .map(([k, v]) => k + '=' + (v && typeof v === 'object' ? (v.kind && v.id ? v.kind + ' ' + v.id : JSON.stringify(v)) : String(v)));
    const text = parts.join(' ');
    return text.length > 160 ? text.slice(0, 159) + '…' : text;
  }

  function commandText(c) {
    const p = c.params && c.params.level !== undefined ? ' ' + c.params.level + ' %' : '';
    return c.action + p + ' → ' + c.target.kind + ' ' + c.target.id + ' by ' + (c.source.role ? c.source.role + ':' : '') + c.source.principal + ': ';
  }

  /**
   * Recent commands, newest first: the snapshot's list comes newest first (as the API answers),
   * live rows oldest first. A command's newer row replaces its older one where it stands; a new
   * command goes above every row not newer than it (of two with the same time, the one that
   * arrived later is the newer), and past 10 the oldest go.
   */
  function addCommands(commands, newestFirst) {
    const ul = $('commands');
    const rows = newestFirst ? [...commands].reverse() : commands;
    for (const c of rows) {
      const old = ul.querySelector('[data-command="' + CSS.escape(c.id) + '"]');
      const li = h('li', { 'data-command': c.id, 'data-ts': String(c.ts) }, time(c.ts), ' ', commandText(c), h('b', { class: c.status }, c.status));
      if (old) {
        old.replaceWith(li);
        continue;
      }
      let before = null;
      for (const other of ul.children) {
        if (Number(other.dataset.ts) <= c.ts) {
          before = other;
          break;
        }
      }
      ul.insertBefore(li, before);
    }
    while (ul.children.length > 10) ul.lastChild.remove();
  }



  // Configuration versions (issue 16), from GET /api/v1/config/versions: shown only to the
  // tokens that may read them (technician, central); any other answer hides the section. Read
  // again on each snapshot and whenever a config.* event arrives, one request at a time (a
  // burst of stages ends in one more read, not one per event).
  let configBusy = false;
  let configAgain = false;
  async function loadConfigVersions() {
    if (configBusy) {
      configAgain = true;
      return;
    }
    configBusy = true;
    try {
      do {
        configAgain = false;
        const body = await configAnswer();
        if (body === null) $('config-section').hidden = true;
        else renderConfig(body);
      } while (configAgain && token);
    } finally {
      configBusy = false;
    }
  }

  /** The versions answer, or null when this token may not read it (403) or it failed (the live feed reports the connection). */
  async function configAnswer() {
    try {
      const r = await api('/api/v1/config/versions?limit=10');
      if (r.status !== 200) return null;
      const body = await r.json();
      return Array.isArray(body) ? { versions: body } : body && Array.isArray(body.versions) ? body : null;
    } catch {
      return null;
    }
  }

  const STAGE_TEXT = { staged: 'staged', rejected: 'rejected', applied: 'applied', confirmed: 'confirmed', rolledBack: 'rolled back' };

  function renderConfig(body) {
    $('config-section').hidden = false;
    const ul = $('config-versions');
    clear(ul);
    for (const v of body.versions.slice(0, 10)) {
      const who = [v.source, v.principal].filter(Boolean).join(' · ');
      ul.append(
        h(
          'li',
          { 'data-version': String(v.version), 'data-stage': String(v.stage) },
          time(v.at),
          ' ',
          h('b', null, 'version ' + v.version),
          ' ',
          h('b', { class: 'stage ' + v.stage }, STAGE_TEXT[v.stage] || String(v.stage)),
          v.running ? ' ' : null,
          v.running ? h('span', { class: 'badge' }, 'running') : null,
          ' ',
          h('span', { class: 'meta' }, who + (v.reason ? ' · ' + v.reason : '')),
        ),
      );
    }
    if (body.versions.length === 0) ul.append(h('li', { class: 'meta' }, 'no version recorded yet'));
    const waiting = awaitingOf(body);
    $('config-await').hidden = waiting === null;
    $('config-await').textContent = waiting === null ? '' : 'version ' + waiting.version + ' awaiting confirm until ' + timeText(waiting.confirmBy) + ' (streetbox config confirm); otherwise it rolls back';
  }

  /** The version awaiting a manual confirm: the answer's awaitingConfirm, or an applied row that carries its deadline. */
  function awaitingOf(body) {
    const a = body.awaitingConfirm;
    if (a && typeof a.version === 'number' && typeof a.confirmBy === 'number') return a;
    const v = body.versions.find((x) => x.stage === 'applied' && typeof x.confirmBy === 'number');
    return v ? { version: v.version, confirmBy: v.confirmBy } : null;
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    if (token) void connect();
  });
  $('logout').addEventListener('click', () => signOut('Signed out.'));
  token = sessionStorage.getItem(KEY);
  if (token) void connect();
})();
