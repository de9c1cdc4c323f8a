/* NeurophysicsLab dashboard: the app. No build step: React 18 + Recharts UMD globals and htm
 * templates (JSX-like, no Babel). index.html loads the libraries and dashboard_data.js first, then
 * this file, which renders into #root. Data format: DATA.md. Every value may be null. */
(function () {
  'use strict';

  const React = window.React;
  const ReactDOM = window.ReactDOM;
  const R = window.Recharts;
  const katex = window.katex || null;
  const html = window.htm.bind(React.createElement);
  const { useState, useEffect, useMemo, Component } = React;
  const {
    ResponsiveContainer, LineChart, Line, XAxis, YAxis, CartesianGrid, Tooltip,
    ReferenceLine, ReferenceArea, ReferenceDot, ScatterChart, Scatter, ComposedChart, Bar, LabelList,
  } = R;
  const boot = window.__DASHBOARD_BOOT || { sources: {}, failed: [] };

  // ------------------------------------------------------------------------------ constants

  // Okabe-Ito colours (colour-blind safe); "standard" is also dashed so it survives greyscale.
  const SERIES = [
    { key: 'true', label: 'true', color: '#1e293b', width: 4.5, opacity: 0.3 },
    { key: 'standard', label: 'standard', color: '#e69f00', dash: '7 4' },
    { key: 'physics', label: 'physics-aware', color: '#0072b2' },
  ];
  const VIOLATION = '#d55e00';
  const GRID = '#e2e8f0';
  const AXIS_TICK = { fontSize: 11, fill: '#64748b' };
  const PLAY_DURATION_MS = 6000;          // one pass through a trajectory at 1x
  const DEFAULT_THRESHOLD = 0.05;
  const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89',
    '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  const TABS = [
    { id: 'trajectory', label: 'Trajectory Viewer' },
    { id: 'energy', label: 'Energy Monitor' },
    { id: 'latent', label: 'Latent Space Explorer' },
    { id: 'equations', label: 'Discovered Equations' },
    { id: 'hnn', label: 'HNN benchmark' },
  ];

  // ------------------------------------------------------------------------------ helpers

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const num = (v) => (isNum(v) ? v : null);
  const arr = (v) => (Array.isArray(v) ? v : []);

  const SUPERSCRIPT = { '-': '⁻', '0': '⁰', '1': '¹', '2': '²', '3': '³', '4': '⁴', '5': '⁵',
    '6': '⁶', '7': '⁷', '8': '⁸', '9': '⁹' };
  const superscript = (s) => String(s).split('').map((c) => SUPERSCRIPT[c] || c).join('');

  /** Short human number: 0.0123, 1.23e-5, 4.56e+6 style for the extremes. */
  function fmt(v, digits = 3) {
    if (!isNum(v)) return '—';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a < 1e-3 || a >= 1e5) return v.toExponential(digits - 1);
    return String(Number(v.toPrecision(digits)));
  }
  function fmtTick(v) {
    if (!isNum(v)) return '';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }
  function fmtLogTick(v) {
    if (!isNum(v) || v <= 0) return '';
    const e = Math.round(Math.log10(v));
    return Math.abs(Math.log10(v) - e) < 1e-6 ? '10' + superscript(e) : fmt(v, 2);
  }
  const pct = (v, digits = 1) => (isNum(v) ? (100 * v).toFixed(digits) + '%' : '—');
  function fmtR2(v) {
    if (!isNum(v)) return '—';
    return v > 0.999 ? v.toFixed(6) : v.toFixed(4);
  }
  function fmtDate(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  /** Scientific notation with a real superscript: 3.80 × 10⁻⁴. */
  function Sci({ v, digits = 3 }) {
    if (!isNum(v)) return html`<span className="text-slate-400">—</span>`;
    const a = Math.abs(v);
    if (v === 0 || (a >= 1e-3 && a < 1e5)) return html`<span>${fmt(v, digits)}</span>`;
    const [m, e] = v.toExponential(digits - 1).split('e');
    return html`<span>${m} × 10<sup>${String(Number(e)).replace('-', '−')}</sup></span>`;
  }

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
  }
  /** Axis covering every finite value, widened to round numbers: {domain, ticks}. */
  function niceAxis(values, count = 5) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (isNum(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (lo > hi) { lo = 0; hi = 1; }
    if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
    const step = niceStep(hi - lo, count);
    const a = Math.floor(lo / step + 1e-9) * step;
    const b = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    for (let i = 0; a + i * step <= b + step * 1e-6; i++) ticks.push(Number((a + i * step).toPrecision(12)));
    return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
  }
  /** Time axis: exactly the sampled span, with round ticks inside it. */
  function timeAxis(t) {
    const finite = arr(t).filter(isNum);
    if (finite.length < 2 || finite[0] === finite[finite.length - 1]) return niceAxis(finite, 6);
    const first = finite[0];
    const last = finite[finite.length - 1];
    const ticks = niceAxis([first, last], 6).ticks.filter((v) => v >= first - 1e-9 && v <= last + 1e-9);
    return { domain: [first, last], ticks };
  }
  /** Log-axis domain: whole decades around the positive values. */
  function logDomain(values, pad = 1) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (isNum(v) && v > 0) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (lo > hi) return [1e-3, 1];
    lo /= pad;
    hi *= pad;
    const a = Math.floor(Math.log10(lo));
    const b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
    return [10 ** a, 10 ** b];
  }
  function decadeTicks([lo, hi]) {
    const out = [];
    const a = Math.round(Math.log10(lo));
    const b = Math.round(Math.log10(hi));
    const every = Math.max(1, Math.ceil((b - a) / 6));
    for (let e = a; e <= b; e += every) out.push(10 ** e);
    return out;
  }
  function viridis(f) {
    if (!isNum(f)) return '#cbd5e1';
    const x = Math.min(1, Math.max(0, f)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const mix = (a, b, w) => Math.round(a + (b - a) * w);
    const c0 = VIRIDIS[i];
    const c1 = VIRIDIS[i + 1];
    const ch = (c, k) => parseInt(c.slice(1 + 2 * k, 3 + 2 * k), 16);
    const w = x - i;
    return `rgb(${mix(ch(c0, 0), ch(c1, 0), w)},${mix(ch(c0, 1), ch(c1, 1), w)},${mix(ch(c0, 2), ch(c1, 2), w)})`;
  }

  /** State names, falling back to s0, s1... when the data has none. */
  function variablesOf(sys) {
    const names = arr(sys.variables);
    if (names.length) return names.map(String);
    const tr = arr(sys.trajectories).find((x) => arr(x && x.true).length);
    const d = tr ? arr(tr.true[0]).length : 0;
    return Array.from({ length: d }, (_, i) => `s${i}`);
  }

  /** Which two state variables the main trajectory plot shows, and what kind of plot that is. */
  function plotLayout(sys, vars) {
    const d = vars.length;
    const can = arr(sys.canonical);
    if (can.length === d) {
      const q = can.map((c, i) => (c === 'q' ? i : -1)).filter((i) => i >= 0);
      const p = can.map((c, i) => (c === 'p' ? i : -1)).filter((i) => i >= 0);
      if (q.length >= 2) return { kind: 'xy', xi: q[0], yi: q[1] };
      if (q.length === 1 && p.length >= 1) return { kind: 'phase', xi: q[0], yi: p[0] };
    }
    if (d === 2) return { kind: 'phase', xi: 0, yi: 1 };
    if (d >= 4 && d % 2 === 0) return { kind: 'xy', xi: 0, yi: 1 };  // positions first, then velocities
    if (d >= 2) return { kind: 'pair', xi: 0, yi: 1 };
    return { kind: 'none' };
  }
  const PLOT_TITLE = { xy: 'Position (x–y)', phase: 'Phase portrait', pair: 'State space' };

  /** Relative drift |E(t) - E0| / |E0|, E0 the true initial energy when known. */
  function relDrift(series, e0) {
    if (!isNum(e0)) return series.map(() => null);
    const denom = Math.max(Math.abs(e0), 1e-12);
    return series.map((e) => (isNum(e) ? Math.abs(e - e0) / denom : null));
  }

  /** Index ranges [i, j] where `flags` stays true. */
  function runs(flags) {
    const out = [];
    let start = -1;
    flags.forEach((f, i) => {
      if (f && start < 0) start = i;
      if (!f && start >= 0) { out.push([start, i - 1]); start = -1; }
    });
    if (start >= 0) out.push([start, flags.length - 1]);
    return out;
  }

  /** A law's name for text: discover.py's "E~" (approximately conserved energy) as Ẽ. */
  function displayName(name) {
    const text = String(name || '');
    return text.length > 1 && text.endsWith('~') ? (text.slice(0, -1) + '\u0303').normalize('NFC') : text;
  }

  function nameTex(name) {
    if (!name) return '';
    // "E~": discover.py's name of an energy that is only approximately conserved
    if (String(name).endsWith('~') && name.length > 1) return '\\tilde{' + nameTex(name.slice(0, -1)) + '}';
    const m = /^([A-Za-z])(?:_?\{?([A-Za-z0-9]+)\}?)?$/.exec(name);
    if (m) return m[2] ? `${m[1]}_{${m[2]}}` : m[1];
    return '\\mathrm{' + String(name).replace(/[\\{}_^$&#%~]/g, (c) => '\\' + c) + '}';
  }

  // ------------------------------------------------------------------------------ small UI

  function Card({ title, subtitle, right, children, testid, className }) {
    return html`
      <section data-testid=${testid}
        className=${'rounded-xl border border-slate-200 bg-white p-4 shadow-sm ' + (className || '')}>
        ${(title || right) && html`
          <div className="mb-3 flex flex-wrap items-start justify-between gap-2">
            <div>
              ${title && html`<h3 className="text-sm font-semibold text-slate-800">${title}</h3>`}
              ${subtitle && html`<p className="text-xs text-slate-500">${subtitle}</p>`}
            </div>
            ${right}
          </div>`}
        ${children}
      </section>`;
  }

  function Notice({ children, testid, tone }) {
    const tones = {
      info: 'border-slate-200 bg-slate-50 text-slate-600',
      warn: 'border-amber-200 bg-amber-50 text-amber-800',
      error: 'border-red-200 bg-red-50 text-red-800',
    };
    return html`<div data-testid=${testid}
      className=${'rounded-lg border px-4 py-3 text-sm ' + tones[tone || 'info']}>${children}</div>`;
  }

  const SELECT = 'rounded-md border border-slate-300 bg-white px-2 py-1 text-sm shadow-sm ' +
    'focus:outline-none focus:ring-2 focus:ring-sky-500';

  function Field({ label, children }) {
    return html`<label className="flex items-center gap-2 text-sm text-slate-600">
      <span className="font-medium">${label}</span>${children}</label>`;
  }

  function Swatch({ color, dash, width, opacity }) {
    return html`<svg width="22" height="10" className="inline-block align-middle">
      <line x1="1" y1="5" x2="21" y2="5" stroke=${color} strokeWidth=${width || 2.5}
        strokeOpacity=${opacity || 1} strokeDasharray=${dash || undefined} /></svg>`;
  }

  /** Legend in a fixed order (true, standard, physics-aware); missing series struck through. */
  function SeriesLegend({ available, only }) {
    const keys = available.map((s) => s.key);
    return html`
      <div className="flex flex-wrap gap-4 text-xs text-slate-600" data-testid="series-legend">
        ${(only ? available : SERIES).map((s) => html`<span key=${s.key}
          className=${keys.includes(s.key) ? '' : 'line-through opacity-50'}
          title=${keys.includes(s.key) ? '' : 'not in the data'}>
          <${Swatch} ...${s} /> ${s.label}</span>`)}
      </div>`;
  }

  function TrajectorySelect({ trajectories, index, onChange }) {
    if (trajectories.length < 2) return null;
    return html`<${Field} label="Trajectory">
      <select data-testid="traj-select" className=${SELECT} value=${index}
        onChange=${(e) => onChange(Number(e.target.value))}>
        ${trajectories.map((tr, i) => html`
          <option key=${i} value=${i}>#${tr && tr.id != null ? tr.id : i}</option>`)}
      </select><//>`;
  }

  /** KaTeX, falling back to the LaTeX source in monospace when KaTeX is unavailable. `inline`:
   *  text-sized, inside a line (coefficient terms, loss laws in a sentence). */
  function Tex({ tex, testid, inline }) {
    const rendered = useMemo(() => {
      if (!katex) return null;
      try {
        return katex.renderToString(tex, { displayMode: !inline, throwOnError: false, output: 'html' });
      } catch (err) {
        return null;
      }
    }, [tex, inline]);
    if (rendered === null) {
      return inline
        ? html`<code data-testid=${testid ? testid + '-source' : undefined} className="rounded bg-slate-50 px-1 text-xs">${tex}</code>`
        : html`<code data-testid=${!testid || testid === 'equation-katex' ? 'equation-source' : testid + '-source'}
        className="block overflow-x-auto rounded bg-slate-50 px-3 py-2 text-sm">${tex}</code>`;
    }
    if (inline) {
      return html`<span data-testid=${testid} className="text-slate-900"
        dangerouslySetInnerHTML=${{ __html: rendered }} />`;
    }
    return html`<div data-testid=${testid}
      className="eq-tex overflow-x-auto text-slate-900"
      dangerouslySetInnerHTML=${{ __html: rendered }} />`;
  }

  class ErrorBoundary extends Component {
    constructor(props) { super(props); this.state = { error: null }; }
    static getDerivedStateFromError(error) { return { error }; }
    render() {
      if (this.state.error) {
        return html`<${Notice} tone="error" testid="panel-error">
          This panel could not be drawn from the data: ${String(this.state.error.message || this.state.error)}
        <//>`;
      }
      return this.props.children;
    }
  }

  function ChartTooltip({ active, payload, label, labelName, digits }) {
    if (!active || !payload || !payload.length) return null;
    return html`<div className="rounded-md border border-slate-200 bg-white/95 px-3 py-2 text-xs shadow">
      ${label != null && html`<div className="mb-1 font-medium text-slate-700">${labelName || 't'} = ${fmt(label, 4)}</div>`}
      ${payload.filter((p) => p && isNum(p.value)).map((p, i) => html`
        <div key=${i} className="flex items-center gap-2">
          <span className="inline-block h-2 w-2 rounded-full" style=${{ background: p.color || p.stroke }}></span>
          <span className="text-slate-600">${p.name}</span>
          <span className="ml-auto font-mono tabular-nums">${fmt(p.value, digits || 4)}</span>
        </div>`)}
    </div>`;
  }

  // ------------------------------------------------------------------------------ 1. trajectories

  const STATE_MARGIN = { top: 4, right: 10, bottom: 4, left: 0 };
  const STATE_Y_WIDTH = 48;
  const STATE_PLOT_LEFT = STATE_MARGIN.left + STATE_Y_WIDTH;
  const X_AXIS_HEIGHT = 30;     // Recharts' default XAxis height

  /** One state variable against time. Memoised: the moving time cursor is an overlay, so
   *  playing the animation does not redraw these charts. */
  const StateChart = React.memo(function StateChart({ rows, index, axis, tAxis, available, height }) {
    return html`
      <${ResponsiveContainer} width="100%" height=${height}>
        <${LineChart} data=${rows} margin=${STATE_MARGIN}>
          <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
          <${XAxis} type="number" dataKey="t" domain=${tAxis.domain} ticks=${tAxis.ticks}
            height=${X_AXIS_HEIGHT} tick=${AXIS_TICK} tickFormatter=${fmtTick} />
          <${YAxis} type="number" domain=${axis.domain} ticks=${axis.ticks} allowDataOverflow
            width=${STATE_Y_WIDTH} tick=${AXIS_TICK} tickFormatter=${fmtTick} />
          <${Tooltip} content=${html`<${ChartTooltip} />`} isAnimationActive=${false} />
          ${available.map((s) => html`<${Line} key=${s.key} dataKey=${s.key + ':' + index}
            name=${s.label} stroke=${s.color} strokeDasharray=${s.dash} strokeWidth=${s.width || 1.8}
            strokeOpacity=${s.opacity || 1} dot=${false} isAnimationActive=${false} />`)}
        <//>
      <//>`;
  });

  const RECORDING_COLORS = ['#0072b2', '#009e73', '#cc79a7', '#56b4e9'];

  /** A real recording as a whole (data cut into windows by the loader, joined back in time
   *  order): its phase portrait and its variables against time, the held-out part shaded. */
  function RecordingCard({ info, sys, vars }) {
    const list = arr(info && info.series).filter((x) => x && arr(x.t).length > 1);
    const [index, setIndex] = useState(0);
    const one = list[Math.min(index, list.length - 1)];
    const layout = plotLayout(sys, vars);
    const view = useMemo(() => {
      if (!one) return null;
      const t = arr(one.t).map(num);
      const states = arr(one.states).map(arr);
      const held = num(one.held_out_from);
      const rows = t.map((tt, j) => {
        const row = { t: tt };
        vars.forEach((_, i) => { row['s' + i] = num(states[j] && states[j][i]); });
        return row;
      });
      let phase = null;
      if (layout.kind !== 'none') {
        const pts = states.map((x, j) => ({ x: num(x[layout.xi]), y: num(x[layout.yi]), t: t[j] }));
        const cut = isNum(held) ? pts.findIndex((p) => isNum(p.t) && p.t >= held) : -1;
        const fit = cut > 0 ? pts.slice(0, cut + 1) : pts;
        const later = cut > 0 ? pts.slice(cut) : [];
        phase = { fit, later, x: niceAxis(pts.map((p) => p.x)), y: niceAxis(pts.map((p) => p.y)) };
      }
      return { rows, held, phase, tAxis: timeAxis(t),
        yAxis: niceAxis(rows.flatMap((r) => vars.map((_, i) => r['s' + i]))) };
    }, [one, vars, layout.kind, layout.xi, layout.yi]);
    if (!view) return null;
    const last = view.tAxis.domain[1];
    return html`
      <${Card} testid="recording-plot" title="The whole recording"
        subtitle=${(info.description || 'a recording cut into windows') + '. The viewer above shows its held-out windows.'}
        right=${list.length > 1 && html`<${Field} label="Recording">
          <select data-testid="recording-select" className=${SELECT} value=${index}
            onChange=${(e) => setIndex(Number(e.target.value))}>
            ${list.map((x, i) => html`<option key=${i} value=${i}>#${x.id}</option>`)}
          </select><//>`}>
        <div className="grid gap-4 lg:grid-cols-2">
          ${view.phase && html`<div data-testid="recording-phase">
            <div className="mb-1 flex flex-wrap gap-4 pl-12 text-xs text-slate-600">
              <span>${vars[layout.yi]} vs ${vars[layout.xi]}</span>
              <span><${Swatch} color=${RECORDING_COLORS[0]} /> training windows</span>
              ${view.phase.later.length > 0 && html`<span><${Swatch} color=${VIOLATION} /> held-out windows</span>`}
            </div>
            <${ResponsiveContainer} width="100%" height=${300}>
              <${LineChart} margin=${{ top: 8, right: 16, bottom: 18, left: 4 }}>
                <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
                <${XAxis} type="number" dataKey="x" domain=${view.phase.x.domain} ticks=${view.phase.x.ticks}
                  allowDataOverflow tick=${AXIS_TICK} tickFormatter=${fmtTick}
                  label=${{ value: vars[layout.xi], position: 'insideBottom', offset: -10, fontSize: 12, fill: '#334155' }} />
                <${YAxis} type="number" dataKey="y" domain=${view.phase.y.domain} ticks=${view.phase.y.ticks}
                  allowDataOverflow width=${52} tick=${AXIS_TICK} tickFormatter=${fmtTick}
                  label=${{ value: vars[layout.yi], angle: -90, position: 'insideLeft', fontSize: 12, fill: '#334155' }} />
                <${Line} data=${view.phase.fit} dataKey="y" name="training windows" stroke=${RECORDING_COLORS[0]}
                  strokeWidth=${1.3} dot=${false} activeDot=${false} isAnimationActive=${false} />
                ${view.phase.later.length > 0 && html`<${Line} data=${view.phase.later} dataKey="y" name="held out"
                  stroke=${VIOLATION} strokeWidth=${1.6} dot=${false} activeDot=${false} isAnimationActive=${false} />`}
              <//>
            <//>
          </div>`}
          <div data-testid="recording-states">
            <div className="mb-1 flex flex-wrap gap-4 pl-12 text-xs text-slate-600">
              ${vars.map((v, i) => html`<span key=${v}><${Swatch} color=${RECORDING_COLORS[i % RECORDING_COLORS.length]} /> ${v}</span>`)}
            </div>
            <${ResponsiveContainer} width="100%" height=${300}>
              <${LineChart} data=${view.rows} margin=${{ top: 8, right: 16, bottom: 18, left: 4 }}>
                <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
                <${XAxis} type="number" dataKey="t" domain=${view.tAxis.domain} ticks=${view.tAxis.ticks}
                  tick=${AXIS_TICK} tickFormatter=${fmtTick}
                  label=${{ value: 't', position: 'insideBottom', offset: -10, fontSize: 12, fill: '#334155' }} />
                <${YAxis} type="number" domain=${view.yAxis.domain} ticks=${view.yAxis.ticks} allowDataOverflow
                  width=${52} tick=${AXIS_TICK} tickFormatter=${fmtTick} />
                ${isNum(view.held) && view.held < last && html`<${ReferenceArea} x1=${view.held} x2=${last}
                  fill="#94a3b8" fillOpacity=${0.12} stroke="none" ifOverflow="hidden" className="held-out-area"
                  label=${{ value: 'held out', position: 'insideTopRight', fontSize: 11, fill: '#64748b' }} />`}
                <${Tooltip} content=${html`<${ChartTooltip} />`} isAnimationActive=${false} />
                ${vars.map((v, i) => html`<${Line} key=${v} dataKey=${'s' + i} name=${v}
                  stroke=${RECORDING_COLORS[i % RECORDING_COLORS.length]} strokeWidth=${1.3} dot=${false}
                  isAnimationActive=${false} />`)}
              <//>
            <//>
          </div>
        </div>
      <//>`;
  }

  function TrajectoryTab({ sys, trajIndex, setTrajIndex }) {
    const vars = useMemo(() => variablesOf(sys), [sys]);
    const trajectories = arr(sys.trajectories);
    const tr = trajectories[Math.min(trajIndex, trajectories.length - 1)] || {};
    const t = arr(tr.t);
    const steps = t.length;
    const available = useMemo(() => SERIES.filter((s) => arr(tr[s.key]).length > 0), [tr]);
    const layout = plotLayout(sys, vars);

    const [k, setK] = useState(0);
    const [playing, setPlaying] = useState(false);
    const [speed, setSpeed] = useState(1);
    const [loop, setLoop] = useState(false);

    const kRef = React.useRef(0);
    kRef.current = k;
    // Playback follows the clock (a slow frame skips steps instead of slowing the film down).
    useEffect(() => {
      if (!playing || steps < 2) return undefined;
      const stepMs = PLAY_DURATION_MS / (steps - 1) / speed;
      const startK = kRef.current >= steps - 1 ? 0 : kRef.current;
      const started = performance.now();
      const id = setInterval(() => {
        let next = startK + Math.floor((performance.now() - started) / stepMs);
        if (next > steps - 1) next = loop ? next % steps : steps - 1;
        setK(next);
      }, Math.max(16, stepMs));
      return () => clearInterval(id);
    }, [playing, speed, loop, steps]);
    useEffect(() => {
      if (playing && !loop && k >= steps - 1) setPlaying(false);
    }, [playing, loop, k, steps]);

    const main = useMemo(() => {
      if (layout.kind === 'none') return null;
      const series = available.map((s) => ({
        ...s,
        pts: arr(tr[s.key]).map((row) => ({
          x: num(arr(row)[layout.xi]), y: num(arr(row)[layout.yi]),
        })),
      }));
      const xs = [];
      const ys = [];
      series.forEach((s) => s.pts.forEach((p) => { xs.push(p.x); ys.push(p.y); }));
      return { series, x: niceAxis(xs), y: niceAxis(ys) };
    }, [tr, layout.kind, layout.xi, layout.yi]);

    const timeRows = useMemo(() => t.map((tt, j) => {
      const row = { t: num(tt) };
      available.forEach((s) => {
        const state = arr(arr(tr[s.key])[j]);
        vars.forEach((_, i) => { row[s.key + ':' + i] = num(state[i]); });
      });
      return row;
    }), [tr, vars]);
    const timeAxes = useMemo(() => vars.map((_, i) => niceAxis(
      timeRows.flatMap((row) => available.map((s) => row[s.key + ':' + i])), 4)), [timeRows]);

    const tAxis = useMemo(() => timeAxis(t), [tr]);

    if (!trajectories.length || !steps) {
      return html`<${Notice} testid="trajectory-unavailable">This system has no held-out trajectories in the data file.<//>`;
    }
    const kk = Math.min(k, steps - 1);
    const tNow = num(t[kk]);
    const cursor = isNum(tNow) && tAxis.domain[1] > tAxis.domain[0]
      ? Math.min(1, Math.max(0, (tNow - tAxis.domain[0]) / (tAxis.domain[1] - tAxis.domain[0]))) : null;

    const truthNow = arr(arr(tr.true)[kk]);
    const errors = available.filter((s) => s.key !== 'true').map((s) => {
      const pred = arr(arr(tr[s.key])[kk]);
      let sq = 0;
      let ok = truthNow.length > 0;
      truthNow.forEach((v, i) => {
        if (isNum(v) && isNum(pred[i])) sq += (pred[i] - v) ** 2; else ok = false;
      });
      return { ...s, err: ok ? Math.sqrt(sq) : null };
    });

    const togglePlay = () => {
      if (!playing && kk >= steps - 1) setK(0);
      setPlaying(!playing);
    };

    const controls = html`
      <div className="flex flex-wrap items-center gap-x-5 gap-y-3">
        <${TrajectorySelect} trajectories=${trajectories} index=${trajIndex}
          onChange=${(i) => { setTrajIndex(i); }} />
        <button type="button" data-testid="play-button" onClick=${togglePlay}
          className="inline-flex w-24 items-center justify-center gap-1.5 rounded-md bg-sky-700 px-3 py-1.5 text-sm font-medium text-white shadow-sm hover:bg-sky-800 focus:outline-none focus:ring-2 focus:ring-sky-500">
          ${playing ? '❚❚ Pause' : '▶ Play'}
        </button>
        <input type="range" data-testid="time-slider" aria-label="time step" min="0" max=${steps - 1}
          step="1" value=${kk} className="h-2 min-w-[12rem] flex-1 cursor-pointer accent-sky-700"
          onChange=${(e) => { setPlaying(false); setK(Number(e.target.value)); }} />
        <span data-testid="time-readout" className="w-52 whitespace-nowrap font-mono text-sm tabular-nums text-slate-700">
          t = ${fmt(tNow, 4)} <span className="text-slate-400">(step ${kk + 1}/${steps})</span>
        </span>
        <${Field} label="Speed">
          <select className=${SELECT} value=${speed} data-testid="speed-select"
            onChange=${(e) => setSpeed(Number(e.target.value))}>
            ${[0.25, 0.5, 1, 2, 4].map((v) => html`<option key=${v} value=${v}>${v}×</option>`)}
          </select><//>
        <label className="flex items-center gap-1.5 text-sm text-slate-600">
          <input type="checkbox" checked=${loop} onChange=${(e) => setLoop(e.target.checked)}
            className="accent-sky-700" /> loop
        </label>
      </div>`;

    const legend = html`<${SeriesLegend} available=${available} />`;

    const xLabel = main ? vars[layout.xi] : '';
    const yLabel = main ? vars[layout.yi] : '';
    const mainPlot = main && html`
      <${Card} testid="main-plot" title=${html`<span data-testid="plot-kind">${PLOT_TITLE[layout.kind]}</span>`}
        subtitle=${`${yLabel} vs ${xLabel} · faint: whole trajectory, solid: up to t, dot: now`}>
        <${ResponsiveContainer} width="100%" height=${400}>
          <${LineChart} margin=${{ top: 8, right: 16, bottom: 18, left: 4 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
            <${XAxis} type="number" dataKey="x" domain=${main.x.domain} ticks=${main.x.ticks}
              allowDataOverflow tick=${AXIS_TICK} tickFormatter=${fmtTick}
              label=${{ value: xLabel, position: 'insideBottom', offset: -10, fontSize: 12, fill: '#334155' }} />
            <${YAxis} type="number" dataKey="y" domain=${main.y.domain} ticks=${main.y.ticks} allowDataOverflow width=${52}
              tick=${AXIS_TICK} tickFormatter=${fmtTick}
              label=${{ value: yLabel, angle: -90, position: 'insideLeft', fontSize: 12, fill: '#334155' }} />
            ${main.series.map((s) => html`<${Line} key=${'ghost-' + s.key} data=${s.pts} dataKey="y"
              name=${s.label + ' (whole)'} stroke=${s.color} strokeOpacity=${s.key === 'true' ? 0.2 : 0.4}
              strokeWidth=${s.width || 1.5}
              strokeDasharray=${s.dash} dot=${false} activeDot=${false} isAnimationActive=${false}
              legendType="none" />`)}
            ${main.series.map((s) => html`<${Line} key=${s.key} data=${s.pts.slice(0, kk + 1)} dataKey="y"
              name=${s.label} stroke=${s.color} strokeWidth=${s.width || 2.2} strokeOpacity=${s.opacity || 1}
              strokeDasharray=${s.dash} dot=${false} activeDot=${false} isAnimationActive=${false} />`)}
            ${main.series.map((s) => {
              const p = s.pts[Math.min(kk, s.pts.length - 1)];
              return p && isNum(p.x) && isNum(p.y) ? html`<${ReferenceDot} key=${'now-' + s.key}
                x=${p.x} y=${p.y} r=${5.5} fill=${s.color} stroke="#fff" strokeWidth=${2} />` : null;
            })}
          <//>
        <//>
      <//>`;

    const cols = vars.length > 2 ? 'sm:grid-cols-2' : 'grid-cols-1';
    const statePlots = html`
      <${Card} testid="state-plots" title="State vs time" subtitle="vertical line: current time">
        <div className=${'grid gap-2 ' + cols}>
          ${vars.map((v, i) => html`
            <div key=${v + i} data-testid="state-chart">
              <div className="pl-12 text-xs font-medium text-slate-600">${v}</div>
              <div className="relative">
                <${StateChart} rows=${timeRows} index=${i} axis=${timeAxes[i]} tAxis=${tAxis}
                  available=${available} height=${vars.length > 2 ? 170 : 180} />
                ${cursor !== null && html`<div data-testid="time-cursor"
                  className="pointer-events-none absolute w-px bg-slate-400"
                  style=${{ top: STATE_MARGIN.top, bottom: STATE_MARGIN.bottom + X_AXIS_HEIGHT,
                    left: `calc(${STATE_PLOT_LEFT}px + (100% - ${STATE_PLOT_LEFT + STATE_MARGIN.right}px) * ${cursor})` }}></div>`}
              </div>
            </div>`)}
        </div>
      <//>`;

    return html`
      <div className="space-y-4">
        <${Card}>
          <div className="space-y-3">${controls}
            <div className="flex flex-wrap items-center justify-between gap-3">
              ${legend}
              <div data-testid="error-readout" className="flex flex-wrap gap-4 text-xs text-slate-600">
                ${errors.map((e) => html`<span key=${e.key}>‖${e.label} − true‖ = <span
                  className="font-mono tabular-nums text-slate-800">${fmt(e.err, 3)}</span></span>`)}
                ${!available.some((s) => s.key === 'standard') && html`<span className="italic">no standard run in the data</span>`}
              </div>
            </div>
          </div>
        <//>
        <div className="grid gap-4 lg:grid-cols-2">
          ${mainPlot || html`<${Notice}>A single state variable: see the state vs time plot.<//>`}
          ${statePlots}
        </div>
        ${sys.recording_info && html`<${RecordingCard} info=${sys.recording_info} sys=${sys} vars=${vars} />`}
      </div>`;
  }

  // ------------------------------------------------------------------------------ 2. energy

  function DriftTable({ systems, current, threshold, onSelect }) {
    const names = Object.keys(systems);
    const cell = (v) => {
      const bad = isNum(v) && v > threshold;
      return html`<td className=${'px-3 py-1.5 text-right font-mono tabular-nums ' +
        (bad ? 'bg-red-50 text-red-700 font-semibold' : '')} data-violation=${bad ? '1' : '0'}>
        <${Sci} v=${v} /></td>`;
    };
    return html`
      <div className="overflow-x-auto">
      <table data-testid="drift-table" className="min-w-full text-sm">
        <thead>
          <tr className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500">
            <th className="px-3 py-2 text-left" rowSpan="2">system</th>
            <th className="px-3 pt-2 text-center" colSpan="2">standard</th>
            <th className="px-3 pt-2 text-center" colSpan="2">physics-aware</th>
            <th className="px-3 py-2 text-right" rowSpan="2" title="standard mean drift / physics-aware mean drift">improvement</th>
          </tr>
          <tr className="border-b border-slate-200 text-xs text-slate-500">
            <th className="px-3 pb-2 text-right font-normal">mean</th><th className="px-3 pb-2 text-right font-normal">max</th>
            <th className="px-3 pb-2 text-right font-normal">mean</th><th className="px-3 pb-2 text-right font-normal">max</th>
          </tr>
        </thead>
        <tbody>
          ${names.map((n) => {
            const d = (systems[n] && systems[n].drift) || {};
            const s = d.standard || {};
            const p = d.physics || {};
            const ratio = isNum(s.mean) && isNum(p.mean) && p.mean > 0 ? s.mean / p.mean : null;
            return html`<tr key=${n} data-testid="drift-row" onClick=${() => onSelect(n)}
              className=${'cursor-pointer border-b border-slate-100 hover:bg-slate-50 ' + (n === current ? 'bg-sky-50/60' : '')}>
              <td className="px-3 py-1.5 font-medium text-slate-800">${n}</td>
              ${cell(s.mean)}${cell(s.max)}${cell(p.mean)}${cell(p.max)}
              <td className="px-3 py-1.5 text-right font-mono tabular-nums">${ratio === null ? '—' : fmt(ratio, 3) + '×'}</td>
            </tr>`;
          })}
        </tbody>
      </table>
      </div>`;
  }

  function ViolationDot(props) {
    const { cx, cy, value, threshold, index } = props;
    if (!isNum(cx) || !isNum(cy) || !isNum(value) || value <= threshold) return html`<g key=${index} />`;
    return html`<circle key=${index} className="violation-dot" cx=${cx} cy=${cy} r=${3}
      fill=${VIOLATION} stroke="#fff" strokeWidth=${0.8} />`;
  }

  const DECAY_SERIES = [
    { key: 'energy', label: 'measured', color: '#1e293b', width: 1.6 },
    { key: 'predicted', label: 'loss law, integrated', color: VIOLATION, dash: '7 4', width: 2.2 },
  ];

  /** An approximately conserved energy (kind "approximate", e.g. a real recording with
   *  friction) along each recording in time order, beside the integral of its loss law. */
  function DecayChart({ decay, recording }) {
    const list = arr(decay && decay.series).filter((x) => x && arr(x.t).length > 1);
    const [index, setIndex] = useState(0);
    const one = list[Math.min(index, list.length - 1)];
    const view = useMemo(() => {
      if (!one) return null;
      const rows = arr(one.t).map((tt, j) => ({
        t: num(tt), energy: num(arr(one.energy)[j]), predicted: num(arr(one.predicted)[j]),
      }));
      const series = DECAY_SERIES.filter((s) => rows.some((r) => isNum(r[s.key])));
      return { rows, series, tAxis: timeAxis(rows.map((r) => r.t)),
        eAxis: niceAxis(rows.flatMap((r) => series.map((s) => r[s.key]))) };
    }, [one]);
    if (!view) return null;
    const sym = nameTex(decay.equation || 'E');
    const last = view.tAxis.domain[1];
    const heldFrom = num(one.held_out_from);
    const what = recording ? (list.length > 1 ? `recording ${one.id + 1} of ${list.length}` : 'the whole recording')
      : `held-out trajectory #${one.id}`;
    return html`
      <${Card} testid="decay-chart" title=${`Decay of the approximate energy ${displayName(decay.equation)} over time`}
        subtitle=${`${what}, in time order; measured from its lowest value over the states (zero at ${fmt(decay.zero, 4)})` +
          (isNum(heldFrom) ? '; shaded: held-out windows' : '')}
        right=${html`<div className="flex flex-wrap items-center gap-4">
          ${list.length > 1 && html`<${Field} label=${recording ? 'Recording' : 'Trajectory'}>
            <select data-testid="decay-series-select" className=${SELECT} value=${index}
              onChange=${(e) => setIndex(Number(e.target.value))}>
              ${list.map((x, i) => html`<option key=${i} value=${i}>#${x.id}</option>`)}
            </select><//>`}
          <${SeriesLegend} available=${view.series} only=${true} /></div>`}>
        <div className="grid gap-4 lg:grid-cols-4">
          <div className="lg:col-span-3">
            <${ResponsiveContainer} width="100%" height=${320}>
              <${LineChart} data=${view.rows} margin=${{ top: 8, right: 16, bottom: 16, left: 4 }}>
                <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
                <${XAxis} type="number" dataKey="t" domain=${view.tAxis.domain} ticks=${view.tAxis.ticks}
                  tick=${AXIS_TICK} tickFormatter=${fmtTick}
                  label=${{ value: 't', position: 'insideBottom', offset: -8, fontSize: 12, fill: '#334155' }} />
                <${YAxis} type="number" domain=${view.eAxis.domain} ticks=${view.eAxis.ticks} allowDataOverflow
                  width=${56} tick=${AXIS_TICK} tickFormatter=${fmtTick}
                  label=${{ value: displayName(decay.equation || 'E') + ' − min', angle: -90, position: 'insideLeft', fontSize: 12, fill: '#334155' }} />
                ${isNum(heldFrom) && heldFrom < last && html`<${ReferenceArea} x1=${heldFrom} x2=${last}
                  fill="#94a3b8" fillOpacity=${0.12} stroke="none" ifOverflow="hidden" className="held-out-area"
                  label=${{ value: 'held out', position: 'insideTopRight', fontSize: 11, fill: '#64748b' }} />`}
                <${Tooltip} content=${html`<${ChartTooltip} />`} isAnimationActive=${false} />
                ${view.series.map((s) => html`<${Line} key=${s.key} dataKey=${s.key} name=${s.label}
                  stroke=${s.color} strokeDasharray=${s.dash} strokeWidth=${s.width} dot=${false}
                  className=${'decay-' + s.key} isAnimationActive=${false} />`)}
              <//>
            <//>
          </div>
          <dl className="space-y-3 text-sm" data-testid="decay-summary">
            ${decay.latex && html`<div><dt className="text-xs uppercase tracking-wide text-slate-500">law</dt>
              <dd><${Tex} tex=${sym + ' = ' + decay.latex} inline=${true} testid="decay-energy-katex" /></dd></div>`}
            <div><dt className="text-xs uppercase tracking-wide text-slate-500">kept over the ${recording ? 'recording' : 'trajectories'}</dt>
              <dd className="font-mono text-lg tabular-nums text-slate-900" data-testid="decay-chart-kept">${pct(decay.kept, 1)}</dd></div>
            <div><dt className="text-xs uppercase tracking-wide text-slate-500">loss law</dt>
              <dd>${decay.loss_law_latex
                ? html`<${Tex} tex=${decay.loss_law_latex.replace(/^\\dot E\b/, '\\dot{' + sym + '}')} inline=${true} testid="decay-law-katex" />`
                : html`<span className="font-mono text-xs">${decay.loss_law || '—'}</span>`}</dd></div>
            <div><dt className="text-xs uppercase tracking-wide text-slate-500">share of the change explained</dt>
              <dd className="font-mono text-lg tabular-nums text-slate-900" data-testid="decay-chart-explained">${pct(decay.explained, 1)}</dd></div>
            ${!view.series.some((s) => s.key === 'predicted') && html`<div className="text-xs text-slate-500">no integrated loss law in the data</div>`}
          </dl>
        </div>
      <//>`;
  }

  function EnergyTab({ name, sys, systems, trajIndex, setTrajIndex, threshold, setThreshold, onSelectSystem }) {
    const [thresholdText, setThresholdText] = useState(String(threshold));
    const [logScale, setLogScale] = useState(true);
    const trajectories = arr(sys.trajectories);
    const energies = arr(sys.energy);
    const tr = trajectories[Math.min(trajIndex, trajectories.length - 1)];
    const entry = (tr && energies.find((e) => e && e.id === tr.id)) || energies[trajIndex] || energies[0] || null;

    const calc = useMemo(() => {
      if (!entry) return null;
      const t = arr(entry.t);
      const series = SERIES.filter((s) => arr(entry[s.key]).some(isNum));
      if (!t.length || !series.length) return null;
      const first = (xs) => arr(xs).find(isNum);
      const e0 = isNum(arr(entry.true)[0]) ? entry.true[0] : first(entry.physics) ?? first(entry.standard);
      const preds = series.filter((s) => s.key !== 'true');
      const drift = {};
      preds.forEach((s) => { drift[s.key] = relDrift(arr(entry[s.key]), e0); });
      const rows = t.map((tt, j) => {
        const row = { t: num(tt) };
        series.forEach((s) => { row[s.key] = num(arr(entry[s.key])[j]); });
        preds.forEach((s) => { row['drift:' + s.key] = drift[s.key][j]; });
        return row;
      });
      return { t, series, preds, drift, rows, e0,
        eAxis: niceAxis(rows.flatMap((r) => series.map((s) => r[s.key]))) };
    }, [entry]);

    const onThreshold = (e) => {
      setThresholdText(e.target.value);
      const v = Number(e.target.value);
      if (e.target.value.trim() !== '' && isNum(v) && v >= 0) setThreshold(v);
    };
    const controls = html`
      <div className="flex flex-wrap items-center gap-x-6 gap-y-3">
        <${TrajectorySelect} trajectories=${trajectories} index=${trajIndex} onChange=${setTrajIndex} />
        <${Field} label="Drift threshold">
          <input type="number" data-testid="drift-threshold" min="0" step="any" value=${thresholdText}
            onChange=${onThreshold} className=${SELECT + ' w-24 font-mono'} />
          <span className="text-xs text-slate-500">= ${pct(threshold, 2)} of |E(0)|</span>
        <//>
        <label className="flex items-center gap-1.5 text-sm text-slate-600">
          <input type="checkbox" checked=${logScale} onChange=${(e) => setLogScale(e.target.checked)}
            className="accent-sky-700" data-testid="drift-log" /> log drift axis
        </label>
      </div>`;

    const table = html`
      <${Card} title="Relative energy drift, all held-out trajectories"
        subtitle=${`|E(t) − E(0)| / |E(0)| per system; red: above the threshold (${pct(threshold, 2)}). Click a row to switch system.`}>
        <${DriftTable} systems=${systems} current=${name} threshold=${threshold} onSelect=${onSelectSystem} />
      <//>`;

    const decay = sys.decay && typeof sys.decay === 'object' && arr(sys.decay.series).length
      ? html`<${DecayChart} decay=${sys.decay} recording=${sys.recording === true} />` : null;

    if (!calc) {
      return html`<div className="space-y-4">
        ${decay}
        <${Card}>${controls}<//>
        <${Notice} testid="energy-unavailable">
          No energy values for <b>${name}</b>${sys.has_truth === false ? ' — this data set has no ground truth, so the true energy cannot be evaluated' : ''}${decay ? ' (its drift needs a conserved energy; the approximate one is shown above)' : ''}.
        <//>
        ${table}
      </div>`;
    }

    const { rows, series, preds, drift } = calc;
    const violations = preds.map((s) => {
      const flags = drift[s.key].map((d) => isNum(d) && d > threshold);
      const n = flags.filter(Boolean).length;
      const firstIdx = flags.indexOf(true);
      const max = drift[s.key].reduce((m, d) => (isNum(d) && d > m ? d : m), 0);
      return { ...s, flags, n, first: firstIdx >= 0 ? rows[firstIdx].t : null, max };
    });
    const anyFlags = rows.map((_, j) => violations.some((v) => v.flags[j]));
    const dt = rows.length > 1 ? (rows[rows.length - 1].t - rows[0].t) / (rows.length - 1) : 0;
    const areas = runs(anyFlags).map(([a, b]) => [rows[a].t - dt / 2, rows[b].t + dt / 2]);
    const tAxis = timeAxis(rows.map((r) => r.t));
    const allDrift = rows.flatMap((r) => preds.map((s) => r['drift:' + s.key]));
    const dAxis = logScale ? null : niceAxis(allDrift.concat([0, threshold]));
    const dDomain = logScale ? logDomain(allDrift.concat([threshold]), 1.5) : dAxis.domain;
    const logRows = logScale
      ? rows.map((r) => {
        const o = { ...r };
        preds.forEach((s) => { const v = o['drift:' + s.key]; if (!(isNum(v) && v > 0)) o['drift:' + s.key] = null; });
        return o;
      })
      : rows;

    const energyChart = html`
      <${Card} testid="energy-chart" title="Energy along the trajectory"
        subtitle="true energy function evaluated on each rollout; shaded: a prediction's drift exceeds the threshold"
        right=${html`<${SeriesLegend} available=${series} />`}>
        <${ResponsiveContainer} width="100%" height=${320}>
          <${LineChart} data=${rows} margin=${{ top: 8, right: 16, bottom: 16, left: 4 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
            <${XAxis} type="number" dataKey="t" domain=${tAxis.domain} ticks=${tAxis.ticks} tick=${AXIS_TICK} tickFormatter=${fmtTick}
              label=${{ value: 't', position: 'insideBottom', offset: -8, fontSize: 12, fill: '#334155' }} />
            <${YAxis} type="number" domain=${calc.eAxis.domain} ticks=${calc.eAxis.ticks} allowDataOverflow width=${56} tick=${AXIS_TICK}
              tickFormatter=${fmtTick}
              label=${{ value: 'E', angle: -90, position: 'insideLeft', fontSize: 12, fill: '#334155' }} />
            ${areas.map(([a, b], i) => html`<${ReferenceArea} key=${'area' + i} x1=${a} x2=${b}
              fill=${VIOLATION} fillOpacity=${0.09} stroke="none" ifOverflow="hidden"
              className="violation-area" />`)}
            <${Tooltip} content=${html`<${ChartTooltip} />`} isAnimationActive=${false} />
            ${series.map((s) => html`<${Line} key=${s.key} dataKey=${s.key} name=${s.label}
              stroke=${s.color} strokeDasharray=${s.dash} strokeWidth=${s.width || 2}
              strokeOpacity=${s.opacity || 1} dot=${false}
              isAnimationActive=${false} />`)}
          <//>
        <//>
      <//>`;

    const driftChart = html`
      <${Card} testid="drift-chart" title="Relative energy drift"
        subtitle=${'|E(t) − E(0)| / |E(0)|; dashed line: threshold; red dots: violations'}
        right=${html`<${SeriesLegend} available=${preds} only=${true} />`}>
        ${preds.length === 0 ? html`<${Notice}>No predicted rollout has energy values.<//>` : html`
        <${ResponsiveContainer} width="100%" height=${320}>
          <${ComposedChart} data=${logRows} margin=${{ top: 8, right: 16, bottom: 16, left: 4 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
            <${XAxis} type="number" dataKey="t" domain=${tAxis.domain} ticks=${tAxis.ticks} tick=${AXIS_TICK} tickFormatter=${fmtTick}
              label=${{ value: 't', position: 'insideBottom', offset: -8, fontSize: 12, fill: '#334155' }} />
            <${YAxis} type="number" scale=${logScale ? 'log' : 'linear'} domain=${dDomain} allowDataOverflow
              ticks=${logScale ? decadeTicks(dDomain) : dAxis.ticks} width=${56} tick=${AXIS_TICK}
              tickFormatter=${logScale ? fmtLogTick : fmtTick} />
            <${Tooltip} content=${html`<${ChartTooltip} digits=${3} />`} isAnimationActive=${false} />
            <${ReferenceLine} y=${threshold} stroke=${VIOLATION} strokeDasharray="5 4" ifOverflow="extendDomain"
              label=${{ value: 'threshold', position: 'insideTopRight', fontSize: 11, fill: VIOLATION }} />
            ${preds.map((s) => html`<${Line} key=${s.key} dataKey=${'drift:' + s.key} name=${s.label}
              stroke=${s.color} strokeDasharray=${s.dash} strokeWidth=${2} isAnimationActive=${false}
              activeDot=${false} dot=${(p) => html`<${ViolationDot} ...${p} key=${p.key || p.index} threshold=${threshold} />`} />`)}
          <//>
        <//>`}
      <//>`;

    const summary = html`
      <div data-testid="violation-summary" className="grid gap-3 sm:grid-cols-2">
        ${violations.map((v) => html`
          <div key=${v.key} data-series=${v.key} data-violations=${v.n}
            className=${'rounded-lg border px-4 py-3 text-sm ' + (v.n ? 'border-red-200 bg-red-50/60' : 'border-emerald-200 bg-emerald-50/60')}>
            <div className="flex items-center gap-2 font-medium text-slate-800">
              <${Swatch} color=${v.color} dash=${v.dash} /> ${v.label}
              <span className="ml-auto font-mono text-xs text-slate-500">max drift ${pct(v.max, 2)}</span>
            </div>
            <div className=${'mt-1 ' + (v.n ? 'text-red-700' : 'text-emerald-700')}>
              ${v.n
                ? html`${v.n} of ${rows.length} steps above ${pct(threshold, 2)} (first at t = ${fmt(v.first, 3)})`
                : html`never above ${pct(threshold, 2)}`}
            </div>
          </div>`)}
        ${!preds.some((s) => s.key === 'standard') && html`<div className="rounded-lg border border-slate-200 px-4 py-3 text-sm text-slate-500">No standard run in the data.</div>`}
      </div>`;

    return html`
      <div className="space-y-4">
        ${decay}
        <${Card}>${controls}<//>
        ${summary}
        <div className="grid gap-4 lg:grid-cols-2">${energyChart}${driftChart}</div>
        ${table}
      </div>`;
  }

  // ------------------------------------------------------------------------------ 3. latent space

  function ScatterPoint({ cx, cy, payload }) {
    if (!isNum(cx) || !isNum(cy)) return html`<g />`;
    return html`<circle cx=${cx} cy=${cy} r=${3.4} fill=${payload.fill} fillOpacity=${0.88}
      stroke="#ffffff" strokeWidth=${0.4} />`;
  }

  function LatentTooltip({ active, payload, colorKey }) {
    if (!active || !payload || !payload.length) return null;
    const p = payload[0].payload;
    return html`<div className="rounded-md border border-slate-200 bg-white/95 px-3 py-2 text-xs shadow">
      <div>PC1 <span className="font-mono">${fmt(p.x, 4)}</span>, PC2 <span className="font-mono">${fmt(p.y, 4)}</span></div>
      ${colorKey && html`<div>${colorKey}: <span className="font-mono">${fmt(p.v, 4)}</span></div>`}
    </div>`;
  }

  /** Percentage on a bar: inside tall bars (clear of the cumulative line), above short ones. */
  function VarianceLabel({ x, y, width, height, value }) {
    if (!isNum(value) || !isNum(x) || !isNum(y)) return null;
    const inside = isNum(height) && height > 28;
    return html`<text x=${x + width / 2} y=${inside ? y + 16 : y - 6} textAnchor="middle" fontSize=${11}
      fill=${inside ? '#ffffff' : '#334155'} className="variance-label">${pct(value)}</text>`;
  }

  function LatentTab({ name, sys }) {
    const latent = sys.latent && typeof sys.latent === 'object' ? sys.latent : null;
    const colorBy = (latent && latent.color_by && typeof latent.color_by === 'object') ? latent.color_by : {};
    const keys = Object.keys(colorBy);
    const [colorKey, setColorKey] = useState(keys[0] || '');

    const view = useMemo(() => {
      if (!latent) return null;
      const values = arr(colorBy[colorKey]);
      const finite = values.filter(isNum);
      const lo = finite.length ? Math.min(...finite) : null;
      const hi = finite.length ? Math.max(...finite) : null;
      const oneD = arr(latent.points).every((p) => arr(p).length < 2);
      const pts = arr(latent.points).map((p, i) => {
        const v = num(values[i]);
        const f = v === null || lo === null ? null : (hi > lo ? (v - lo) / (hi - lo) : 0.5);
        return { x: num(arr(p)[0]), y: oneD ? i : num(arr(p)[1]), v, fill: keys.length ? viridis(f) : '#0072b2' };
      }).filter((p) => p.x !== null && p.y !== null);
      return { pts, lo, hi, oneD,
        x: niceAxis(pts.map((p) => p.x)), y: niceAxis(pts.map((p) => p.y)) };
    }, [latent, colorKey]);

    if (!latent || !view) {
      return html`<${Notice} testid="latent-unavailable">No latent-space summary for <b>${name}</b> in the data file.<//>`;
    }
    const ev = arr(latent.explained_variance).map(num);
    let cum = 0;
    const evRows = ev.map((v, i) => { cum += v || 0; return { pc: 'PC' + (i + 1), ev: v, cum }; });
    const axisName = (i) => `PC${i + 1}` + (isNum(ev[i]) ? ` (${pct(ev[i])})` : '');

    const scatter = html`
      <${Card} testid="latent-scatter" className="lg:col-span-2"
        title="Physics-aware latent space (PCA)"
        subtitle=${`${view.pts.length} points` + (keys.length ? `, coloured by ${colorKey}` : '')}
        right=${keys.length > 0 && html`<${Field} label="Colour by">
          <select data-testid="color-select" className=${SELECT} value=${colorKey}
            onChange=${(e) => setColorKey(e.target.value)}>
            ${keys.map((key) => html`<option key=${key} value=${key}>${key}</option>`)}
          </select><//>`}>
        <${ResponsiveContainer} width="100%" height=${420}>
          <${ScatterChart} margin=${{ top: 8, right: 16, bottom: 18, left: 4 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
            <${XAxis} type="number" dataKey="x" name="PC1" domain=${view.x.domain} ticks=${view.x.ticks} tick=${AXIS_TICK}
              tickFormatter=${fmtTick}
              label=${{ value: axisName(0), position: 'insideBottom', offset: -10, fontSize: 12, fill: '#334155' }} />
            <${YAxis} type="number" dataKey="y" name="PC2" domain=${view.y.domain} ticks=${view.y.ticks} width=${52}
              tick=${AXIS_TICK} tickFormatter=${fmtTick}
              label=${{ value: view.oneD ? 'sample' : axisName(1), angle: -90, position: 'insideLeft', fontSize: 12, fill: '#334155' }} />
            <${Tooltip} content=${html`<${LatentTooltip} colorKey=${colorKey} />`} isAnimationActive=${false} />
            <${Scatter} data=${view.pts} shape=${ScatterPoint} isAnimationActive=${false} />
          <//>
        <//>
        ${keys.length > 0 && html`
          <div data-testid="colorbar" className="mt-2 flex items-center gap-3 pl-14 text-xs text-slate-600">
            <span className="font-mono tabular-nums">${fmt(view.lo, 3)}</span>
            <div className="h-3 w-64 rounded-sm"
              style=${{ background: `linear-gradient(to right, ${VIRIDIS.join(',')})` }}></div>
            <span className="font-mono tabular-nums">${fmt(view.hi, 3)}</span>
            <span>${colorKey}</span>
            ${arr(colorBy[colorKey]).some((v) => !isNum(v)) && html`<span className="inline-flex items-center gap-1">
              <span className="inline-block h-2.5 w-2.5 rounded-full bg-slate-300"></span> no value</span>`}
          </div>`}
      <//>`;

    const variance = html`
      <${Card} testid="variance-chart" title="Explained variance"
        subtitle=${evRows.length ? `bars: per component · line: cumulative (${pct(cum)})` : ''}>
        ${evRows.length === 0 ? html`<${Notice}>No explained variance in the data.<//>` : html`
        <${ResponsiveContainer} width="100%" height=${420}>
          <${ComposedChart} data=${evRows} margin=${{ top: 18, right: 12, bottom: 8, left: 0 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" vertical=${false} />
            <${XAxis} dataKey="pc" tick=${AXIS_TICK} />
            <${YAxis} domain=${[0, 1]} tickFormatter=${(v) => pct(v, 0)} width=${44} tick=${AXIS_TICK} />
            <${Tooltip} formatter=${(v) => pct(v, 2)} isAnimationActive=${false}
              contentStyle=${{ fontSize: 12 }} />
            <${Bar} dataKey="ev" name="explained" fill="#0072b2" radius=${[3, 3, 0, 0]} isAnimationActive=${false}>
              <${LabelList} dataKey="ev" content=${VarianceLabel} />
            <//>
            <${Line} dataKey="cum" name="cumulative" stroke="#1e293b" strokeWidth=${1.8}
              dot=${{ r: 3 }} isAnimationActive=${false} />
          <//>
        <//>`}
      <//>`;

    return html`<div className="grid gap-4 lg:grid-cols-3">${scatter}${variance}</div>`;
  }

  // ------------------------------------------------------------------------------ 4. equations

  const KIND_STYLE = {
    energy: 'bg-sky-100 text-sky-800 ring-sky-200',
    invariant: 'bg-emerald-100 text-emerald-800 ring-emerald-200',
    latent: 'bg-violet-100 text-violet-800 ring-violet-200',
    approximate: 'bg-amber-100 text-amber-800 ring-amber-200',
  };

  function ParetoTooltip({ active, payload }) {
    if (!active || !payload || !payload.length) return null;
    const p = payload[0].payload;
    return html`<div className="max-w-xs rounded-md border border-slate-200 bg-white/95 px-3 py-2 text-xs shadow">
      <div>complexity <b>${p.complexity}</b>, loss <span className="font-mono">${fmt(p.loss, 3)}</span>${p.chosen ? ' · chosen' : ''}</div>
      <div className="mt-1 break-all font-mono text-slate-600">${p.expression || ''}</div>
    </div>`;
  }

  function ParetoChart({ pareto, testid }) {
    const pts = arr(pareto).filter((p) => p && isNum(p.complexity) && isNum(p.loss))
      .map((p) => ({ ...p })).sort((a, b) => a.complexity - b.complexity);
    if (!pts.length) return html`<${Notice}>No Pareto front in the data.<//>`;
    const log = pts.every((p) => p.loss > 0);
    const yLin = log ? null : niceAxis(pts.map((p) => p.loss));
    const yDomain = log ? logDomain(pts.map((p) => p.loss), 4) : yLin.domain;
    const xAxis = niceAxis(pts.map((p) => p.complexity).concat([0, pts[pts.length - 1].complexity + 1]));
    const chosen = pts.find((p) => p.chosen);
    return html`
      <div data-testid=${testid || 'pareto-chart'}>
        <${ResponsiveContainer} width="100%" height=${220}>
          <${LineChart} data=${pts} margin=${{ top: 10, right: 16, bottom: 16, left: 4 }}>
            <${CartesianGrid} stroke=${GRID} strokeDasharray="3 3" />
            <${XAxis} type="number" dataKey="complexity" domain=${xAxis.domain} ticks=${xAxis.ticks}
              allowDecimals=${false} tick=${AXIS_TICK}
              label=${{ value: 'complexity', position: 'insideBottom', offset: -8, fontSize: 11, fill: '#334155' }} />
            <${YAxis} type="number" scale=${log ? 'log' : 'linear'} domain=${yDomain} allowDataOverflow
              ticks=${log ? decadeTicks(yDomain) : yLin.ticks} tickFormatter=${log ? fmtLogTick : fmtTick}
              width=${52} tick=${AXIS_TICK}
              label=${{ value: 'loss', angle: -90, position: 'insideLeft', fontSize: 11, fill: '#334155' }} />
            <${Tooltip} content=${html`<${ParetoTooltip} />`} isAnimationActive=${false} />
            <${Line} dataKey="loss" name="Pareto front" stroke="#64748b" strokeWidth=${1.6}
              dot=${{ r: 3, fill: '#64748b' }} isAnimationActive=${false} />
            ${chosen && html`<${ReferenceDot} x=${chosen.complexity} y=${chosen.loss} r=${7}
              fill="none" stroke=${VIOLATION} strokeWidth=${2.5} className="pareto-chosen"
              label=${{ value: 'chosen', position: 'top', fontSize: 11, fill: VIOLATION, offset: 10 }} />`}
          <//>
        <//>
      </div>`;
  }

  function StatusBadge({ ok, children }) {
    const cls = ok === true ? 'bg-emerald-50 text-emerald-700 ring-emerald-200'
      : ok === false ? 'bg-red-50 text-red-700 ring-red-200' : 'bg-slate-50 text-slate-500 ring-slate-200';
    return html`<span className=${'inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ' + cls}>${children}</span>`;
  }

  /** A law's coefficients with their spread (discover.py: over folds of the training data). */
  function UncertaintyTable({ unc }) {
    const rows = arr(unc && unc.coefficients).filter((r) => r && typeof r === 'object');
    if (!rows.length) return null;
    return html`
      <div data-testid="uncertainty-table" className="rounded-lg border border-slate-200">
        <div className="border-b border-slate-200 bg-slate-50 px-3 py-1.5 text-xs font-medium text-slate-600"
          title=${(unc && unc.method) || ''}>Coefficients ± uncertainty${unc && unc.method ? html`<span className="font-normal text-slate-400"> · ${unc.method}</span>` : ''}</div>
        <table className="w-full text-sm">
          <tbody>${rows.map((r, i) => {
            const rel = isNum(r.value) && isNum(r.err) && r.value !== 0 ? Math.abs(r.err / r.value) : null;
            return html`<tr key=${i} data-testid="coef-row" data-term=${r.term || ''}
              className="border-b border-slate-100 last:border-0">
              <td className="px-3 py-1">${r.latex ? html`<${Tex} tex=${r.latex} inline=${true} testid="coef-term" />`
                : html`<code className="text-xs">${r.term || '—'}</code>`}</td>
              <td className="px-3 py-1 text-right font-mono tabular-nums" data-testid="coef-value">${fmt(r.value, 5)} ± ${fmt(r.err, 2)}</td>
              <td className="px-3 py-1 text-right font-mono text-xs tabular-nums text-slate-500">${rel === null ? '' : '(' + pct(rel, rel < 0.01 ? 2 : 1) + ')'}</td>
            </tr>`;
          })}</tbody>
        </table>
      </div>`;
  }

  /** How an approximately conserved energy decays, and the fitted law of its loss. */
  function DecayBlock({ decay, name }) {
    if (!decay || typeof decay !== 'object') return null;
    const laws = arr(decay.pareto).filter((p) => p && typeof p === 'object');
    const sym = name ? nameTex(name) : 'E';
    return html`
      <div data-testid="decay-block" className="space-y-2 rounded-lg border border-amber-200 bg-amber-50/50 px-3 py-2">
        <div className="text-xs font-medium uppercase tracking-wide text-amber-800">Decay over ${decay.series === 1 ? 'the recording' : isNum(decay.series) ? decay.series + ' series' : 'each series'}</div>
        <div className="text-sm text-slate-700" data-testid="decay-kept">
          keeps <b className="font-mono">${pct(decay.kept, 1)}</b> of its value above its minimum
          <span className="font-mono text-slate-500"> (${fmt(decay.start, 4)} → ${fmt(decay.end, 4)})</span>
        </div>
        ${decay.loss_law_latex ? html`<${Tex} tex=${decay.loss_law_latex.replace(/^\\dot E\b/, '\\dot{' + sym + '}')} testid="loss-law-katex" />`
          : decay.loss_law ? html`<code data-testid="loss-law-text" className="block text-sm">${decay.loss_law}</code>`
            : html`<div className="text-sm text-slate-500">no loss law fitted</div>`}
        ${decay.loss_law && html`<div className="font-mono text-xs text-slate-500">${decay.loss_law}</div>`}
        <div className="text-sm text-slate-700" data-testid="decay-explained">
          the loss law explains <b className="font-mono">${pct(decay.explained, 1)}</b> of the change of ${name ? displayName(name) : 'the energy'}
        </div>
        ${decay.method && html`<div className="text-xs text-slate-500">${decay.method}</div>`}
        ${laws.length > 0 && html`
          <details className="text-xs">
            <summary className="cursor-pointer text-slate-600">Loss-law candidates (${laws.length})</summary>
            <table className="mt-1 w-full">
              <thead><tr className="border-b border-amber-200 text-slate-500">
                <th className="px-2 py-1 text-right">complexity</th><th className="px-2 py-1 text-right">unexplained</th>
                <th className="px-2 py-1 text-left">dE/dt</th></tr></thead>
              <tbody>${laws.map((p, i) => html`
                <tr key=${i} className=${'border-b border-amber-100 ' + (p.chosen ? 'font-semibold' : '')}>
                  <td className="px-2 py-1 text-right font-mono">${isNum(p.complexity) ? p.complexity : '—'}</td>
                  <td className="px-2 py-1 text-right font-mono">${pct(p.loss, 2)}</td>
                  <td className="break-all px-2 py-1 font-mono">${p.expression || '—'}${p.chosen ? ' ← chosen' : ''}</td>
                </tr>`)}</tbody>
            </table>
          </details>`}
      </div>`;
  }

  function EquationCard({ eq, hasTruth }) {
    const kind = eq.kind || 'equation';
    const tex = eq.latex ? (eq.name ? nameTex(eq.name) + ' = ' : '') + eq.latex : null;
    const matched = eq.matched != null
      ? html`<${StatusBadge} ok=${true}>✓ matches ${eq.matched}<//>`
      : hasTruth === false ? html`<${StatusBadge} ok=${null}>no ground truth<//>`
        : html`<${StatusBadge} ok=${false}>✗ no match<//>`;
    const structure = eq.structure_match === true ? 'yes' : eq.structure_match === false ? 'no' : '—';
    const pareto = arr(eq.pareto);
    const approximate = eq.approximate === true || kind === 'approximate';
    const lossLaws = arr(eq.decay && eq.decay.pareto);
    const lossFront = pareto.length === 0 && lossLaws.length > 0;   // an approximate energy's
    // held-out (evaluate.py) where defined, else discover.py's own (a recording's test part
    // may be a single window)
    const ratio = isNum(eq.conservation_ratio) ? eq.conservation_ratio : num(eq.conservation_ratio_discover);
    const ratioTitle = 'conservation ratio: variance along trajectories / variance across them (lower is better)' +
      (!isNum(eq.conservation_ratio) && isNum(eq.conservation_ratio_discover) ? '; discover.py\'s (no held-out value)' : '');
    const muOk = isNum(eq.mu) && isNum(eq.mu_threshold) ? eq.mu <= eq.mu_threshold : null;
    const mu = isNum(eq.mu) ? html`<span data-testid="mu-stat" className=${muOk === false ? 'text-amber-700' : ''}>${fmt(eq.mu, 3)}${isNum(eq.mu_threshold)
      ? html`<span className="text-slate-500"> ${muOk ? '≤' : '>'} ${fmt(eq.mu_threshold, 3)}</span>` : ''}</span>` : '—';
    const stat = (label, value, title) => html`<div title=${title || ''}>
      <dt className="text-xs uppercase tracking-wide text-slate-500">${label}</dt>
      <dd className="font-mono text-sm tabular-nums text-slate-900">${value}</dd></div>`;
    return html`
      <article data-testid="equation-card" data-kind=${kind}
        className="grid gap-4 rounded-xl border border-slate-200 bg-white p-4 shadow-sm lg:grid-cols-5">
        <div className="space-y-3 lg:col-span-3">
          <div className="flex flex-wrap items-center gap-2">
            <span className=${'rounded-md px-2 py-0.5 text-xs font-semibold uppercase tracking-wide ring-1 ring-inset ' + (KIND_STYLE[kind] || 'bg-slate-100 text-slate-700 ring-slate-200')}>${kind}</span>
            <span className="text-sm font-semibold text-slate-800" title=${eq.name || ''}>${displayName(eq.name) || '(unnamed)'}</span>
            ${approximate && html`<span data-testid="approximate-badge"
              title="conserved only approximately (beyond the data's noise floor): listed, never counted as a conservation law"
              className="inline-flex items-center rounded-full bg-amber-100 px-2 py-0.5 text-xs font-semibold text-amber-900 ring-1 ring-inset ring-amber-300">approximate — not counted</span>`}
            ${eq.counted === true && html`<span data-testid="counted-badge" title="counted in the number of independent conserved quantities"
              className="inline-flex items-center rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-700 ring-1 ring-inset ring-slate-200">counted</span>`}
            ${matched}
          </div>
          ${tex ? html`<${Tex} tex=${tex} testid="equation-katex" />`
            : html`<code data-testid="equation-source" className="block rounded bg-slate-50 px-3 py-2 text-sm">${eq.expression || '—'}</code>`}
          ${eq.expression && html`<div className="break-all font-mono text-xs text-slate-500" title="expression">${eq.expression}</div>`}
          ${approximate && eq.reason && html`<p data-testid="approximate-reason" className="text-xs text-amber-800">${eq.reason}</p>`}
          <dl className="grid grid-cols-2 gap-x-4 gap-y-2 sm:grid-cols-6">
            ${stat('R²', fmtR2(eq.r2), 'affine R² against the matched true invariant')}
            ${stat('complexity', isNum(eq.complexity) ? eq.complexity : '—')}
            ${stat('conservation', html`<${Sci} v=${ratio} />`, ratioTitle)}
            ${stat(html`<span><span className="normal-case">μ</span> / allowed</span>`, mu, 'within-trajectory variance over what the measured noise floor gives an exact law; exact when at most the allowed value')}
            ${stat('matched', eq.matched != null ? String(eq.matched) : '—')}
            ${stat('structure', structure, 'same symbolic structure as the true invariant')}
          </dl>
          <${UncertaintyTable} unc=${eq.uncertainty} />
          <${DecayBlock} decay=${eq.decay} name=${eq.name} />
          ${pareto.length > 0 && html`
            <details className="text-sm">
              <summary className="cursor-pointer text-slate-600">Pareto candidates (${pareto.length})</summary>
              <table className="mt-2 w-full text-xs">
                <thead><tr className="border-b border-slate-200 text-slate-500">
                  <th className="px-2 py-1 text-right">complexity</th><th className="px-2 py-1 text-right">loss</th>
                  <th className="px-2 py-1 text-left">expression</th></tr></thead>
                <tbody>${pareto.map((p, i) => html`
                  <tr key=${i} className=${'border-b border-slate-100 ' + (p && p.chosen ? 'bg-amber-50 font-semibold' : '')}>
                    <td className="px-2 py-1 text-right font-mono">${p && isNum(p.complexity) ? p.complexity : '—'}</td>
                    <td className="px-2 py-1 text-right font-mono">${fmt(p && p.loss, 3)}</td>
                    <td className="break-all px-2 py-1 font-mono">${(p && p.expression) || '—'}${p && p.chosen ? ' ← chosen' : ''}</td>
                  </tr>`)}</tbody>
              </table>
            </details>`}
        </div>
        <div className="lg:col-span-2">
          <div className="mb-1 text-xs font-medium text-slate-600">${lossFront
            ? 'Loss-law candidates (unexplained share of the change vs complexity)' : 'Pareto front (loss vs complexity)'}</div>
          ${lossFront ? html`<${ParetoChart} pareto=${lossLaws} testid="loss-law-chart" />` : html`<${ParetoChart} pareto=${pareto} />`}
        </div>
      </article>`;
  }

  function EquationsTab({ name, sys }) {
    const equations = arr(sys.equations).filter((e) => e && typeof e === 'object');
    const nApprox = equations.filter((e) => e.approximate === true || e.kind === 'approximate').length;
    return html`
      <div className="space-y-4">
        <div className="flex flex-wrap items-center gap-3 rounded-xl border border-slate-200 bg-white px-4 py-3 shadow-sm">
          <span className="text-sm text-slate-600">Independent conserved quantities found for <b>${name}</b>:</span>
          <span data-testid="n-conserved" className="rounded-md bg-slate-900 px-2.5 py-0.5 font-mono text-sm font-semibold text-white">
            ${isNum(sys.n_conserved) ? sys.n_conserved : '—'}</span>
          <span className="text-sm text-slate-500">${equations.length} equation${equations.length === 1 ? '' : 's'}</span>
          ${nApprox > 0 && html`<span data-testid="n-approximate" className="text-sm text-amber-800"
            title="conserved only approximately: listed, never counted">${nApprox} approximate, not counted</span>`}
          ${sys.has_truth === false && html`<${StatusBadge} ok=${null}>user data: no ground truth to compare with<//>`}
        </div>
        ${equations.length === 0
          ? html`<${Notice} testid="equations-unavailable">No equations were discovered for <b>${name}</b>.<//>`
          : equations.map((eq, i) => html`<${EquationCard} key=${i} eq=${eq} hasTruth=${sys.has_truth} />`)}
      </div>`;
  }

  // ------------------------------------------------------------------------------ 5. HNN table

  /** The pixel pendulum beyond its rows: baseline / HNN energy MSE by rollout horizon and what
   *  our discovery found on each model's latent trajectories (DATA.md "hnn_pixel"). */
  function PixelExtras({ pixel }) {
    // per loss step, the data span first, then the horizons in frames (JS lists integer-like keys first)
    const byHorizon = (r) => Object.entries(r || {}).filter(([, v]) => isNum(v))
      .sort(([a], [b]) => (a === 'span' ? -1 : b === 'span' ? 1 : Number(a) - Number(b)));
    const losses = { euler: 'with the paper\'s loss (one Euler step per frame; baseline / hnn)',
                     rk4: 'with an RK4 step in the loss (baseline+rk4 / hnn+rk4)' };
    const ratios = Object.entries((pixel && pixel.ratios_by_horizon) || {})
      .map(([step, r]) => [step, byHorizon(r)]).filter(([, r]) => r.length > 0);
    const found = arr(pixel && pixel.latent_discovery);
    if (!ratios.length && !found.length) return null;
    const col = 'px-3 py-2 text-right font-mono tabular-nums';
    return html`
      <div data-testid="pixel-extras" className="mt-5 border-t border-slate-100 pt-4">
        <h3 className="text-sm font-semibold text-slate-800">Pixel pendulum: horizon and latent laws</h3>
        ${ratios.map(([step, r]) => html`<p key=${step} data-testid="pixel-ratios" className="mt-1 text-sm text-slate-600">
          Baseline energy MSE over the HNN's by rollout horizon, ${losses[step] || step}: ${r.map(([h, v], i) => html`<span key=${h}>${i ? ', ' : ''}${h === 'span' ? 'the data span' : h + ' frames'} <b className="font-mono">${fmt(v, 3)}×</b></span>`)}.
</p>`)}
        ${found.length > 0 && html`<div><div className="mt-2 overflow-x-auto"><table data-testid="pixel-latent" className="min-w-full text-sm">
          <thead><tr className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500">
            <th className="px-3 py-2 text-left">model</th><th className="px-3 py-2 text-right">seed</th>
            <th className="px-3 py-2 text-right">exact laws</th><th className="px-3 py-2 text-left">best law on the latent (z0, z1)</th>
            <th className="px-3 py-2 text-right normal-case">μ</th><th className="px-3 py-2 text-right">R² vs true E</th>
          </tr></thead>
          <tbody>${found.map((f, i) => html`<tr key=${i} data-testid="pixel-latent-row" className="border-b border-slate-100">
            <td className="px-3 py-2">${f.model || '—'}</td><td className=${col}>${isNum(f.seed) ? f.seed : '—'}</td>
            <td className=${col}>${isNum(f.n_conserved) ? f.n_conserved : '—'}</td>
            <td className="px-3 py-2">${f.latex ? html`<span><span className="mr-2 text-xs text-slate-500">${f.kind}</span><${Tex} tex=${f.latex} inline=${true} testid="pixel-law" /></span>` : '—'}</td>
            <td className=${col}>${isNum(f.mu) ? html`<${Sci} v=${f.mu} digits=${2} />` : '—'}</td>
            <td className=${col}>${isNum(f.r2_true_energy) ? fmt(f.r2_true_energy, 4) : '—'}</td>
          </tr>`)}</tbody>
        </table></div>
        <p className="mt-2 text-xs text-slate-500">Each model's encodings of every trajectory went through train.py and
          discover.py as a user file of variables z0, z1; the frames' truth only scores the result: R² of the best
          monotone map from the law to the true energy on held-out trajectories. “approximate”: not conserved to the
          data's noise floor, not counted.</p></div>`}
      </div>`;
  }

  function HnnTab({ rows, pixel }) {
    const col = 'px-3 py-2 text-right font-mono tabular-nums';
    return html`
      <${Card} title="Hamiltonian Neural Networks benchmark"
        subtitle="our runs next to Table 1 of Greydanus, Dzamba & Yosinski (2019), “Hamiltonian Neural Networks”">
        <div className="overflow-x-auto">
        <table data-testid="hnn-table" className="min-w-full text-sm">
          <thead><tr className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500">
            <th className="px-3 py-2 text-left">task</th><th className="px-3 py-2 text-left">model</th>
            <th className="px-3 py-2 text-right">train loss</th><th className="px-3 py-2 text-right">test loss</th>
            <th className="px-3 py-2 text-right">energy MSE (ours)</th>
            <th className="px-3 py-2 text-right bg-slate-50">energy MSE (paper)</th>
            <th className="px-3 py-2 text-right">ours / paper</th>
            <th className="px-3 py-2 text-right">reversibility</th><th className="px-3 py-2 text-right">wall time</th>
          </tr></thead>
          <tbody>${rows.map((r, i) => {
            const row = r || {};
            const ratio = isNum(row.energy_mse) && isNum(row.paper_energy_mse) && row.paper_energy_mse > 0
              ? row.energy_mse / row.paper_energy_mse : null;
            return html`<tr key=${i} data-testid="hnn-row" className="border-b border-slate-100">
              <td className="px-3 py-2 font-medium text-slate-800">${row.task || '—'}</td>
              <td className="px-3 py-2">${row.model || '—'}</td>
              <td className=${col}><${Sci} v=${row.train_loss} /></td>
              <td className=${col}><${Sci} v=${row.test_loss} /></td>
              <td className=${col}><${Sci} v=${row.energy_mse} />${isNum(row.energy_mse_std) && html`<span className="text-slate-400"> ± <${Sci} v=${row.energy_mse_std} digits=${2} /></span>`}</td>
              <td className=${col + ' bg-slate-50'} data-testid="hnn-paper"><${Sci} v=${row.paper_energy_mse} /></td>
              <td className=${col}>${ratio === null ? '—' : fmt(ratio, 3) + '×'}</td>
              <td className=${col}><${Sci} v=${row.reversibility} /></td>
              <td className=${col}>${isNum(row.wall_time) ? fmt(row.wall_time, 3) + ' s' : '—'}</td>
            </tr>`;
          })}</tbody>
        </table>
        </div>
        <p className="mt-3 text-xs text-slate-500">Energy MSE, mean ± std over seeds. Simulated tasks:
          true energy along rollouts from held-out starts over t ∈ [0, 20] (the paper's analysis span);
          rows “baseline” and “hnn” score the last weights (the paper's protocol), “+avg” rows a moving
          average of the weights of the same training run. Real pendulum: ω² + k(1 − cos θ) of the
          rollout against the recording over its held-out last 20 % (“-central”: central-difference
          targets; “dissipative-hnn”: an HNN with a learnt dissipation term). Pixel pendulum: true
          energy of latent rollouts from held-out starts, read through a chart fitted on training
          frames; “baseline”, “hnn”: the paper's loss (one Euler step per frame), “+rk4”: an RK4 step in
          the loss.</p>
        <${PixelExtras} pixel=${pixel} />
      <//>`;
  }

  // ------------------------------------------------------------------------------ app shell

  function Header({ data, names }) {
    const systems = data.systems;
    return html`
      <div className="flex flex-wrap items-end justify-between gap-4">
        <div>
          <h1 className="text-xl font-semibold tracking-tight text-slate-900">
            NeurophysicsLab <span className="font-normal text-slate-400">dashboard</span></h1>
          <p className="text-sm text-slate-500">Learned dynamics, energy conservation and discovered conservation laws</p>
        </div>
        <dl className="flex flex-wrap gap-x-8 gap-y-2 text-sm">
          <div><dt className="text-xs uppercase tracking-wide text-slate-500">Run</dt>
            <dd data-testid="header-generated" className="font-mono text-slate-800" title=${data.generated || ''}>${fmtDate(data.generated)}</dd></div>
          <div><dt className="text-xs uppercase tracking-wide text-slate-500">Backend</dt>
            <dd data-testid="header-backend" className="font-mono text-slate-800">${data.backend || '—'}</dd></div>
          <div><dt className="text-xs uppercase tracking-wide text-slate-500">Systems</dt>
            <dd data-testid="header-systems" className="flex flex-wrap gap-1.5">${names.map((n) => {
              const s = systems[n] || {};
              return html`<span key=${n} className="rounded-md bg-slate-100 px-2 py-0.5 text-xs text-slate-700 ring-1 ring-inset ring-slate-200"
                title=${variablesOf(s).join(', ')}>${n}<span className="text-slate-400"> · ${variablesOf(s).length}-D${s.has_truth === false ? ' · no truth' : ''}${s.recording === true ? ' · recording' : ''}</span></span>`;
            })}</dd></div>
        </dl>
      </div>`;
  }

  function initialTab(tabs) {
    const h = (location.hash || '').replace('#', '');
    return tabs.some((t) => t.id === h) ? h : tabs[0].id;
  }

  function App({ data }) {
    const systems = data.systems;
    const names = Object.keys(systems);
    const hnnRows = arr(data.hnn_table);
    const tabs = TABS.filter((t) => t.id !== 'hnn' || hnnRows.length > 0);
    const [tab, setTab] = useState(() => initialTab(tabs));
    const [system, setSystem] = useState(names[0]);
    const [trajIndex, setTrajIndex] = useState(0);
    const [threshold, setThreshold] = useState(DEFAULT_THRESHOLD);
    const sys = systems[system] || {};

    useEffect(() => {
      try { if (location.hash !== '#' + tab) location.replace('#' + tab); } catch (err) { /* ignore */ }
    }, [tab]);
    const selectSystem = (n) => { setSystem(n); setTrajIndex(0); };

    const optionalMissing = arr(boot.failed).filter((n) => n === 'katex' || n === 'tailwind');
    let panel = null;
    if (tab === 'trajectory') {
      panel = html`<${TrajectoryTab} key=${system + ':' + trajIndex} sys=${sys} trajIndex=${trajIndex} setTrajIndex=${setTrajIndex} />`;
    } else if (tab === 'energy') {
      panel = html`<${EnergyTab} key=${system} name=${system} sys=${sys} systems=${systems} trajIndex=${trajIndex}
        setTrajIndex=${setTrajIndex} threshold=${threshold} setThreshold=${setThreshold} onSelectSystem=${selectSystem} />`;
    } else if (tab === 'latent') {
      panel = html`<${LatentTab} key=${system} name=${system} sys=${sys} />`;
    } else if (tab === 'equations') {
      panel = html`<${EquationsTab} key=${system} name=${system} sys=${sys} />`;
    } else if (tab === 'hnn') {
      panel = html`<${HnnTab} rows=${hnnRows} pixel=${data.hnn_pixel} />`;
    }
    const sources = Object.values(boot.sources || {});
    const libText = !sources.length ? '' : sources.every((s) => s === 'local') ? 'local copies (node_modules)'
      : sources.every((s) => s !== 'local') ? 'CDN' : 'local copies and CDN';

    return html`
      <div className="min-h-screen bg-slate-50 text-slate-900" data-testid="app">
        <header className="border-b border-slate-200 bg-white">
          <div className="mx-auto max-w-7xl px-6 pt-4">
            <${Header} data=${data} names=${names} />
            <nav className="-mb-px mt-4 flex flex-wrap gap-1" role="tablist">
              ${tabs.map((t) => html`<button key=${t.id} type="button" role="tab" data-testid=${'tab-' + t.id}
                aria-selected=${tab === t.id} onClick=${() => setTab(t.id)}
                className=${'border-b-2 px-3 py-2 text-sm font-medium transition-colors ' + (tab === t.id
                  ? 'border-sky-700 text-sky-800' : 'border-transparent text-slate-500 hover:border-slate-300 hover:text-slate-700')}>
                ${t.label}</button>`)}
            </nav>
          </div>
        </header>
        <main className="mx-auto max-w-7xl space-y-4 px-6 py-5">
          ${optionalMissing.length > 0 && html`<${Notice} tone="warn" testid="lib-warning">
            Could not load ${optionalMissing.join(' and ')} (neither <code>node_modules</code> nor the CDN).
            ${optionalMissing.includes('katex') ? ' Equations are shown as LaTeX source.' : ''}
            ${optionalMissing.includes('tailwind') ? ' The page is unstyled.' : ''}
            Run <code>npm ci</code> in <code>dashboard/</code> to fix this.<//>`}
          ${tab !== 'hnn' && html`
            <div className="flex flex-wrap items-center gap-3">
              <${Field} label="System">
                <select data-testid="system-select" className=${SELECT} value=${system}
                  onChange=${(e) => selectSystem(e.target.value)}>
                  ${names.map((n) => html`<option key=${n} value=${n}>${n}</option>`)}
                </select><//>
              <span className="text-xs text-slate-500">
                state (${variablesOf(sys).join(', ')})${arr(sys.canonical).length ? ` · canonical (${sys.canonical.join(', ')})` : ''}
                ${sys.has_truth === false ? ' · user data without ground truth' : ''}
                ${sys.recording === true ? html`<span data-testid="recording-note" title=${(sys.recording_info && sys.recording_info.description) || ''}> · a recording, cut into windows</span>` : ''}
              </span>
            </div>`}
          <div data-testid=${'panel-' + tab} role="tabpanel">
            <${ErrorBoundary} key=${tab + ':' + system}>${panel}<//>
          </div>
        </main>
        <footer className="mx-auto max-w-7xl px-6 pb-6 text-xs text-slate-400" data-testid="lib-source">
          Data: dashboard_data.js · generated ${fmtDate(data.generated)}${libText ? ' · libraries: ' + libText : ''}
        </footer>
      </div>`;
  }

  function NoData({ reason }) {
    return html`
      <div className="flex min-h-screen items-start justify-center bg-slate-50 px-6 pt-[12vh]">
        <div data-testid="no-data" className="max-w-xl rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
          <h1 className="text-lg font-semibold text-slate-900">NeurophysicsLab dashboard</h1>
          <p className="mt-2 text-slate-700">${reason}</p>
          <p className="mt-3 text-slate-700">Create it by running the pipeline from the repository root:</p>
          <pre className="mt-2 rounded-md bg-slate-900 px-4 py-3 font-mono text-sm text-slate-100">python evaluate.py      # after training, or
make run                # the whole pipeline</pre>
          <p className="mt-3 text-sm text-slate-500">Then reload this page. evaluate.py writes
            <code className="rounded bg-slate-100 px-1">dashboard/dashboard_data.js</code> (format: DATA.md).</p>
        </div>
      </div>`;
  }

  /** Why the data cannot be shown, or null when it can. */
  function dataProblem(data) {
    if (boot.data === 'invalid') {
      return 'dashboard_data.js is there, but it could not be read (it does not set ' +
        'window.DASHBOARD_DATA: truncated, or written by an interrupted run?).';
    }
    if (boot.data === 'missing' || data === undefined) {
      return 'No results yet: dashboard_data.js was not found next to index.html.';
    }
    if (!data || typeof data !== 'object' || !data.systems || typeof data.systems !== 'object' ||
        Array.isArray(data.systems)) {
      return 'dashboard_data.js is there, but it holds no results (no "systems").';
    }
    if (!Object.keys(data.systems).length) {
      return 'dashboard_data.js is there, but it lists no systems.';
    }
    return null;
  }

  function Root({ data, problem }) {
    useEffect(() => {
      window.__DASHBOARD_MOUNTED = true;
      const bootBox = document.getElementById('boot');
      if (bootBox) bootBox.remove();
    }, []);
    return html`<${ErrorBoundary}>${problem ? html`<${NoData} reason=${problem} />` : html`<${App} data=${data} />`}<//>`;
  }

  const data = window.DASHBOARD_DATA;
  ReactDOM.createRoot(document.getElementById('root'))
    .render(html`<${Root} data=${data} problem=${dataProblem(data)} />`);
})();
