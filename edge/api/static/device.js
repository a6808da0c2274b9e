// streetbox status page, the device view (issue 19): a device's facts, its controls (control.js)
// and its history from GET /api/v1/history: one uPlot chart per numeric point (points that differ
// only by their channel number and share a unit on one chart: ch1_power with ch2_power), the
// bucket means as the line, min–max as a band, a gap where a bucket has no good reading; on/off
// strips for the boolean points; a strip per alarm (the answer's `alarms`: its spans from the
// alarm.raised / alarm.cleared events), red where active; the commands sent to the device or its
// groups as markers, with who sent them. One request asks for every point of the device, `buckets` ≈ the plot's width in
// pixels, so each chart shows exactly the API's buckets of its range (the chart's data-from,
// data-to, data-buckets say which request). While the range ends now, the view asks again every
// max(step, 5 s), one request at a time. Times on the axes in the gateway's zone. Plain JS, no
// build step; everything shown is set as text, never as markup. status.js calls the hooks.
'use strict';
(() => {
  const HOUR = 3600e3;
  const RANGES = [
    ['1 h', HOUR],
    ['24 h', 24 * HOUR],
    ['7 d', 7 * 24 * HOUR],
  ];
  const DEFAULT_SPAN = 24 * HOUR;
  /** zoom limits: a chart of less than a minute or more than 31 days says nothing more */
  const MIN_SPAN = 60e3;
  const MAX_SPAN = 31 * 24 * HOUR;
  const MIN_REFRESH_MS = 5000;
  /**
   * A live range ends this long before the gateway's now: readings reach the buffer in batches
   * (storage.flushInterval, 200 ms in the demo), so a range ending at now would plot a last bucket
   * short of readings taken before its end that the buffer has not committed yet.
   */
  const SETTLE_MS = 2000;
  const MAX_BUCKETS = 2000;
  const MIN_BUCKETS = 10;
  /** zoom, pan and command rows come in bursts: one request after the last */
  const DEBOUNCE_MS = 250;
  const CHART_HEIGHT = 190;
  /** a chart narrower than this wraps to its own row (page.css: the grid's 24em at 15 px) */
  const MIN_CELL_PX = 360;
  const MAX_PER_CHART = 4;
  const COLORS = ['#1f6feb', '#c2410c', '#1a7f37', '#8250df'];
  const STATE_TEXT = { on: 'on', dimmed: 'dimmed', off: 'off', offline: 'offline', alarm: 'alarm', unknown: 'unknown' };

  /** the page's helpers (status.js), null once signed out */
  let ctx = null;
  /** the live feed's device rows, by id */
  let rows = new Map();
  /** the gateway's clock minus the browser's (the status rows' `now`): ranges end at the gateway's now */
  let skew = 0;
  /** the open device's view, null when closed */
  let view = null;

  const $ = (id) => document.getElementById(id);
  const gatewayNow = () => Math.round(Date.now() + skew);
  const clamp = (n, lo, hi) => Math.max(lo, Math.min(hi, n));

  // ---- the view -------------------------------------------------------------------------------

  function open(id) {
    if (!ctx) return;
    if (view && view.id === id) {
      view.root.scrollIntoView({ block: 'start' });
      return;
    }
    close();
    const { h } = ctx;
    const root = $('device-view');
    const v = {
      id,
      root,
      preset: DEFAULT_SPAN,
      span: DEFAULT_SPAN,
      /** the range's end; null: now (live) */
      end: null,
      values: {},
      info: null,
      control: null,
      controlEl: h('div', { class: 'dv-control' }),
      facts: h('dl', { class: 'dv-facts' }),
      title: h('h2', null, id),
      rangeText: h('p', { class: 'meta dv-range-text' }),
      note: h('p', { class: 'meta dv-note', role: 'status' }),
      chartsEl: h('div', { class: 'dv-charts' }),
      stripsEl: h('div', { class: 'dv-strips' }),
      marksEl: h('ul', { class: 'list dv-marks' }),
      marksHead: h('h3', null, 'Commands in this range'),
      rangeButtons: [],
      charts: [],
      strips: [],
      marks: [],
      layoutKey: '',
      shown: null,
      busy: false,
      again: false,
      timer: null,
      debounce: null,
    };
    view = v;
    const closeButton = h('button', { type: 'button', class: 'dv-close' }, 'Close');
    closeButton.addEventListener('click', close);
    root.dataset.deviceView = id;
    root.replaceChildren(h('div', { class: 'dv-head' }, v.title, closeButton), v.facts, v.controlEl, rangeBar(v), v.rangeText, v.note, v.chartsEl, v.stripsEl, v.marksHead, v.marksEl);
    root.hidden = false;
    showInfo(v);
    root.scrollIntoView({ block: 'start' });
    void loadDevice(v);
    void load();
  }

  function close() {
    const v = view;
    if (!v) return;
    view = null;
    clearTimeout(v.timer);
    clearTimeout(v.debounce);
    for (const c of v.charts) c.u.destroy();
    v.root.hidden = true;
    v.root.replaceChildren();
    delete v.root.dataset.deviceView;
  }

  /** The range buttons (1 h, 24 h, 7 d: ending now) and the pan and zoom buttons. */
  function rangeBar(v) {
    const { h } = ctx;
    const bar = h('div', { class: 'dv-range', role: 'group', 'aria-label': 'time range' });
    for (const [label, span] of RANGES) {
      const b = h('button', { type: 'button', 'data-range': label, 'aria-pressed': 'false' }, label);
      b.addEventListener('click', () => setRange(v, { preset: span, span, end: null }));
      v.rangeButtons.push([b, span]);
      bar.append(b);
    }
    const nav = [
      ['earlier', '◀', () => pan(v, -0.5)],
      ['later', '▶', () => pan(v, 0.5)],
      ['zoom in', '+', () => zoom(v, 0.5)],
      ['zoom out', '−', () => zoom(v, 2)],
      ['reset', 'Reset', () => setRange(v, { span: v.preset, end: null })],
    ];
    for (const [name, text, act] of nav) {
      const b = h('button', { type: 'button', 'data-nav': name, title: name, 'aria-label': name }, text);
      b.addEventListener('click', act);
      bar.append(b);
    }
    return bar;
  }

  /** Moves the range (an end past the gateway's now is now: live again) and asks once things settle. */
  function setRange(v, r) {
    Object.assign(v, r);
    v.span = clamp(Math.round(v.span), MIN_SPAN, MAX_SPAN);
    if (v.end !== null && v.end >= liveEnd()) v.end = null;
    showRange(v, request(v));
    clearTimeout(v.debounce);
    v.debounce = setTimeout(() => void load(), DEBOUNCE_MS);
  }

  const liveEnd = () => gatewayNow() - SETTLE_MS;
  const rangeEnd = (v) => (v.end === null ? liveEnd() : v.end);
  const pan = (v, share) => setRange(v, { end: rangeEnd(v) + share * v.span });
  /** Zooms about the range's end (a live range stays live). */
  const zoom = (v, factor) => setRange(v, { span: v.span * factor, end: v.end });

  /** A drag-select on a chart: that stretch of time becomes the range. */
  function zoomTo(v, from, to) {
    if (!(to > from)) return;
    const span = Math.max(MIN_SPAN, to - from);
    setRange(v, { span, end: from + span });
  }

  function request(v) {
    const to = rangeEnd(v);
    return { device: v.id, from: to - v.span, to, buckets: wantedBuckets(v) };
  }

  function showRange(v, req) {
    for (const [b, span] of v.rangeButtons) b.setAttribute('aria-pressed', String(v.end === null && v.span === span));
    v.rangeText.textContent = ctx.timeText(req.from) + ' – ' + (v.end === null ? 'now (live)' : ctx.timeText(req.to));
  }

  /** As many buckets as the plot has pixels: the width of a chart's plot, or its estimate before the first chart. */
  function wantedBuckets(v) {
    const first = v.charts[0];
    let px = first ? first.u.over.clientWidth : 0;
    if (!px) {
      const w = v.chartsEl.clientWidth || v.root.clientWidth || 320;
      const cols = Math.max(1, Math.floor(w / MIN_CELL_PX));
      px = w / cols - 90; // the y axis with its unit, and the room uPlot keeps for the last time label
    }
    return clamp(Math.round(px), MIN_BUCKETS, MAX_BUCKETS);
  }

  /** The plot is now much wider or narrower than the buckets asked for (more than 10 %): ask again. */
  function offWidth(v, buckets) {
    return Math.abs(wantedBuckets(v) - buckets) > Math.max(4, buckets * 0.1);
  }

  // ---- facts and controls ---------------------------------------------------------------------

  /** The device's latest values, name and groups when the view opens (the live feed sends changes only). */
  async function loadDevice(v) {
    try {
      const r = await ctx.api('/api/v1/devices/' + encodeURIComponent(v.id));
      if (view !== v) return;
      if (r.status === 404) {
        v.note.textContent = 'no device ' + v.id + ' on this gateway';
        return;
      }
      if (r.status !== 200) return;
      const d = await r.json();
      if (view !== v) return;
      v.info = d;
      for (const [p, c] of Object.entries(d.values || {})) if (!v.values[p] || v.values[p].ts <= c.ts) v.values[p] = { v: c.value, u: c.unit, q: c.quality, ts: c.ts };
      showInfo(v);
      showReadings(v);
    } catch {
      // the live feed reports the connection; the view shows what the status rows say
    }
  }

  const availability = (on) => (on === true ? 'online' : on === false ? 'offline' : 'unknown');

  const FACTS = ['kind', 'groups', 'availability', 'state', 'alarms'];

  /** Name, id, kind, groups, availability, state, alarms (changed in place: the section is aria-live); the controls, once the kind is known. */
  function showInfo(v) {
    const { h } = ctx;
    const row = rows.get(v.id) || {};
    const info = v.info || {};
    const name = row.name || info.name || null;
    const groups = row.groups || info.groups || [];
    const online = row.online !== undefined ? row.online : info.online;
    const title = (name ? name + ' ' : '') + v.id;
    if (v.title.dataset.text !== title) {
      v.title.dataset.text = title;
      v.title.replaceChildren(name ? name + ' ' : '', h('span', { class: 'meta' }, v.id));
    }
    const text = {
      kind: row.kind || '—',
      groups: groups.length ? groups.join(', ') : 'none',
      availability: availability(online),
      state: row.state ? (STATE_TEXT[row.state] || String(row.state)) + (typeof row.level === 'number' ? ' · ' + row.level + ' %' : '') : '—',
      alarms: row.alarms && row.alarms.length ? row.alarms.join(', ') : 'none',
    };
    if (!v.facts.firstChild) for (const k of FACTS) v.facts.append(h('dt', null, k), h('dd', { 'data-fact': k }));
    for (const k of FACTS) {
      const dd = v.facts.querySelector('[data-fact="' + k + '"]');
      if (dd.textContent !== text[k]) dd.textContent = text[k];
    }
    v.facts.querySelector('[data-fact="availability"]').className = text.availability;
    showControl(v, row);
  }

  /** control.js's controls for a light or a traffic controller, when this role may command it. */
  function showControl(v, row) {
    const kind = row.kind;
    const control = window.streetboxControl;
    const may = ctx.may || {};
    const allowed = (kind === 'lighting' && may.commandLighting) || (kind === 'traffic' && may.commandTraffic);
    if (!control || !allowed) return;
    const info = { kind, level: typeof row.level === 'number' ? row.level : null, values: v.values };
    try {
      if (v.control) v.control.update(info);
      else v.control = control.render(v.controlEl, ctx, { kind: 'device', id: v.id, name: row.name || v.id }, info);
    } catch (err) {
      console.error('device controls failed', err);
    }
  }

  // ---- history --------------------------------------------------------------------------------

  async function load() {
    const v = view;
    if (!v || !ctx) return;
    if (v.busy) {
      v.again = true;
      return;
    }
    v.busy = true;
    clearTimeout(v.timer);
    clearTimeout(v.debounce);
    try {
      do {
        v.again = false;
        const req = request(v);
        showRange(v, req);
        const body = await ask(v, req);
        if (view !== v) return;
        if (body) render(v, req, body);
      } while (v.again && view === v);
    } finally {
      v.busy = false;
      if (view === v) schedule(v);
    }
  }

  /** While the range ends now: again in max(step, 5 s), so the plotted points stay the API's buckets. */
  function schedule(v) {
    clearTimeout(v.timer);
    v.timer = null;
    if (v.end === null && ctx && v.shown) v.timer = setTimeout(() => void load(), Math.max(v.shown.step || 0, MIN_REFRESH_MS));
  }

  async function ask(v, req) {
    const q = 'device=' + encodeURIComponent(req.device) + '&from=' + req.from + '&to=' + req.to + '&buckets=' + req.buckets;
    try {
      const r = await ctx.api('/api/v1/history?' + q);
      if (r.status === 200) {
        v.note.textContent = '';
        return await r.json();
      }
      v.note.textContent = r.status === 403 ? 'this token may not read the history' : r.status === 404 ? 'no history for ' + v.id + ' on this gateway' : 'history: error ' + r.status;
    } catch {
      v.note.textContent = 'history: no answer, trying again';
    }
    return null;
  }

  /**
   * The charts and strips of an answer: numeric points grouped (the same name but for its digits
   * and the same unit, at most MAX_PER_CHART a chart), boolean points as strips; strings not shown.
   */
  function layoutOf(series) {
    const charts = [];
    const strips = [];
    const byKey = new Map();
    for (const s of series) {
      if (s.type === 'boolean') strips.push(s.point);
      if (s.type !== 'number') continue;
      const key = s.point.replace(/\d+/g, '#') + '\u0000' + (s.unit || '');
      let c = byKey.get(key);
      if (!c || c.points.length >= MAX_PER_CHART) {
        c = { unit: s.unit || '', points: [] };
        byKey.set(key, c);
        charts.push(c);
      }
      c.points.push(s.point);
    }
    return { charts, strips, alarms: [] };
  }

  function render(v, req, body) {
    const series = Array.isArray(body.series) ? body.series : [];
    v.shown = { from: req.from, to: req.to, buckets: req.buckets, step: body.step, t: series.length ? series[0].t : [] };
    v.marks = Array.isArray(body.marks) ? body.marks : [];
    const byPoint = new Map(series.map((s) => [s.point, s]));
    const alarms = Array.isArray(body.alarms) ? body.alarms : [];
    const byAlarm = new Map(alarms.map((a) => [a.name, a]));
    const layout = layoutOf(series);
    layout.alarms = alarms.map((a) => ({ name: a.name, severity: a.severity || null }));
    const key = JSON.stringify(layout);
    const rebuilt = key !== v.layoutKey;
    if (rebuilt) build(v, layout, key, byPoint);
    for (const c of v.charts) {
      stamp(c.el, req);
      if (!rebuilt) c.u.setData(chartData(v.shown.t, c.points.map((p) => byPoint.get(p))));
    }
    for (const s of v.strips) {
      stamp(s.el, req);
      if (s.alarm) drawAlarm(v, s, byAlarm.get(s.alarm));
      else drawStrip(v, s, byPoint.get(s.point));
    }
    if (series.length === 0) v.note.textContent = 'no readings of ' + v.id + ' stored yet';
    else if (layout.charts.length === 0 && layout.strips.length === 0) v.note.textContent = 'no numeric or on/off point to chart';
    showMarks(v);
    showReadings(v);
    // a layout change (or the first answer) can move the plot's width away from the buckets asked for
    if (offWidth(v, req.buckets)) v.again = true;
  }

  /** The request whose buckets the element shows (for the page's tests and for anyone reading the DOM). */
  function stamp(el, req) {
    el.dataset.from = String(req.from);
    el.dataset.to = String(req.to);
    el.dataset.buckets = String(req.buckets);
  }

  /** [t, then per point its mean, min, max]: the history answer's arrays as they are (null: a gap). */
  function chartData(t, series) {
    const data = [t];
    for (const s of series) {
      const none = t.map(() => null);
      data.push(s ? s.mean : none, s ? s.min : none, s ? s.max : none);
    }
    return data;
  }

  /** The charts and strips of a new layout; the charts with the answer's data (`byPoint`: its series by point). */
  function build(v, layout, key, byPoint) {
    const { h } = ctx;
    for (const c of v.charts) c.u.destroy();
    v.charts = [];
    v.strips = [];
    v.layoutKey = key;
    ctx.clear(v.chartsEl);
    ctx.clear(v.stripsEl);
    for (const g of layout.charts) {
      const legend = h('div', { class: 'chart-legend' });
      const readings = new Map();
      g.points.forEach((p, k) => {
        const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
        swatch.style.background = COLORS[k % COLORS.length];
        const reading = h('span', { class: 'reading' });
        readings.set(p, reading);
        legend.append(h('span', { class: 'chart-point' }, swatch, h('span', { class: 'point-name' }, p), ' ', reading));
      });
      const at = h('span', { class: 'meta chart-at' });
      legend.append(at);
      const plot = h('div', { class: 'chart-plot' });
      const el = h('div', { class: 'chart', 'data-point': g.points.join(','), 'data-series': g.points.flatMap((p) => [p + '.mean', p + '.min', p + '.max']).join(',') }, legend, plot);
      v.chartsEl.append(el);
      const chart = { el, points: g.points, unit: g.unit, readings, at, u: null };
      chart.u = new window.uPlot(chartOpts(v, chart), chartData(v.shown.t, g.points.map((p) => byPoint.get(p))), plot);
      el._uplot = chart.u;
      swipe(v, chart.u.over);
      v.charts.push(chart);
    }
    if (layout.strips.length) v.stripsEl.append(h('h3', null, 'On and off'));
    for (const p of layout.strips) {
      const bar = h('div', { class: 'strip-bar', role: 'img', 'aria-label': p + ' over the range' });
      const reading = h('span', { class: 'reading' });
      const el = h('div', { class: 'strip', 'data-point': p, 'data-series': p + '.mean' }, h('div', { class: 'strip-label' }, h('span', { class: 'point-name' }, p), ' ', reading), bar);
      v.stripsEl.append(el);
      v.strips.push({ el, point: p, bar, reading });
    }
    if (layout.alarms.length) v.stripsEl.append(h('h3', null, 'Alarms'));
    for (const a of layout.alarms) {
      const bar = h('div', { class: 'strip-bar', role: 'img', 'aria-label': 'alarm ' + a.name + ' over the range' });
      const reading = h('span', { class: 'reading' });
      const severity = a.severity ? h('span', { class: 'severity ' + a.severity }, a.severity) : '';
      const el = h('div', { class: 'strip alarm-strip', 'data-alarm': a.name }, h('div', { class: 'strip-label' }, h('span', { class: 'point-name' }, a.name), ' ', severity, ' ', reading), bar);
      v.stripsEl.append(el);
      v.strips.push({ el, alarm: a.name, bar, reading });
    }
    if (layout.strips.length || layout.alarms.length) v.stripsEl.append(h('div', { class: 'meta strip-ends' }, h('span', { class: 'strip-from' }), h('span', { class: 'strip-to' })));
  }

  function chartOpts(v, chart) {
    const series = [{}];
    const bands = [];
    chart.points.forEach((p, k) => {
      const c = COLORS[k % COLORS.length];
      series.push(
        { label: p, stroke: c, width: 1.5, spanGaps: false, points: { show: false, size: 5, fill: c, filter: isolated } },
        { label: p + ' min', stroke: c + '55', width: 1, spanGaps: false, points: { show: false } },
        { label: p + ' max', stroke: c + '55', width: 1, spanGaps: false, points: { show: false } },
      );
      bands.push({ series: [3 + 3 * k, 2 + 3 * k], fill: c + '22' });
    });
    const tzDate = zoneDate();
    return {
      width: chart.el.querySelector('.chart-plot').clientWidth || 300,
      height: CHART_HEIGHT,
      ms: 1,
      tzDate,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true, range: () => [v.shown.from, v.shown.to] } },
      series,
      bands,
      axes: [{ values: timeLabels(tzDate) }, { label: chart.unit, labelSize: chart.unit ? 18 : 0 }],
      hooks: {
        setSelect: [(u) => selected(v, u)],
        setCursor: [(u) => showReading(v, chart, u.cursor.idx)],
        draw: [(u) => drawMarks(v, u)],
      },
    };
  }

  /** Dates in the gateway's zone on the time axis (its offset on either side of a clock change). */
  function zoneDate() {
    const zone = ctx.zone;
    try {
      if (zone) {
        window.uPlot.tzDate(new Date(0), zone);
        return (ts) => window.uPlot.tzDate(new Date(ts), zone);
      }
    } catch {
      // a zone this browser lacks: its own zone, the times in the legend are still the gateway's
    }
    return (ts) => new Date(ts);
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n) => String(n).padStart(2, '0');

  /** Time labels on the 24-hour clock of the gateway's zone, the day under the first tick of each day ("05:00" over "5 Dec"). */
  function timeLabels(tzDate) {
    return (u, splits, axisIdx, space, incr) => {
      let lastDay = '';
      return splits.map((ts) => {
        const d = tzDate(ts);
        const day = d.getDate() + ' ' + MONTHS[d.getMonth()];
        if (incr >= 24 * HOUR) return day;
        const clock = pad(d.getHours()) + ':' + pad(d.getMinutes()) + (incr < 60e3 ? ':' + pad(d.getSeconds()) : '');
        const first = day !== lastDay;
        lastDay = day;
        return first ? clock + '\n' + day : clock;
      });
    };
  }

  const gap = (x) => x === null || x === undefined;

  /** A lone bucket between two gaps draws no line: a dot then. */
  function isolated(u, si, show) {
    if (show) return null;
    const d = u.data[si];
    const out = [];
    for (let i = 0; i < d.length; i++) if (!gap(d[i]) && gap(d[i - 1]) && gap(d[i + 1])) out.push(i);
    return out.length ? out : null;
  }

  function selected(v, u) {
    const { left, width } = u.select;
    if (width < 5) return;
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    zoomTo(v, Math.round(u.posToVal(left, 'x')), Math.round(u.posToVal(left + width, 'x')));
  }

  /** A horizontal swipe on a phone pans (a vertical one scrolls the page: page.css touch-action). */
  function swipe(v, over) {
    let x0 = null;
    over.addEventListener('pointerdown', (e) => {
      if (e.pointerType === 'touch') x0 = e.clientX;
    });
    over.addEventListener('pointercancel', () => (x0 = null));
    over.addEventListener('pointerup', (e) => {
      if (x0 === null) return;
      const dx = e.clientX - x0;
      x0 = null;
      if (Math.abs(dx) >= 30 && over.clientWidth > 0) pan(v, -dx / over.clientWidth);
    });
  }

  // ---- readings in the legends ----------------------------------------------------------------

  const round = (n) => String(Math.round(n * 100) / 100);

  /** The bucket under the cursor (mean, min–max), else the point's latest live value. */
  function showReading(v, chart, idx) {
    const u = chart.u;
    if (!u) return; // uPlot's first draw, before the constructor returned
    const hover = !gap(idx) && u.data[0] && idx < u.data[0].length;
    chart.at.textContent = hover ? ctx.timeText(u.data[0][idx]) : '';
    chart.points.forEach((p, k) => {
      const el = chart.readings.get(p);
      if (!hover) {
        const c = v.values[p];
        el.textContent = c ? ctx.fmt(c) : '';
        return;
      }
      const [mean, min, max] = [u.data[1 + 3 * k][idx], u.data[2 + 3 * k][idx], u.data[3 + 3 * k][idx]];
      el.textContent = gap(mean) ? 'no reading' : round(mean) + (min !== max ? ' (' + round(min) + '–' + round(max) + ')' : '') + (chart.unit ? ' ' + chart.unit : '');
    });
  }

  function showReadings(v) {
    for (const c of v.charts) if (gap(c.u.cursor.idx)) showReading(v, c, null);
    for (const s of v.strips) {
      if (s.alarm) continue;
      const c = v.values[s.point];
      s.reading.textContent = c ? (c.v === true || c.v === 1 ? 'on' : c.v === false || c.v === 0 ? 'off' : ctx.fmt(c)) : '';
    }
  }

  // ---- on/off and alarm strips ----------------------------------------------------------------

  /** Runs of buckets in the same state (on, off, both within the bucket, no reading) as segments. */
  function drawStrip(v, strip, s) {
    const t = v.shown.t;
    const mean = s ? s.mean : [];
    strip.el._data = { t, mean };
    const stateOf = (m) => (gap(m) ? 'gap' : m >= 1 ? 'on' : m <= 0 ? 'off' : 'mixed');
    const segments = [];
    for (let i = 0; i < t.length; i++) {
      const state = stateOf(mean[i]);
      const last = segments[segments.length - 1];
      if (last && last.state === state) last.to = i + 1;
      else segments.push({ state, from: i, to: i + 1 });
    }
    const step = v.shown.step || 0;
    const parts = segments
      .filter((g) => g.state !== 'gap')
      .map((g) => {
        const a = t[g.from];
        const b = Math.min(v.shown.to, t[g.to - 1] + step);
        return { state: g.state, a, b, title: strip.point + ' ' + (g.state === 'mixed' ? 'on part of the time' : g.state) + ': ' + ctx.timeText(a) + ' – ' + ctx.timeText(b) };
      });
    placeSegments(v, strip, parts);
  }

  /** An alarm's spans ([start, end], end null: still active at the range's end) as red segments; its reading says whether it is active now. */
  function drawAlarm(v, strip, alarm) {
    const spans = alarm && Array.isArray(alarm.spans) ? alarm.spans : [];
    strip.el._data = { spans };
    const parts = spans.map(([a, end]) => {
      const b = end === null ? v.shown.to : end;
      return { state: 'alarm', a, b, title: strip.alarm + ' active: ' + ctx.timeText(a) + ' – ' + (end === null ? 'still active' : ctx.timeText(b)) };
    });
    const last = spans[spans.length - 1];
    strip.reading.textContent = last && last[1] === null ? 'active' : spans.length ? 'active ' + spans.length + '×' + (alarm.dropped ? ' (+' + alarm.dropped + ' earlier)' : '') : '';
    placeSegments(v, strip, parts);
  }

  /** Segments ({ state, a, b, title }: from a to b, in ms) placed on the strip's bar over the shown range; the range's ends under the strips. */
  function placeSegments(v, strip, parts) {
    const { h } = ctx;
    const span = v.shown.to - v.shown.from;
    strip.bar.replaceChildren(
      ...parts.map((g) => {
        const el = h('span', { class: 'seg ' + g.state, title: g.title });
        el.style.left = (((g.a - v.shown.from) / span) * 100).toFixed(3) + '%';
        el.style.width = (((g.b - g.a) / span) * 100).toFixed(3) + '%';
        return el;
      }),
    );
    const ends = v.stripsEl.querySelector('.strip-ends');
    if (ends) {
      ends.firstChild.textContent = ctx.timeText(v.shown.from);
      ends.lastChild.textContent = ctx.timeText(v.shown.to);
    }
  }

  // ---- command markers ------------------------------------------------------------------------

  function markText(m) {
    const level = m.level !== undefined && m.level !== null ? ' ' + m.level + ' %' : '';
    const by = (m.role ? m.role + ':' : '') + (m.by || '?');
    const target = m.target ? ' → ' + m.target.kind + ' ' + m.target.id : '';
    return { action: m.action + level, by: 'by ' + by + target };
  }

  /** A flag at each command's time on the chart, its text as the title (a tap or a hover shows it). */
  function drawMarks(v, u) {
    let layer = u.over.querySelector('.marks');
    if (!layer) {
      layer = ctx.h('div', { class: 'marks' });
      u.over.append(layer);
    }
    const { h } = ctx;
    const flags = [];
    for (const m of v.marks) {
      const x = u.valToPos(m.ts, 'x');
      if (!(x >= 0 && x <= u.over.clientWidth)) continue;
      const t = markText(m);
      const flag = h('span', { class: 'mark ' + m.status, 'data-mark': m.id, title: ctx.timeText(m.ts) + ' · ' + t.action + ' · ' + m.status + ' · ' + t.by });
      flag.style.left = Math.round(x) + 'px';
      flags.push(flag);
    }
    layer.replaceChildren(...flags);
  }

  function showMarks(v) {
    const { h, time } = ctx;
    ctx.clear(v.marksEl);
    v.marksHead.textContent = v.marks.length ? 'Commands in this range (' + v.marks.length + ')' : 'Commands in this range';
    for (const m of v.marks) {
      const t = markText(m);
      v.marksEl.append(h('li', { 'data-mark': m.id, 'data-ts': String(m.ts), 'data-status': m.status }, time(m.ts), ' ', h('b', null, t.action), ' ', h('b', { class: m.status }, m.status), ' ', h('span', { class: 'meta' }, t.by)));
    }
    if (v.marks.length === 0) v.marksEl.append(h('li', { class: 'meta' }, 'no command to ' + v.id + ' or its groups in this range'));
    // the flags are placed on each draw; the marks alone changed: place them again
    for (const c of v.charts) drawMarks(v, c.u);
  }

  /** A command to this device or one of its groups: its marker appears, or its status moves on. */
  function concerns(v, c) {
    if (!c || !c.target) return false;
    if (c.target.kind === 'device') return c.target.id === v.id;
    const row = rows.get(v.id);
    const groups = (row && row.groups) || (v.info && v.info.groups) || [];
    return c.target.kind === 'group' && groups.includes(c.target.id);
  }

  // ---- resize ---------------------------------------------------------------------------------

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const v = view;
      if (!v || !v.shown) return;
      for (const c of v.charts) c.u.setSize({ width: c.el.querySelector('.chart-plot').clientWidth || 300, height: CHART_HEIGHT });
      // as many buckets as pixels: a much wider or narrower plot asks again
      if (offWidth(v, v.shown.buckets)) void load();
    }, 150);
  });

  // ---- the hooks status.js calls --------------------------------------------------------------

  function takeStatus(s) {
    if (typeof s.now === 'number') skew = s.now - Date.now();
    if (Array.isArray(s.devices)) rows = new Map(s.devices.map((d) => [d.id, d]));
  }

  const hooks = {
    snapshot(helpers, s) {
      ctx = helpers;
      takeStatus(s);
      if (view) {
        showInfo(view);
        void load();
      }
    },
    status(s) {
      takeStatus(s);
      if (view) showInfo(view);
    },
    values(values) {
      const v = view;
      const mine = v && values && values[v.id];
      if (!mine) return;
      Object.assign(v.values, mine);
      showReadings(v);
      if (v.control) showControl(v, rows.get(v.id) || {});
    },
    /** Asks again once the live range's end has passed the command (SETTLE_MS behind now), so its marker shows. */
    commands(list) {
      const v = view;
      const mine = v && Array.isArray(list) ? list.filter((c) => concerns(v, c)) : [];
      if (mine.length === 0) return;
      const newest = Math.max(...mine.map((c) => (typeof c.ts === 'number' ? c.ts : 0)));
      clearTimeout(v.debounce);
      v.debounce = setTimeout(() => void load(), clamp(newest + SETTLE_MS + DEBOUNCE_MS - gatewayNow(), DEBOUNCE_MS, SETTLE_MS + DEBOUNCE_MS));
    },
    open,
    signOut() {
      close();
      ctx = null;
      rows = new Map();
    },
  };
  (window.streetboxSections = window.streetboxSections || []).push(hooks);
})();
