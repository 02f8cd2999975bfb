// The Skeldir dashboard: one module, no dependencies. Every request goes to this origin with the
// key as a bearer token; the key lives in sessionStorage (this tab only), never in a URL.

const KEY_STORAGE = "skeldir.apiKey";
const REFRESH_MS = 10_000;
const MODELS = ["first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
  "position_based", "markov", "shapley"];
const MODEL_LABELS = { last_non_direct: "last non-direct", markov: "Markov", shapley: "Shapley" };
const DEFAULT_MODEL = "linear";
const DEFAULT_DAYS = 30;
// The fixed channel order of the server: a known channel keeps its colour in every view.
const CHANNELS = ["direct", "organic_search", "paid_search", "organic_social", "paid_social",
  "email", "referral", "affiliate", "display", "unknown"];
const PALETTE_SIZE = 12;
// ISO 4217 minor-unit digits where they are not 2.
const EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};
const SVG_NS = "http://www.w3.org/2000/svg";

const state = { key: null, scope: null, tenantId: null, offeredKey: null, model: DEFAULT_MODEL, from: null, to: null,
  clockOffsetMs: 0, refreshing: false, refreshAgain: false, timer: null,
  // Column sorts by table id; the reporting currency; whether the server has the performance
  // report (null: not asked yet); the drill-down's trail of { level, id, label }.
  sorts: {}, reportingCurrency: null, performance: null, drill: [] };

// ---- formatting ----

// Exact: minor units are integers, so the decimal point is placed in the digits, not computed.
function formatMinor(minor, currency) {
  const exponent = EXPONENTS[currency] ?? 2;
  const digits = Math.abs(minor).toString().padStart(exponent + 1, "0");
  const whole = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fraction = exponent ? "." + digits.slice(digits.length - exponent) : "";
  return (minor < 0 ? "−" : "") + whole + fraction;
}

function formatMoney(minor, currency) {
  return `${currency} ${formatMinor(minor, currency)}`;
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

function modelLabel(model) {
  return MODEL_LABELS[model] ?? model.replaceAll("_", " ");
}

function plural(n, noun) {
  return `${formatCount(n)} ${noun}${n === 1 ? "" : "s"}`;
}

// Axis labels drop the minor digits when every tick is a whole unit.
function formatTick(minor, currency, step) {
  const text = formatMinor(minor, currency);
  return step % 10 ** (EXPONENTS[currency] ?? 2) === 0 ? text.split(".")[0] : text;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() + state.clockOffsetMs - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(day, n) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + n);
  return isoDay(date);
}

function daysBetween(from, to) {
  const days = [];
  for (let day = from; day <= to && days.length < 400; day = addDays(day, 1)) days.push(day);
  return days;
}

function colourClass(channel) {
  const rank = CHANNELS.indexOf(channel);
  if (rank >= 0) return `c${rank}`;
  let hash = 0;
  for (const ch of channel) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `c${CHANNELS.length + (hash % (PALETTE_SIZE - CHANNELS.length))}`;
}

function channelOrder(a, b) {
  const ra = CHANNELS.indexOf(a), rb = CHANNELS.indexOf(b);
  return (ra < 0 ? CHANNELS.length : ra) - (rb < 0 ? CHANNELS.length : rb) || a.localeCompare(b);
}

// ---- DOM ----

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs);
  node.append(...children);
  return node;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
}

function show(node, text) {
  node.textContent = text ?? "";
  node.hidden = !text;
}

// ---- API ----

class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, { method = "GET", key = state.key } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, "the API could not be reached");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body?.detail || body?.title);
  return body;
}

function query(path, params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(name, value);
  }
  return `${path}?${search}`;
}

async function allPages(path, params) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(query(path, { ...params, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function loginMessage(error) {
  if (error.status === 401) {
    return "That key was not accepted (401). Check that it was copied whole and is not revoked.";
  }
  if (error.status === 403) return "That key cannot read reports (403). Use a read or admin key.";
  return `Could not log in: ${error.message}.`;
}

// ---- indicators ----

function renderStatus(status) {
  state.clockOffsetMs = Date.parse(status.now) - Date.now();
  const { ingest, freshness } = status;
  $("events-last-hour").textContent = formatCount(ingest.events_last_hour);
  $("events-last-24h").textContent = formatCount(ingest.events_last_24h);
  setTime($("last-event"), ingest.last_event_at);
  const dead = $("dead-count");
  dead.textContent = formatCount(ingest.dead_events_unreplayed);
  dead.classList.toggle("warn", ingest.dead_events_unreplayed > 0);
  $("pending-orders").textContent = formatCount(freshness.pending_orders);
  show($("pending-oldest"), freshness.pending_orders
    ? `oldest waiting ${duration(freshness.oldest_pending_age_seconds)}` : "");
  setTime($("last-attribution"), freshness.last_attributed_at);
  const fresh = $("reports-fresh");
  fresh.textContent = freshness.reports_fresh ? "Fresh" : "Updating";
  fresh.dataset.fresh = String(freshness.reports_fresh);
  fresh.classList.toggle("ok", freshness.reports_fresh);
  fresh.classList.toggle("warn", !freshness.reports_fresh);
  renderConnectors(status.connectors || []);
}

// A connector whose grant was revoked or expired stays stale until its owner connects it again.
function renderConnectors(connectors) {
  const node = $("connectors-state");
  const reauth = connectors.filter((c) => c.status === "needs_reauth");
  const failing = connectors.filter((c) => c.status === "error");
  node.textContent = !connectors.length ? "None"
    : reauth.length ? `${reauth.length} need${reauth.length === 1 ? "s" : ""} reauthorisation`
    : failing.length ? `${failing.length} failing` : `${connectors.length} OK`;
  node.classList.toggle("warn", reauth.length + failing.length > 0);
  node.classList.toggle("ok", connectors.length > 0 && !reauth.length && !failing.length);
  show($("connectors-detail"), [...reauth, ...failing]
    .map((c) => `${c.platform} ${c.account_id}: ${c.status}`).join("; "));
}

function setTime(node, iso) {
  node.textContent = ago(iso);
  node.title = iso || "";
}

// ---- chart ----

const CHART = { width: 960, height: 240, left: 88, right: 12, top: 12, bottom: 28 };

function niceStep(span) {
  const raw = Math.max(span, 1) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
}

function renderChart(items) {
  const container = $("chart");
  const currencies = [...new Set(items.map((i) => i.currency))].sort();
  if (!currencies.length) {
    container.replaceChildren(el("p", { class: "empty" }, "No attributed revenue in these days."));
    return;
  }
  container.replaceChildren(...currencies.map((currency) =>
    currencyChart(currency, items.filter((i) => i.currency === currency))));
}

function currencyChart(currency, items) {
  const days = daysBetween(state.from, state.to);
  const channels = [...new Set(items.map((i) => i.channel))].sort(channelOrder);
  const byDay = new Map(days.map((d) => [d, []]));
  for (const item of items) byDay.get(item.day)?.push(item);

  let top = 0, bottom = 0;
  for (const dayItems of byDay.values()) {
    top = Math.max(top, dayItems.reduce((s, i) => s + Math.max(i.net_cents, 0), 0));
    bottom = Math.min(bottom, dayItems.reduce((s, i) => s + Math.min(i.net_cents, 0), 0));
  }
  const step = niceStep(top - bottom);
  const yMax = Math.ceil(top / step) * step || step;
  const yMin = Math.floor(bottom / step) * step;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const y = (v) => CHART.top + ((yMax - v) / (yMax - yMin)) * plotHeight;
  const slot = plotWidth / days.length;
  const barWidth = Math.max(1, slot * 0.72);

  const chart = svg("svg", { viewBox: `0 0 ${CHART.width} ${CHART.height}`, class: "chart",
    role: "img", "aria-label": `Net revenue per day and channel in ${currency}` });
  for (let v = yMin; v <= yMax; v += step) {
    chart.append(
      svg("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: y(v), y2: y(v),
        class: v === 0 ? "axis" : "grid" }),
      svg("text", { x: CHART.left - 8, y: y(v) + 4, class: "tick", "text-anchor": "end" },
        formatTick(v, currency, step)));
  }
  const labelEvery = Math.ceil(days.length / 10);
  days.forEach((day, index) => {
    const x = CHART.left + index * slot + (slot - barWidth) / 2;
    let up = 0, down = 0;
    for (const item of byDay.get(day).sort((a, b) => channelOrder(a.channel, b.channel))) {
      const from = item.net_cents >= 0 ? up : down;
      const to = from + item.net_cents;
      if (item.net_cents >= 0) up = to; else down = to;
      chart.append(svg("rect", {
        x, width: barWidth, y: Math.min(y(from), y(to)), height: Math.abs(y(from) - y(to)),
        class: `bar ${colourClass(item.channel)}`, "data-day": day, "data-channel": item.channel,
        "data-net-cents": item.net_cents,
      }, svg("title", {}, `${day} · ${item.channel}: ${formatMoney(item.net_cents, currency)}`)));
    }
    if (index % labelEvery === 0) {
      chart.append(svg("text", { x: x + barWidth / 2, y: CHART.height - 8, class: "tick",
        "text-anchor": "middle" }, day.slice(5)));
    }
  });

  return el("figure", { class: "currency-chart", "data-currency": currency },
    el("figcaption", {}, currency), chart, channelTotals(currency, channels, items));
}

// The legend doubles as the totals: summed here from the daily rows, exactly (integers).
function channelTotals(currency, channels, items) {
  const totals = new Map(channels.map((c) => [c, { net: 0, revenue: 0, refunds: 0, orders: 0 }]));
  for (const item of items) {
    const total = totals.get(item.channel);
    total.net += item.net_cents;
    total.revenue += item.revenue_cents;
    total.refunds += item.refunds_cents;
    total.orders += item.orders;
  }
  const list = el("ul", { class: "totals" });
  let sum = 0;
  for (const channel of channels) {
    const total = totals.get(channel);
    sum += total.net;
    list.append(el("li", {
      class: "total", "data-currency": currency, "data-channel": channel,
      "data-net-cents": total.net, "data-revenue-cents": total.revenue,
      "data-refunds-cents": total.refunds, "data-orders": total.orders,
    }, el("span", { class: `swatch ${colourClass(channel)}` }),
    el("span", { class: "channel" }, channel),
    el("span", { class: "amount" }, formatMoney(total.net, currency)),
    el("span", { class: "muted" }, plural(total.orders, "order"))));
  }
  list.append(el("li", { class: "total sum", "data-currency": currency, "data-net-cents": sum },
    el("span", { class: "channel" }, "All channels"),
    el("span", { class: "amount" }, formatMoney(sum, currency))));
  return list;
}

// ---- sortable tables ----

// A table whose column headings sort it (a second click reverses). `columns`: { key, label,
// num, value(row) for sorting (null sorts last), cell(row) for display, data(row) for the
// cell's data attributes }. The sort of each table (by id) outlives a refresh.
function sortableTable(container, id, columns, rows, { sum = null, rowAttrs = () => ({}),
  onRow = null, initial } = {}) {
  const render = () => {
    const sort = state.sorts[id] ?? initial;
    const column = columns.find((c) => c.key === sort.key) ?? columns[0];
    const direction = sort.desc ? -1 : 1;
    const sorted = [...rows].sort((a, b) => {
      const x = column.value(a), y = column.value(b);
      if (x === null || y === null) return (x === null) - (y === null);
      return (typeof x === "string" ? x.localeCompare(y) : x - y) * direction;
    });
    const header = el("tr", {}, ...columns.map((c) => {
      const th = el("th", { scope: "col", class: c.num ? "num" : null, "data-key": c.key,
        "aria-sort": c.key === column.key ? (sort.desc ? "descending" : "ascending") : "none",
        tabindex: 0 }, c.label);
      const resort = () => {
        state.sorts[id] = { key: c.key, desc: c.key === column.key ? !sort.desc : Boolean(c.num) };
        render();
      };
      th.addEventListener("click", resort);
      th.addEventListener("keydown", (event) => { if (event.key === "Enter") resort(); });
      return th;
    }));
    const cells = (row) => columns.map((c, index) => el(index ? "td" : "th",
      { class: c.num ? "num" : null, scope: index ? null : "row", "data-key": c.key,
        ...(c.data ? c.data(row) : {}) }, ...[c.cell(row)].flat()));
    const body = sorted.map((row) => {
      const tr = el("tr", { ...rowAttrs(row), class: onRow?.(row, true) ? "drillable" : null },
        ...cells(row));
      if (onRow?.(row, true)) tr.addEventListener("click", () => onRow(row, false));
      return tr;
    });
    if (sum) body.push(el("tr", { class: "sum" }, ...cells(sum)));
    container.replaceChildren(el("div", { class: "scroll" }, el("table",
      { class: "table sortable", id, "data-sort": column.key },
      el("thead", {}, header), el("tbody", {}, ...body))));
  };
  render();
}

function compareRatio(numerator, denominator) {
  return denominator ? numerator / denominator : null;
}

function formatRatio(ratio) {
  return ratio === null ? "–" : `${ratio.toFixed(2)}×`;
}

// ---- spend and return, in the reporting currency ----

// The channel the default channel rules give each ad platform's clicks: spend is loaded per
// platform, revenue is credited per channel.
const PLATFORM_CHANNELS = { meta: "paid_social", tiktok: "paid_social",
  google_ads: "paid_search", microsoft_ads: "paid_search" };

// round(a * b / c), halves away from zero, in BigInt: money never passes through a float.
function mulDivRound(a, b, c) {
  let n = BigInt(a) * BigInt(b), d = BigInt(c);
  if (d < 0n) { n = -n; d = -d; }
  const half = (magnitude) => (2n * magnitude + d) / (2n * d);
  return Number(n >= 0n ? half(n) : -half(-n));
}

// Channel figures come per currency. A (day, currency) converts at the rate its orders were
// converted at: the daily revenue report's gross in the reporting currency over its gross.
function converter(dailyRevenue, fallbackCurrency) {
  const rates = new Map();
  let reporting = fallbackCurrency;
  for (const row of dailyRevenue) {
    reporting = row.reporting_currency;
    if (row.gross_reporting_cents !== null && row.gross_cents !== 0) {
      rates.set(`${row.day}|${row.currency}`, [row.gross_cents, row.gross_reporting_cents]);
    }
  }
  return {
    reporting,
    convert(day, currency, cents) {
      if (currency === reporting) return cents;
      const rate = rates.get(`${day}|${currency}`);
      return rate ? mulDivRound(cents, rate[1], rate[0]) : null;
    },
  };
}

// Per channel and per day: spend and net revenue in the reporting currency, and what could not
// be converted (per currency), from the spend report, the channel report and daily revenue.
function spendAndReturn(spendItems, channelItems, dailyRevenue) {
  const { reporting, convert } = converter(dailyRevenue, spendItems[0]?.reporting_currency ?? null);
  const channels = new Map(), days = new Map();
  const unconverted = { spend: new Map(), revenue: new Map() };
  const channel = (name) => channels.get(name)
    ?? channels.set(name, { channel: name, spend: 0, revenue: 0, partial: false }).get(name);
  const day = (name) => days.get(name)
    ?? days.set(name, { day: name, spend: 0, revenue: 0, paidRevenue: 0 }).get(name);
  const keep = (what, currency, cents) => what.set(currency, (what.get(currency) ?? 0) + cents);
  for (const item of spendItems) {
    const row = channel(PLATFORM_CHANNELS[item.platform] ?? item.platform);
    if (item.spend_reporting_cents === null) {
      keep(unconverted.spend, item.currency, item.spend_cents);
      row.partial = true;
    } else {
      row.spend += item.spend_reporting_cents;
      day(item.day).spend += item.spend_reporting_cents;
    }
  }
  const paid = new Set([...channels.keys()]);
  for (const item of channelItems) {
    const row = channel(item.channel);
    const cents = convert(item.day, item.currency, item.net_cents);
    if (cents === null) {
      keep(unconverted.revenue, item.currency, item.net_cents);
      row.partial = true;
      continue;
    }
    row.revenue += cents;
    day(item.day).revenue += cents;
    if (paid.has(item.channel)) day(item.day).paidRevenue += cents;
  }
  return { reporting, channels: [...channels.values()], days, unconverted };
}

function renderSpend([spendItems, channelItems, dailyRevenue]) {
  const view = spendAndReturn(spendItems, channelItems, dailyRevenue);
  state.reportingCurrency = view.reporting;
  $("spend-currency").textContent = view.reporting ? `· ${view.reporting}` : "";
  const container = $("spend-table");
  if (!view.reporting || !view.channels.length) {
    container.replaceChildren(el("p", { class: "empty" }, "No spend or revenue in these days."));
    $("roas-chart").replaceChildren();
    show($("spend-unconverted"), "");
    return;
  }
  const money = (cents) => formatMinor(cents, view.reporting);
  const total = { channel: "All channels", spend: 0, revenue: 0 };
  for (const row of view.channels) {
    total.spend += row.spend;
    total.revenue += row.revenue;
  }
  sortableTable(container, "spend-channels", [
    { key: "channel", label: "Channel", value: (r) => r.channel,
      cell: (r) => (r === total ? r.channel
        : [el("span", { class: `swatch ${colourClass(r.channel)}` }),
          r.partial ? `${r.channel} *` : r.channel]) },
    { key: "spend", label: "Spend", num: true, value: (r) => r.spend,
      cell: (r) => money(r.spend), data: (r) => ({ "data-cents": r.spend }) },
    { key: "revenue", label: "Net revenue", num: true, value: (r) => r.revenue,
      cell: (r) => money(r.revenue), data: (r) => ({ "data-cents": r.revenue }) },
    { key: "roas", label: "ROAS", num: true, value: (r) => compareRatio(r.revenue, r.spend),
      cell: (r) => formatRatio(compareRatio(r.revenue, r.spend)),
      data: (r) => ({ "data-roas": compareRatio(r.revenue, r.spend) ?? "" }) },
  ], view.channels, { sum: total, initial: { key: "spend", desc: true },
    rowAttrs: (r) => ({ "data-channel": r.channel }) });
  const listed = (amounts, what) => [...amounts]
    .map(([currency, cents]) => `${formatMoney(cents, currency)} of ${what}`);
  const missing = [...listed(view.unconverted.spend, "spend"),
    ...listed(view.unconverted.revenue, "revenue")];
  show($("spend-unconverted"), missing.length
    ? `* Not converted, no exchange rate for their days (skeldir fx load): ${missing.join(", ")}.`
    : "");
  renderRoasChart(view);
}

// Spend per day as bars; blended ROAS (every channel's net revenue over all spend) and paid
// ROAS (the revenue of channels with spend over that spend) as lines, on days with spend.
function renderRoasChart(view) {
  const days = daysBetween(state.from, state.to).map((d) => view.days.get(d)
    ?? { day: d, spend: 0, revenue: 0, paidRevenue: 0 });
  const spent = days.filter((d) => d.spend > 0);
  const container = $("roas-chart");
  if (!spent.length) {
    container.replaceChildren(el("p", { class: "empty" }, "No spend in these days."));
    return;
  }
  const maxRoas = Math.max(1,
    ...spent.flatMap((d) => [d.revenue / d.spend, d.paidRevenue / d.spend]));
  const roasStep = niceStep(maxRoas * 100) / 100;
  const roasTop = Math.ceil(maxRoas / roasStep) * roasStep;
  const maxSpend = Math.max(...spent.map((d) => d.spend));
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const y = (ratio) => CHART.top + (1 - ratio / roasTop) * plotHeight;
  const slot = plotWidth / days.length;
  const chart = svg("svg", { viewBox: `0 0 ${CHART.width} ${CHART.height}`, class: "chart",
    role: "img", "aria-label": `ROAS per day, spend in ${view.reporting}` });
  for (let v = 0; v <= roasTop + 1e-9; v += roasStep) {
    chart.append(svg("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: y(v), y2: y(v),
      class: v === 0 ? "axis" : "grid" }),
    svg("text", { x: CHART.left - 8, y: y(v) + 4, class: "tick", "text-anchor": "end" },
      `${v.toFixed(roasStep < 1 ? 1 : 0)}×`));
  }
  const lines = { blended: [], paid: [] };
  const labelEvery = Math.ceil(days.length / 10);
  days.forEach((d, index) => {
    const x = CHART.left + index * slot + slot / 2;
    if (d.spend > 0) {
      const height = (d.spend / maxSpend) * plotHeight * 0.5;
      chart.append(svg("rect", { x: x - slot * 0.36, width: slot * 0.72,
        y: CHART.top + plotHeight - height, height, class: "spend-bar" }, svg("title", {},
        `${d.day}: spend ${formatMoney(d.spend, view.reporting)}, net revenue `
        + `${formatMoney(d.revenue, view.reporting)}`)));
      for (const [kind, revenue] of [["blended", d.revenue], ["paid", d.paidRevenue]]) {
        lines[kind].push(`${x},${y(revenue / d.spend)}`);
        chart.append(svg("circle", { cx: x, cy: y(revenue / d.spend), r: 2.5,
          class: `roas-point ${kind}`, "data-day": d.day, "data-kind": kind,
          "data-spend-cents": d.spend, "data-revenue-cents": revenue },
        svg("title", {}, `${d.day} · ${kind} ROAS ${formatRatio(revenue / d.spend)}`)));
      }
    }
    if (index % labelEvery === 0) {
      chart.append(svg("text", { x, y: CHART.height - 8, class: "tick", "text-anchor": "middle" },
        d.day.slice(5)));
    }
  });
  for (const [kind, points] of Object.entries(lines)) {
    chart.prepend(svg("polyline", { points: points.join(" "), class: `roas-line ${kind}` }));
  }
  const legend = el("p", { class: "muted" },
    el("span", { class: "legend-line blended" }), "blended ROAS (all net revenue ÷ spend)",
    el("span", { class: "legend-line paid" }), "paid ROAS (revenue of channels with spend ÷ spend)",
    el("span", { class: "legend-line spend" }), `spend (${view.reporting}, scaled)`);
  container.replaceChildren(chart, legend);
}

// ---- campaign drill-down: GET /api/reports/performance, where the server has it ----

const PERFORMANCE_PATH = "/api/reports/performance";
const DRILL_LEVELS = ["channel", "campaign", "adset", "ad"];
const DRILL_LABELS = { channel: "channels", campaign: "campaigns", adset: "ad sets", ad: "ads" };
const DRILL_HEADINGS = { channel: "Channel", campaign: "Campaign", adset: "Ad set", ad: "Ad" };
// What identifies a row at each level, and what names it.
const DRILL_KEYS = { channel: ["channel", "channel"], campaign: ["campaign_id", "campaign_name"],
  adset: ["adset_id", "adset_name"], ad: ["ad_id", "ad_name"] };

// Asked once per page: the API's own description says whether the route exists, so a server
// without it costs no failed request (and no console error).
async function performanceAvailable() {
  if (state.performance === null) {
    try {
      const response = await fetch("/openapi.json", { cache: "no-store", credentials: "omit" });
      const spec = response.ok ? await response.json() : null;
      state.performance = Boolean(spec?.paths?.[PERFORMANCE_PATH]);
    } catch {
      state.performance = false;
    }
  }
  return state.performance;
}

async function loadDrill(range) {
  if (!(await performanceAvailable())) return null;
  const level = DRILL_LEVELS[state.drill.length];
  try {
    return await allPages(PERFORMANCE_PATH, { model: state.model, ...range, level, limit: 1000 });
  } catch (error) {
    if (error.status === 404) {
      state.performance = false;
      return null;
    }
    throw error;
  }
}

// The rows inside every step of the trail (a campaign of the chosen channel, and so on).
function drillRows(items) {
  return items.filter((row) => state.drill
    .every((step) => row[DRILL_KEYS[step.level][0]] === step.id));
}

function renderDrill(items) {
  const section = $("drill");
  section.hidden = items === null;
  if (items === null) return;
  const level = DRILL_LEVELS[state.drill.length];
  const [idField, nameField] = DRILL_KEYS[level];
  const currency = state.reportingCurrency ?? "USD";
  const money = (cents) => (cents === null || cents === undefined ? "–"
    : formatMinor(cents, currency));
  const number = (value) => (value === null || value === undefined ? null : Number(value));
  $("drill-level").textContent = `· ${DRILL_LABELS[level]}`;
  const trail = [
    el("button", { type: "button", class: "secondary", "data-depth": 0 }, "All channels"),
    ...state.drill.map((step, depth) => el("button", { type: "button", class: "secondary",
      "data-depth": depth + 1 }, step.label))];
  trail.forEach((button) => button.addEventListener("click", () => {
    state.drill = state.drill.slice(0, Number(button.dataset.depth));
    refreshDrill();
  }));
  $("drill-trail").replaceChildren(...trail);
  const rows = drillRows(items);
  const name = (row) => row[nameField] || row[idField] || "(none)";
  const moneyColumn = (key, label) => ({ key, label, num: true, value: (r) => number(r[key]),
    cell: (r) => money(r[key]), data: (r) => ({ "data-cents": r[key] ?? "" }) });
  const countColumn = (key, label) => ({ key, label, num: true, value: (r) => number(r[key]),
    cell: (r) => (r[key] === null || r[key] === undefined ? "–" : String(r[key])),
    data: (r) => ({ "data-value": r[key] ?? "" }) });
  if (!rows.length) {
    $("drill-table").replaceChildren(el("p", { class: "empty" }, "Nothing in these days."));
    return;
  }
  sortableTable($("drill-table"), "drill-rows", [
    { key: "name", label: DRILL_HEADINGS[level], value: name, cell: name },
    moneyColumn("spend_cents", "Spend"),
    moneyColumn("revenue_cents", "Revenue"),
    { key: "roas", label: "ROAS", num: true, value: (r) => number(r.roas),
      cell: (r) => formatRatio(number(r.roas)), data: (r) => ({ "data-roas": r.roas ?? "" }) },
    countColumn("orders", "Orders"),
    moneyColumn("cpa_cents", "CPA"),
    countColumn("new_customers", "New customers"),
    moneyColumn("new_customer_revenue_cents", "New customer revenue"),
    moneyColumn("cac_cents", "CAC"),
  ], rows, {
    initial: { key: "spend_cents", desc: true },
    rowAttrs: (r) => ({ "data-level": level, "data-id": r[idField] ?? "" }),
    onRow: (row, asking) => {
      const deeper = state.drill.length < DRILL_LEVELS.length - 1 && row[idField];
      if (asking || !deeper) return Boolean(deeper);
      state.drill = [...state.drill, { level, id: row[idField], label: name(row) }];
      refreshDrill();
      return true;
    },
  });
}

async function refreshDrill() {
  try {
    renderDrill(await loadDrill({ from: state.from, to: state.to }));
  } catch (error) {
    show($("error"), `drill-down: ${error.message}`);
  }
}

// ---- model comparison ----

function renderModels(report) {
  const container = $("models");
  // Every model gets a column; one without figures here (a data-driven model not yet learned)
  // shows a dash rather than a misleading zero.
  const models = [...MODELS, ...report.models.filter((m) => !MODELS.includes(m))];
  const reported = new Set(report.models);
  const currencies = [...new Set(report.items.map((i) => i.currency))].sort();
  if (!currencies.length) {
    container.replaceChildren(el("p", { class: "empty" }, "No attributed revenue in these days."));
    return;
  }
  container.replaceChildren(...currencies.map((currency) => {
    const rows = report.items.filter((i) => i.currency === currency)
      .sort((a, b) => channelOrder(a.channel, b.channel));
    const header = el("tr", {}, el("th", {}, `Channel (${currency})`),
      ...models.map((m) => el("th", { class: cellClass(m), "data-model": m, scope: "col",
        title: reported.has(m) ? null : "no figures in these days" }, modelLabel(m))));
    const body = rows.map((row) => el("tr", { "data-channel": row.channel },
      el("th", { scope: "row" }, el("span", { class: `swatch ${colourClass(row.channel)}` }),
        row.channel),
      ...models.map((m) => moneyCell(m, reported.has(m) ? row.net_cents[m] ?? 0 : null,
        currency))));
    const sums = el("tr", { class: "sum" }, el("th", { scope: "row" }, "All channels"),
      ...models.map((m) => moneyCell(m, reported.has(m)
        ? rows.reduce((s, r) => s + (r.net_cents[m] ?? 0), 0) : null, currency)));
    return el("div", { class: "scroll" }, el("table", { class: "table models",
      "data-currency": currency }, el("thead", {}, header), el("tbody", {}, ...body, sums)));
  }));
}

function cellClass(model) {
  return model === state.model ? "num selected" : "num";
}

function moneyCell(model, cents, currency) {
  return el("td", { class: cellClass(model), "data-model": model, "data-net-cents": cents },
    cents === null ? "–" : formatMinor(cents, currency));
}

// ---- learned weights ----

const DATA_DRIVEN_MODELS = ["markov", "shapley"];

// Asked only for the models with figures in the comparison: those have learned weights, so the
// page never asks for weights that do not exist yet.
async function learnedWeights(models) {
  return Promise.all(DATA_DRIVEN_MODELS.filter((m) => models.includes(m))
    .map((model) => api(query("/api/attribution/weights", { model }))));
}

function renderWeights(found) {
  const container = $("weights");
  if (!found.length) {
    container.replaceChildren(el("p", { class: "empty" }, "No Markov or Shapley figures in these "
      + "days: their weights are learned once enough journeys have converted."));
    return;
  }
  const channels = [...new Set(found.flatMap((w) => Object.keys(w.weights)))].sort(channelOrder);
  const header = el("tr", {}, el("th", {}, "Channel"),
    ...found.map((w) => el("th", { class: "num", "data-model": w.model, scope: "col" },
      `${modelLabel(w.model)} v${w.version}`)));
  const body = channels.map((channel) => el("tr", { "data-channel": channel },
    el("th", { scope: "row" }, el("span", { class: `swatch ${colourClass(channel)}` }), channel),
    ...found.map((w) => el("td", { class: "num", "data-model": w.model,
      "data-weight": w.weights[channel] ?? 0 }, formatShare(w.weights[channel] ?? 0)))));
  const notes = found.map((w) => el("p", { class: "muted", "data-model": w.model },
    `${modelLabel(w.model)} v${w.version}: learned ${ago(w.learned_at)} from `
    + `${plural(w.journeys, "journey")}, ${formatCount(w.conversions)} converting.`));
  container.replaceChildren(el("div", { class: "scroll" }, el("table", { class: "table weights" },
    el("thead", {}, header), el("tbody", {}, ...body))), ...notes);
}

function formatShare(weight) {
  return `${(weight * 100).toFixed(1)} %`;
}

// ---- events ----

function renderEvents(items) {
  const rows = items.map((e) => el("tr", { "data-event-id": e.event_id },
    timeCell(e.received_at), el("td", {}, e.provider), el("td", {}, e.topic),
    el("td", { class: "mono" }, e.external_order_id ?? "–"),
    el("td", {}, e.signature_verified ? "verified" : "not verified")));
  fillTable($("events"), rows, 5, "No events yet.");
}

function renderDeadEvents(items) {
  const admin = state.scope === "admin";
  const rows = items.map((e) => el("tr", { "data-dead-event-id": e.dead_event_id },
    timeCell(e.received_at), el("td", {}, e.provider), el("td", {}, e.topic ?? "–"),
    el("td", { class: "reason" }, e.reason, e.replay_attempts
      ? el("span", { class: "detail" }, `${plural(e.replay_attempts, "replay")} failed: `
        + (e.last_replay_error ?? "")) : null),
    el("td", {}, admin ? el("button", { type: "button", class: "replay",
      "data-dead-event-id": e.dead_event_id }, "Replay") : null)));
  fillTable($("dead-events"), rows, 5, "No dead events.");
}

function timeCell(iso) {
  return el("td", { title: iso }, ago(iso));
}

function fillTable(table, rows, columns, empty) {
  const body = table.tBodies[0];
  if (rows.length) body.replaceChildren(...rows);
  else body.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "empty" }, empty)));
}

async function replay(button) {
  const id = button.dataset.deadEventId;
  button.disabled = true;
  try {
    const result = await api(`/api/dead-events/${encodeURIComponent(id)}/replay`,
      { method: "POST" });
    const notice = $("notice");
    notice.dataset.outcome = result.outcome;
    notice.dataset.deadEventId = id;
    show(notice, {
      replayed: `Dead event ${id} replayed: it is now event ${result.event_id}.`,
      duplicate: `Dead event ${id} was already ingested (duplicate); nothing changed.`,
      still_dead: `Dead event ${id} is still dead: ${result.reason}.`,
    }[result.outcome] ?? `Dead event ${id}: ${result.outcome}.`);
    await refresh();
  } catch (error) {
    show($("error"), `Replay failed: ${error.message}.`);
    button.disabled = false;
  }
}

// ---- refresh ----

// A refresh asked for while one runs (a new model, a replay) runs once that one ends.
async function refresh() {
  if (!state.key) return;
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  const range = { from: state.from, to: state.to };
  const comparison = api(query("/api/reports/models", range));
  const channelItems = allPages("/api/reports/channels", { model: state.model, ...range,
    limit: 1000 });
  const spend = Promise.all([allPages("/api/reports/spend", { ...range, limit: 1000 }),
    channelItems, allPages("/api/reports/daily-revenue", { ...range, limit: 1000 })])
    .then(renderSpend);
  const tasks = {
    status: api("/api/status").then(renderStatus),
    chart: channelItems.then(renderChart),
    spend,
    // After the spend view: the drill-down shows amounts in its reporting currency.
    campaigns: spend.catch(() => null).then(() => loadDrill(range)).then(renderDrill),
    models: comparison.then(renderModels),
    weights: comparison.then((report) => learnedWeights(report.models)).then(renderWeights),
    events: api(query("/api/events", { limit: 10 })).then((page) => renderEvents(page.items)),
    dead: api(query("/api/dead-events", { status: "dead", limit: 10 }))
      .then((page) => renderDeadEvents(page.items)),
  };
  const names = Object.keys(tasks);
  const results = await Promise.allSettled(Object.values(tasks));
  state.refreshing = false;
  if (state.refreshAgain) {
    state.refreshAgain = false;
    return refresh();
  }
  const failures = results.map((r, i) => [names[i], r]).filter(([, r]) => r.status === "rejected");
  if (failures.some(([, r]) => r.reason.status === 401)) {
    logout("Your key is no longer accepted (401). Log in again.");
    return;
  }
  show($("error"), failures.map(([name, r]) => `${name}: ${r.reason.message}`).join(" · "));
  $("updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
}

// ---- session ----

async function login(key) {
  const status = await api("/api/status", { key });
  sessionStorage.setItem(KEY_STORAGE, key);
  state.key = key;
  state.scope = status.scope;
  state.tenantId = status.tenant_id;
  state.offeredKey = null;
  $("switch").hidden = true;
  $("session-scope").textContent = `${status.scope} key`;
  $("session-tenant").textContent = `tenant ${status.tenant_id}`;
  $("session").hidden = false;
  $("login").hidden = true;
  show($("login-error"), "");
  $("app").hidden = false;
  renderStatus(status);
  clearInterval(state.timer);
  state.timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  await refresh();
}

function logout(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  clearInterval(state.timer);
  Object.assign(state, { key: null, scope: null, tenantId: null, offeredKey: null, timer: null });
  $("switch").hidden = true;
  // Nothing of this tenant's stays in the page for the next key to glimpse.
  $("chart").replaceChildren();
  $("models").replaceChildren();
  for (const id of ["spend-table", "roas-chart", "drill-table", "drill-trail"]) {
    $(id).replaceChildren();
  }
  show($("spend-unconverted"), "");
  $("drill").hidden = true;
  state.drill = [];
  state.reportingCurrency = null;
  for (const id of ["events", "dead-events"]) $(id).tBodies[0].replaceChildren();
  $("session").hidden = true;
  $("app").hidden = true;
  $("login").hidden = false;
  show($("notice"), "");
  show($("error"), "");
  show($("login-error"), message);
  $("api-key").focus();
}

// A fragment is never sent to a server, so `/#key=...` may carry a key to the page; it is moved
// into sessionStorage and out of the address bar (and so out of history) at once.
function keyFromFragment() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  if (key) history.replaceState(null, "", location.pathname + location.search);
  return key;
}

// A key that arrives in a link while another tenant's key is in use switches only when the
// user agrees: a link someone sent must not silently show their tenant's figures as one's own.
async function offerKey(key) {
  if (!state.key) return login(key).catch((error) => logout(loginMessage(error)));
  if (key === state.key) return;
  let status;
  try {
    status = await api("/api/status", { key });
  } catch (error) {
    show($("error"), `The key in the link was not used: ${loginMessage(error)}`);
    return;
  }
  if (status.tenant_id === state.tenantId) return login(key);
  state.offeredKey = key;
  $("switch-text").textContent = `The link you opened carries a ${status.scope} key of tenant `
    + `${status.tenant_id}. You are logged in to tenant ${state.tenantId}. Switch tenant?`;
  $("switch").hidden = false;
}

function answerSwitch(accepted) {
  const key = state.offeredKey;
  state.offeredKey = null;
  $("switch").hidden = true;
  if (accepted && key) login(key).catch((error) => logout(loginMessage(error)));
}

function setUpControls() {
  const select = $("model");
  select.replaceChildren(...MODELS.map((m) => el("option", { value: m }, modelLabel(m))));
  select.value = state.model;
  const today = isoDay(new Date());
  state.to = today;
  state.from = addDays(today, 1 - DEFAULT_DAYS);
  $("from").value = state.from;
  $("to").value = state.to;
  $("chart-model").textContent = `· ${modelLabel(state.model)}`;
  $("controls").addEventListener("change", () => {
    const from = $("from").value, to = $("to").value;
    if (!from || !to || from > to) {
      show($("error"), "Pick a start day on or before the end day.");
      return;
    }
    Object.assign(state, { model: select.value, from, to });
    $("chart-model").textContent = `· ${modelLabel(state.model)}`;
    refresh();
  });
  $("controls").addEventListener("submit", (event) => event.preventDefault());
}

async function start() {
  setUpControls();
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    if (!key) return;
    $("login-submit").disabled = true;
    try {
      await login(key);
      input.value = "";
    } catch (error) {
      show($("login-error"), loginMessage(error));
    } finally {
      $("login-submit").disabled = false;
    }
  });
  $("logout").addEventListener("click", () => logout(""));
  // A `#key=` link opened in a tab that already shows the page changes only the fragment.
  window.addEventListener("hashchange", () => {
    const key = keyFromFragment();
    if (key) offerKey(key);
  });
  $("switch-yes").addEventListener("click", () => answerSwitch(true));
  $("switch-no").addEventListener("click", () => answerSwitch(false));
  $("dead-events").addEventListener("click", (event) => {
    const button = event.target.closest("button.replay");
    if (button) replay(button);
  });

  const linked = keyFromFragment();
  const stored = sessionStorage.getItem(KEY_STORAGE);
  if (!linked && !stored) {
    logout("");
    return;
  }
  if (stored) {
    try {
      await login(stored);
    } catch (error) {
      logout(loginMessage(error));
    }
  }
  if (linked) await offerKey(linked);
}

start();
