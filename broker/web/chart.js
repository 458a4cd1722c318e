// chart.js - the dashboard's own small SVG line chart: a few series over a
// sliding time window (the last 5 minutes, or 1 to 5 as history grows), a gap where samples are missing (broker
// unreachable), a rounded y scale and its top label. Drawn into an SVG whose
// viewBox is stretched to the box, so CSS alone decides the chart's size.
'use strict';

const PetrelChart = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 300;   // viewBox units; the SVG is stretched (preserveAspectRatio none)
  const H = 100;

  function svg(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // The smallest of 1, 2, 2.5, 5 x 10^k at or above v: grid lines on round values.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (v <= m * p * 1.0000001) return m * p;
    }
    return 10 * p;
  }

  class Chart {
    // el: an empty container. opts.series: how many lines; opts.windowMs:
    // the time span shown; opts.format(v): the y label's text; opts.label:
    // what the chart shows, for screen readers.
    constructor(el, opts) {
      this.el = el;
      this.series = opts.series || 1;
      this.windowMs = opts.windowMs || 300000;
      // A page opened a moment ago shows at least this span, not 5 minutes
      // of nothing with a sliver of data at the right edge.
      this.minWindowMs = Math.min(opts.minWindowMs || 60000, this.windowMs);
      this.format = opts.format || String;
      this.label = opts.label || '';
      this.samples = [];   // {t: ms, v: [numbers] or null for a gap}
      this.build();
    }

    build() {
      this.svg = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
                              role: 'img', 'aria-label': this.label });
      for (const y of [0, H / 2, H]) {
        this.svg.appendChild(svg('line', { x1: 0, x2: W, y1: y, y2: y, class: 'grid',
                                           'vector-effect': 'non-scaling-stroke' }));
      }
      // The first series also gets a faint area under its line.
      this.area = svg('path', { class: 'area s0', d: '' });
      this.svg.appendChild(this.area);
      this.lines = [];
      for (let i = 0; i < this.series; i++) {
        const p = svg('path', { class: `line s${i}`, d: '', 'vector-effect': 'non-scaling-stroke' });
        this.lines.push(p);
        this.svg.appendChild(p);
      }
      // Labels are HTML over the SVG, so that stretching cannot distort them.
      this.maxLabel = document.createElement('span');
      this.maxLabel.className = 'axis axis-max';
      this.spanLabel = document.createElement('span');
      this.spanLabel.className = 'axis axis-left';
      this.spanLabel.textContent = `${Math.round(this.minWindowMs / 60000)} min`;
      const left = this.spanLabel;
      const right = document.createElement('span');
      right.className = 'axis axis-right';
      right.textContent = 'now';
      this.el.replaceChildren(this.svg, this.maxLabel, left, right);
    }

    // Adds a sample at broker time t (ms); values null marks a gap.
    push(t, values) {
      const last = this.samples[this.samples.length - 1];
      if (values === null && (!last || last.v === null)) return;   // one gap is enough
      this.samples.push({ t, v: values });
      const oldest = t - this.windowMs;
      // Keep one sample left of the window so the line enters from the edge.
      while (this.samples.length > 2 && this.samples[1].t < oldest) this.samples.shift();
    }

    clear() {
      this.samples = [];
    }

    // Redraws with `now` (ms) at the right edge.
    draw(now) {
      const first = this.samples.length ? this.samples[0].t : now;
      const span = Math.min(this.windowMs, Math.max(this.minWindowMs, now - first));
      const t0 = now - span;
      let max = 0;
      for (const s of this.samples) {
        if (s.v && s.t >= t0) for (const v of s.v) if (v > max) max = v;
      }
      max = niceMax(max);
      const x = (t) => Math.max(0, ((t - t0) / span) * W).toFixed(2);
      const y = (v) => (H - (Math.min(v, max) / max) * H).toFixed(2);
      for (let i = 0; i < this.series; i++) {
        let d = '';
        let pen = 'M';
        for (const s of this.samples) {
          if (s.v === null) { pen = 'M'; continue; }
          d += `${pen}${x(s.t)} ${y(s.v[i])} `;
          pen = 'L';
        }
        this.lines[i].setAttribute('d', d.trim());
      }
      this.area.setAttribute('d', this.areaPath(x, y));
      this.maxLabel.textContent = this.format(max);
      this.spanLabel.textContent = `${Math.round(span / 60000)} min`;
      this.el.dataset.max = String(max);
    }

    // The closed outline under series 0, one piece per run without gaps.
    areaPath(x, y) {
      let d = '';
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          d += `M${x(run[0].t)} ${H} ` + run.map((s) => `L${x(s.t)} ${y(s.v[0])}`).join(' ') +
               ` L${x(run[run.length - 1].t)} ${H} Z `;
        }
        run = [];
      };
      for (const s of this.samples) {
        if (s.v === null) flush(); else run.push(s);
      }
      flush();
      return d.trim();
    }
  }

  return { Chart, niceMax };
})();
