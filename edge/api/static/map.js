// streetbox status page, the "Map" section (issue 19): the devices and the gateway's cabinet where
// devices.yaml places them (lat/lon), each device coloured by what it is doing now (the live feed's
// `state`: on, dimmed, off, offline, alarm, unknown; edge/api/deviceState.ts decides it), with a
// legend of the counts. Tapping a device (or Enter on it) opens it: ctx.openDevice(id).
//
// It works offline, as cabinets often are: without api.mapTiles the positions are drawn to scale on
// a plain background (SVG: an equirectangular projection about the mean latitude, a scale bar in
// metres). With api.mapTiles (a tile URL template, e.g. the city's own tile server) Leaflet is
// loaded from the gateway (/vendor/, only then) and shows the tiles under circle markers; if it
// cannot be loaded, the plain map is drawn instead.
//
// Built when the set of located devices changes; each status refresh only sets the markers' state
// (data-state, which page.css colours) and the legend's counts. Plain JS, no build step; what is
// shown is set as text, never as markup. status.js calls the hooks registered here.
'use strict';
(() => {
  const STATES = ['on', 'dimmed', 'off', 'offline', 'alarm', 'unknown'];
  const SVG = 'http://www.w3.org/2000/svg';
  /** a marker's tap target is a circle of this radius (44 px across); the visible dot is smaller */
  const HIT_R = 22;
  const DOT_R = 8;
  /** px kept free around the outermost markers: a whole tap target and room for a label */
  const MARGIN = 30;
  /** the plain map never draws closer than this (px per metre): one light alone is not a blown-up dot */
  const MAX_SCALE = 2;
  /** the mean Earth radius (IUGG), in metres */
  const EARTH_R = 6371008.8;
  const M_PER_DEG = (EARTH_R * Math.PI) / 180;

  /** the page's helpers (status.js), null once signed out */
  let ctx = null;
  let gateway = null;
  let tiles = null;
  let attribution = null;
  /** the drawing: { kind: 'svg' | 'leaflet', markers: Map(id → marker), cabinet, place(), remove() } */
  let view = null;
  /** what the drawing shows: the located devices (id, name, position) and the cabinet's position */
  let layoutKey = null;
  /** the latest status rows, for a drawing that is built later (Leaflet loads) */
  let rows = [];
  /** the device the user opened: its label stays shown */
  let selected = null;
  /** bumped on each snapshot and sign-out: a Leaflet that loads late draws only for the current one */
  let generation = 0;
  let resize = null;
  let leaflet = null;

  const $ = (id) => document.getElementById(id);
  const located = (p) => p && Number.isFinite(p.lat) && Number.isFinite(p.lon);
  const label = (d) => d.name || d.id;
  const stateOf = (d) => (STATES.includes(d.state) ? d.state : 'unknown');

  /** "Stationsplein north (lamp-ctrl-01): dimmed 35 %, alarm lamp_failure": what a screen reader says of a marker. */
  function describe(d) {
    const level = typeof d.level === 'number' ? ' ' + d.level + ' %' : '';
    const alarms = d.alarms && d.alarms.length ? ', alarm ' + d.alarms.join(', ') : '';
    return (d.name ? d.name + ' (' + d.id + ')' : d.id) + ': ' + stateOf(d) + level + alarms;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  // ---- what to draw ---------------------------------------------------------------------------

  /** Shows the map of `devices` (status rows): builds it when what it shows changed, else sets the states. */
  function show(devices) {
    rows = Array.isArray(devices) ? devices : [];
    const on = rows.filter(located);
    const cabinet = located(gateway) ? gateway : null;
    const section = $('map-section');
    if (on.length === 0 && !cabinet) {
      if (layoutKey !== '') teardown();
      layoutKey = '';
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const key = JSON.stringify([cabinet && [cabinet.lat, cabinet.lon], on.map((d) => [d.id, label(d), d.lat, d.lon])]);
    if (key !== layoutKey) {
      teardown();
      layoutKey = key;
      build(on, cabinet);
    }
    setStates(rows);
  }

  function build(devices, cabinet) {
    if (tiles) {
      const gen = generation;
      $('map').dataset.map = 'loading';
      loadLeaflet().then(
        (L) => {
          if (gen !== generation || view) return;
          view = leafletView(L, devices, cabinet);
          afterBuild();
        },
        () => {
          if (gen !== generation || view) return;
          // no Leaflet (not installed, or the page lost the gateway): the plain map still shows where things are
          view = plainView(devices, cabinet);
          view.note = 'map tiles unavailable: drawn without them';
          afterBuild();
        },
      );
      return;
    }
    view = plainView(devices, cabinet);
    afterBuild();
  }

  function afterBuild() {
    const map = $('map');
    map.dataset.map = view.kind;
    resize = new ResizeObserver(() => view && view.place());
    resize.observe(map);
    view.place();
    setStates(rows);
    select(selected);
  }

  function teardown() {
    generation++;
    if (resize) resize.disconnect();
    resize = null;
    if (view) view.remove();
    view = null;
    layoutKey = null;
    const map = $('map');
    map.replaceChildren();
    // what Leaflet left on the container
    map.className = '';
    map.removeAttribute('tabindex');
    delete map.dataset.map;
    $('map-legend').replaceChildren();
  }

  /** Each marker's state as the status rows say (only what changed is touched), then the legend's counts. */
  function setStates(devices) {
    if (!view) return;
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    let unplaced = 0;
    for (const d of devices) {
      const m = view.markers.get(d.id);
      if (!m) {
        unplaced++;
        continue;
      }
      const state = stateOf(d);
      counts[state]++;
      if (m.state !== state) {
        m.state = state;
        for (const el of m.stateEls) el.setAttribute('data-state', state);
      }
      const text = describe(d);
      if (m.text !== text) {
        m.text = text;
        m.el.setAttribute('aria-label', text);
      }
    }
    legend(counts, unplaced);
  }

  /** The legend: a swatch and a count per state, the cabinet, the devices that have no position. */
  function legend(counts, unplaced) {
    const ul = $('map-legend');
    if (!ul.firstChild) {
      const { h } = ctx;
      for (const s of STATES) ul.append(h('li', { 'data-state': s }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), s + ' ', h('b', { class: 'count' }, '0')));
      if (view.cabinet) ul.append(h('li', { class: 'cabinet' }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), 'cabinet'));
      ul.append(h('li', { class: 'meta unplaced' }));
      if (view.note) ul.append(h('li', { class: 'meta note' }, view.note));
    }
    for (const s of STATES) {
      const b = ul.querySelector('[data-state="' + s + '"] .count');
      if (b.textContent !== String(counts[s])) b.textContent = String(counts[s]);
    }
    const note = ul.querySelector('.unplaced');
    note.hidden = unplaced === 0;
    note.textContent = unplaced === 0 ? '' : (unplaced === 1 ? '1 device has' : unplaced + ' devices have') + ' no position (lat/lon in devices.yaml)';
  }

  /** The opened device's marker keeps its label shown (and is drawn above the others). */
  function select(id) {
    selected = id;
    if (!view) return;
    for (const [mid, m] of view.markers) m.select(mid === id);
  }

  /** Moves `el` in the document (`move`) without taking the keyboard's focus from it. */
  function keepingFocus(el, move) {
    const focused = document.activeElement === el;
    move();
    if (focused) el.focus({ preventScroll: true });
  }

  /** Enter or Space on a marker opens its device, as a tap does. */
  function opener(id, el) {
    el.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
      if (ctx) ctx.openDevice(id);
    });
  }

  // ---- the plain map (SVG, to scale, offline) -------------------------------------------------

  /**
   * Positions as metres east and north of the mean position: equirectangular about the mean
   * latitude (x scaled by its cosine), exact enough over a street or a district.
   */
  function project(points) {
    const lat0 = points.reduce((a, p) => a + p.lat, 0) / points.length;
    const lon0 = points.reduce((a, p) => a + p.lon, 0) / points.length;
    const k = Math.cos((lat0 * Math.PI) / 180);
    return (p) => ({ x: (p.lon - lon0) * k * M_PER_DEG, y: (p.lat - lat0) * M_PER_DEG });
  }

  /** 1, 2 or 5 × 10^n metres, the longest not over `m`. */
  function niceMetres(m) {
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    return [5, 2, 1].map((f) => f * p).find((n) => n <= m) || p;
  }
  const metresText = (m) => (m >= 1000 ? m / 1000 + ' km' : m + ' m');

  function plainView(devices, cabinet) {
    const map = $('map');
    const toMetres = project(cabinet ? [...devices, cabinet] : devices);
    const root = svg('svg', { class: 'map-plain', role: 'group', 'aria-label': 'map of the devices, to scale (no map tiles)' });
    const bar = svg('g', { class: 'map-scale', 'aria-hidden': 'true' }, svg('path', { d: '' }), svg('text', { y: -6 }));
    const north = svg('g', { class: 'map-north', 'aria-hidden': 'true' }, svg('path', { d: 'M0,-12 L6,4 L0,0 L-6,4 Z' }), svg('text', { y: 18 }, 'N'));
    root.append(svg('rect', { class: 'map-bg', width: '100%', height: '100%' }), bar, north);
    const items = [];
    let cab = null;
    if (cabinet) {
      const el = svg(
        'g',
        { class: 'map-cabinet', 'data-gateway': cabinet.id, tabindex: 0, role: 'img', 'aria-label': 'cabinet ' + cabinet.id + (cabinet.site ? ' · ' + cabinet.site : '') },
        svg('circle', { class: 'map-hit', r: HIT_R }),
        svg('rect', { class: 'map-square', x: -8, y: -8, width: 16, height: 16, rx: 2 }),
        svg('text', { class: 'map-label', y: -16 }, 'cabinet ' + cabinet.id),
      );
      root.append(el);
      cab = { el, at: toMetres(cabinet) };
      items.push(cab);
    }
    const markers = new Map();
    for (const d of devices) {
      const dot = svg('circle', { class: 'map-dot', 'data-dot': d.id, r: DOT_R });
      const el = svg('g', { class: 'map-marker', 'data-device': d.id, tabindex: 0, role: 'button' }, svg('circle', { class: 'map-hit', r: HIT_R }), dot, svg('text', { class: 'map-label', y: -(DOT_R + 8) }, label(d)));
      el.addEventListener('click', () => ctx && ctx.openDevice(d.id));
      opener(d.id, el);
      root.append(el);
      const m = {
        el,
        at: toMetres(d),
        stateEls: [el, dot],
        state: null,
        text: null,
        select(on) {
          el.classList.toggle('selected', on);
          // drawn last, above the others (SVG has no z-index)
          if (on && el !== root.lastChild) keepingFocus(el, () => root.append(el));
        },
      };
      markers.set(d.id, m);
      items.push(m);
    }
    map.append(root);
    const xs = items.map((i) => i.at.x);
    const ys = items.map((i) => i.at.y);
    const box = { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };

    /** Fits the positions to the box as it is now (on build and on each resize): only the markers move. */
    function place() {
      const w = map.clientWidth;
      const hgt = map.clientHeight;
      if (!w || !hgt) return;
      const spanX = box.x1 - box.x0;
      const spanY = box.y1 - box.y0;
      const scale = Math.min(MAX_SCALE, spanX > 0 ? (w - 2 * MARGIN) / spanX : Infinity, spanY > 0 ? (hgt - 2 * MARGIN) / spanY : Infinity);
      const cx = (box.x0 + box.x1) / 2;
      const cy = (box.y0 + box.y1) / 2;
      for (const i of items) {
        const x = w / 2 + (i.at.x - cx) * scale;
        const y = hgt / 2 - (i.at.y - cy) * scale;
        i.el.setAttribute('transform', 'translate(' + x.toFixed(1) + ',' + y.toFixed(1) + ')');
        // a label near a side reads inwards, so it is never cut off
        i.el.setAttribute('data-anchor', x < 90 ? 'start' : x > w - 90 ? 'end' : 'middle');
      }
      const metres = niceMetres((w / 4) / scale);
      const px = metres * scale;
      bar.setAttribute('transform', 'translate(12,' + (hgt - 12) + ')');
      bar.firstChild.setAttribute('d', 'M0,-5 V0 H' + px.toFixed(1) + ' V-5');
      bar.lastChild.textContent = metresText(metres);
      bar.setAttribute('data-metres', String(metres));
      bar.setAttribute('data-px', px.toFixed(1));
      north.setAttribute('transform', 'translate(' + (w - 16) + ',22)');
    }
    return { kind: 'svg', markers, cabinet: cab, place, remove() {} };
  }

  // ---- with tiles (Leaflet, loaded from the gateway only when api.mapTiles is set) -------------

  /** Leaflet's script and stylesheet from /vendor/, once (the CSP allows 'self'); another try after a failure. */
  function loadLeaflet() {
    if (window.L && window.L.map) return Promise.resolve(window.L);
    if (!leaflet) {
      const { h } = ctx;
      const load = (el) =>
        new Promise((resolve, reject) => {
          el.addEventListener('load', resolve, { once: true });
          el.addEventListener('error', () => reject(new Error('could not load ' + (el.src || el.href))), { once: true });
          document.head.append(el);
        });
      leaflet = Promise.all([load(h('link', { rel: 'stylesheet', href: '/vendor/leaflet.css' })), load(h('script', { src: '/vendor/leaflet.js' }))]).then(() => {
        if (!window.L || !window.L.map) throw new Error('Leaflet did not load');
        return window.L;
      });
      leaflet.catch(() => (leaflet = null));
    }
    return leaflet;
  }

  function leafletView(L, devices, cabinet) {
    const el = $('map');
    // Leaflet's own attribution control writes markup: the attribution is shown as text below instead
    const map = L.map(el, { attributionControl: false, zoomSnap: 0.5 });
    L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
    if (attribution) {
      const credit = ctx.h('div', { class: 'map-attribution' }, attribution);
      L.DomEvent.disableClickPropagation(credit);
      el.append(credit);
    }
    // the view first: Leaflet creates a layer's elements only once the map has one
    const points = [...(cabinet ? [cabinet] : []), ...devices].map((p) => [p.lat, p.lon]);
    const bounds = L.latLngBounds(points);
    const fit = () => {
      if (points.length === 1) map.setView(points[0], 17);
      else map.fitBounds(bounds, { padding: [MARGIN, MARGIN], maxZoom: 18 });
    };
    fit();
    let moved = false;
    map.on('dragstart', () => (moved = true));
    let cab = null;
    if (cabinet) {
      const icon = L.divIcon({ className: 'map-cabinet-icon', iconSize: [44, 44], html: '' });
      const marker = L.marker([cabinet.lat, cabinet.lon], { icon, keyboard: true, title: 'cabinet ' + cabinet.id }).addTo(map);
      marker.getElement().setAttribute('data-gateway', cabinet.id);
      marker.bindTooltip(ctx.h('span', null, 'cabinet ' + cabinet.id), { direction: 'top', offset: [0, -10] });
      cab = { el: marker.getElement() };
    }
    const markers = new Map();
    for (const d of devices) {
      const at = [d.lat, d.lon];
      const dot = L.circleMarker(at, { radius: DOT_R, className: 'map-dot', interactive: false, weight: 2, fillOpacity: 1 }).addTo(map);
      // the tap target: a transparent circle 44 px across above the dot, carrying the marker's attributes
      const hit = L.circleMarker(at, { radius: HIT_R, className: 'map-hit', stroke: false, fillOpacity: 0, bubblingMouseEvents: false }).addTo(map);
      // the name on hover and on focus (Leaflet opens and closes it), and pinned for the opened device
      const tip = { direction: 'top', offset: [0, -DOT_R - 2] };
      hit.bindTooltip(ctx.h('span', null, label(d)), tip);
      const target = hit.getElement();
      target.setAttribute('data-device', d.id);
      target.setAttribute('tabindex', '0');
      target.setAttribute('role', 'button');
      dot.getElement().setAttribute('data-dot', d.id);
      hit.on('click', () => ctx && ctx.openDevice(d.id));
      opener(d.id, target);
      let pinned = null;
      markers.set(d.id, {
        el: target,
        stateEls: [target, dot.getElement()],
        state: null,
        text: null,
        select(on) {
          if (on === (pinned !== null)) return;
          target.classList.toggle('selected', on);
          if (!on) {
            pinned.remove();
            pinned = null;
            return;
          }
          pinned = L.tooltip({ ...tip, permanent: true, className: 'map-pinned' }).setLatLng(at).setContent(ctx.h('span', null, label(d))).addTo(map);
          // drawn last, above the others
          keepingFocus(target, () => {
            dot.bringToFront();
            hit.bringToFront();
          });
        },
      });
    }
    return {
      kind: 'leaflet',
      markers,
      cabinet: cab,
      map,
      /** a new size: Leaflet measures again; the view fits the devices again unless the user moved it */
      place() {
        map.invalidateSize();
        if (!moved) fit();
      },
      remove: () => map.remove(),
    };
  }

  // ---- hooks ----------------------------------------------------------------------------------

  const hooks = {
    snapshot(helpers, s) {
      ctx = helpers;
      teardown();
      gateway = s.gateway && located(s.gateway) ? { id: s.gateway.id, site: s.gateway.site, lat: s.gateway.lat, lon: s.gateway.lon } : null;
      tiles = typeof s.mapTiles === 'string' && s.mapTiles ? s.mapTiles : null;
      attribution = typeof s.mapAttribution === 'string' ? s.mapAttribution : null;
      show(s.devices);
    },
    status(s) {
      if (ctx) show(s.devices);
    },
    /** a device was opened (from here, the list or a link): its marker is the selected one */
    open(id) {
      select(id);
    },
    signOut() {
      ctx = null;
      selected = null;
      teardown();
      layoutKey = '';
      rows = [];
      $('map-section').hidden = true;
    },
  };
  (window.streetboxSections = window.streetboxSections || []).push(hooks);
})();
