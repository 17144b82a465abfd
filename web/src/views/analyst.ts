// The analyst: the dashboard for a time range: calls per bucket by outcome,
// calls by taxi type, revenue, the three rates, average wait, and the top
// customers. Each chart has its numbers in a table beside it.

import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { describeError, queryApi } from "../api";
import { busy, field, fill, h, krw, Notice, percent, select, short, type View, when } from "../dom";
import {
  Bucket,
  type DashboardBucket,
  type DashboardStats,
  type GetDashboardResponse,
} from "../gen/taxi/query/v1/query_pb";
import { taxiTypeName } from "../places";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Legend,
  Tooltip,
);
Chart.defaults.font.family = "system-ui, sans-serif";
Chart.defaults.animation = false;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const RANGES = [
  ["24h", "Last 24 hours, hourly"],
  ["today", "Today (UTC), hourly"],
  ["7d", "Last 7 days, daily"],
  ["30d", "Last 30 days, daily"],
  ["custom", "Custom range…"],
] as const;

type Range = { from: Date; to: Date; bucket: Bucket };

// Colour-blind-friendly (Okabe-Ito).
const COLORS = {
  completed: "#009E73",
  canceled: "#E69F00",
  expired: "#CC79A7",
  declined: "#D55E00",
  rejected: "#0072B2",
  open: "#999999",
  revenue: "#0072B2",
  requested: "#56B4E9",
};

function floorTo(date: Date, unit: number): Date {
  return new Date(Math.floor(date.getTime() / unit) * unit);
}

/** A datetime-local input's value for a date (local time). */
function localInput(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "Customer canceled" is what is left of all cancellations after the two other kinds. */
function outcomes(s: DashboardStats | undefined) {
  const n = (v: bigint | undefined) => Number(v ?? 0n);
  const canceled = n(s?.canceled);
  const expired = n(s?.expired);
  const declined = n(s?.paymentDeclined);
  const completed = n(s?.completed);
  return {
    completed,
    customerCanceled: Math.max(0, canceled - expired - declined),
    expired,
    declined,
    rejected: n(s?.rejected),
    open: Math.max(0, n(s?.requested) - completed - canceled),
  };
}

/** A chart with a caption and, for those who cannot see it, its numbers as a table. */
class ChartBox {
  readonly el: HTMLElement;
  private readonly canvas = h("canvas", { role: "img" });
  private readonly table = h("div", { class: "table-wrap" });
  private chart: Chart | null = null;

  constructor(
    private readonly title: string,
    id: string,
  ) {
    this.el = h(
      "figure",
      { class: "card chart", "data-testid": id },
      h("figcaption", null, h("h3", null, title)),
      h("div", { class: "canvas-box" }, this.canvas),
      h("details", null, h("summary", null, "Show the numbers"), this.table),
    );
  }

  draw(config: ChartConfiguration, summary: string, head: string[], rows: (string | number)[][]): void {
    this.chart?.destroy();
    this.canvas.setAttribute("aria-label", `${this.title}: ${summary}`);
    this.chart = new Chart(this.canvas, {
      ...config,
      options: { responsive: true, maintainAspectRatio: false, ...config.options },
    });
    fill(
      this.table,
      h(
        "table",
        null,
        h("thead", null, h("tr", null, ...head.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, ...rows.map((r) => h("tr", null, ...r.map((c, i) => (i === 0 ? h("th", { scope: "row" }, String(c)) : h("td", null, String(c))))))),
      ),
    );
  }

  destroy(): void {
    this.chart?.destroy();
  }
}

export function analystView(): View {
  const notice = new Notice();
  const range = select("range", RANGES, "24h");
  const from = h("input", { type: "datetime-local", name: "from" });
  const to = h("input", { type: "datetime-local", name: "to" });
  const bucket = select("bucket", [
    [String(Bucket.HOUR), "Hour"],
    [String(Bucket.DAY), "Day"],
  ]);
  const custom = h("div", { class: "row", hidden: true }, field("From", from), field("To", to), field("Bucket", bucket));
  const show = h("button", { type: "submit", class: "primary" }, "Refresh");
  const form = h(
    "form",
    { class: "card toolbar", "aria-label": "Time range" },
    h("div", { class: "row end" }, field("Time range", range), show),
    custom,
    h("p", { class: "hint", "data-testid": "range-text" }),
  );
  range.addEventListener("change", () => {
    custom.hidden = range.value !== "custom";
    if (range.value === "custom" && !from.value) {
      const now = new Date();
      from.value = localInput(new Date(floorTo(now, HOUR).getTime() - 24 * HOUR));
      to.value = localInput(new Date(floorTo(now, HOUR).getTime() + HOUR));
    }
    if (range.value !== "custom") void load();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void busy(show, load);
  });

  const tiles = h("dl", { class: "tiles", "aria-label": "Totals for the range" });
  const perBucket = new ChartBox("Calls by outcome", "chart-outcomes");
  const byType = new ChartBox("Calls by taxi type", "chart-types");
  const revenue = new ChartBox("Revenue", "chart-revenue");
  const rates = new ChartBox("Cancellation, rejection and expiry rates", "chart-rates");
  const top = new ChartBox("Top customers (all time)", "chart-top");
  const topTable = h("div", { class: "table-wrap" });

  function currentRange(): Range | string {
    const now = new Date();
    switch (range.value) {
      case "24h": {
        const end = new Date(floorTo(now, HOUR).getTime() + HOUR);
        return { from: new Date(end.getTime() - 24 * HOUR), to: end, bucket: Bucket.HOUR };
      }
      case "today": {
        const start = floorTo(now, DAY);
        return { from: start, to: new Date(start.getTime() + DAY), bucket: Bucket.HOUR };
      }
      case "7d":
      case "30d": {
        const days = range.value === "7d" ? 7 : 30;
        const end = new Date(floorTo(now, DAY).getTime() + DAY);
        return { from: new Date(end.getTime() - days * DAY), to: end, bucket: Bucket.DAY };
      }
      default: {
        const f = new Date(from.value);
        const t = new Date(to.value);
        if (Number.isNaN(f.getTime()) || Number.isNaN(t.getTime())) return "Enter both the start and the end of the range.";
        if (t <= f) return "The end of the range must be after its start.";
        const b = Number(bucket.value) as Bucket;
        // The server's buckets start on whole hours or days (UTC).
        const unit = b === Bucket.DAY ? DAY : HOUR;
        return { from: floorTo(f, unit), to: new Date(Math.ceil(t.getTime() / unit) * unit), bucket: b };
      }
    }
  }

  async function load(): Promise<void> {
    const r = currentRange();
    if (typeof r === "string") {
      notice.error(r);
      return;
    }
    try {
      const dashboard = await queryApi.getDashboard({
        from: timestampFromDate(r.from),
        to: timestampFromDate(r.to),
        bucket: r.bucket,
      });
      const rangeText = form.querySelector<HTMLElement>("[data-testid=range-text]");
      if (rangeText) {
        rangeText.textContent = `${r.from.toLocaleString()} – ${r.to.toLocaleString()}, per ${r.bucket === Bucket.DAY ? "day" : "hour"}. Updated ${new Date().toLocaleTimeString()}.`;
      }
      render(dashboard, r.bucket);
      notice.clear();
    } catch (err) {
      notice.error(describeError(err));
    }
  }

  function label(b: DashboardBucket, unit: Bucket): string {
    if (!b.start) return "";
    const d = timestampDate(b.start);
    return unit === Bucket.DAY
      ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
      : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function render(d: GetDashboardResponse, unit: Bucket): void {
    const t = d.totals;
    const o = outcomes(t);
    // A <div> may group a <dt> and its <dd> in a <dl>.
    const tile = (name: string, value: string, id: string) =>
      h("div", { class: "tile" }, h("dt", null, name), h("dd", { "data-testid": `kpi-${id}` }, value));
    fill(
      tiles,
      tile("Requested", String(t?.requested ?? 0n), "requested"),
      tile("Completed", String(o.completed), "completed"),
      tile("Canceled", String(t?.canceled ?? 0n), "canceled"),
      tile("No taxi (rejected)", String(o.rejected), "rejected"),
      tile("Revenue", krw(t?.revenueKrw ?? 0n), "revenue"),
      tile("Average wait", `${(Number(t?.averageWaitMs ?? 0n) / 1000).toFixed(1)} s`, "wait"),
      tile("Cancellation rate", percent(t?.cancellationRate ?? 0), "cancellation-rate"),
      tile("Rejection rate", percent(t?.rejectionRate ?? 0), "rejection-rate"),
      tile("Expiry rate", percent(t?.expiryRate ?? 0), "expiry-rate"),
    );

    const labels = d.buckets.map((b) => label(b, unit));
    const rows = d.buckets.map((b) => ({ label: label(b, unit), ...outcomes(b.stats) }));
    const series = [
      ["Completed", "completed", COLORS.completed],
      ["Canceled by customer", "customerCanceled", COLORS.canceled],
      ["Expired", "expired", COLORS.expired],
      ["Payment declined", "declined", COLORS.declined],
      ["No taxi (rejected)", "rejected", COLORS.rejected],
      ["Not finished in the bucket", "open", COLORS.open],
    ] as const;
    perBucket.draw(
      {
        type: "bar",
        data: {
          labels,
          datasets: series.map(([name, key, color]) => ({
            label: name,
            data: rows.map((r) => r[key]),
            backgroundColor: color,
          })),
        },
        options: {
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        },
      },
      `${o.completed} completed, ${o.customerCanceled + o.expired + o.declined} canceled, ${o.rejected} rejected in the range`,
      ["Bucket", ...series.map(([name]) => name)],
      rows.map((r) => [r.label, ...series.map(([, key]) => r[key])]),
    );

    const types = t?.byTaxiType ?? [];
    const typeSeries = [
      ["Requested", "requested", COLORS.requested],
      ["Completed", "completed", COLORS.completed],
      ["Canceled", "canceled", COLORS.canceled],
      ["No taxi (rejected)", "rejected", COLORS.rejected],
    ] as const;
    byType.draw(
      {
        type: "bar",
        data: {
          labels: types.map((c) => taxiTypeName(c.taxiType)),
          datasets: typeSeries.map(([name, key, color]) => ({
            label: name,
            data: types.map((c) => Number(c[key])),
            backgroundColor: color,
          })),
        },
        options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      },
      types.map((c) => `${taxiTypeName(c.taxiType)} ${c.requested} requested`).join(", ") || "no calls",
      ["Taxi type", ...typeSeries.map(([name]) => name)],
      types.map((c) => [taxiTypeName(c.taxiType), ...typeSeries.map(([, key]) => String(c[key]))]),
    );

    revenue.draw(
      {
        type: "bar",
        data: {
          labels,
          datasets: [
            {
              label: "Revenue (KRW)",
              data: d.buckets.map((b) => Number(b.stats?.revenueKrw ?? 0n)),
              backgroundColor: COLORS.revenue,
            },
          ],
        },
        options: { scales: { y: { beginAtZero: true } }, plugins: { legend: { display: false } } },
      },
      `${krw(t?.revenueKrw ?? 0n)} in the range`,
      ["Bucket", "Revenue"],
      d.buckets.map((b) => [label(b, unit), krw(b.stats?.revenueKrw ?? 0n)]),
    );

    const rateSeries = [
      ["Cancellation", "cancellationRate", COLORS.canceled],
      ["Rejection", "rejectionRate", COLORS.rejected],
      ["Expiry", "expiryRate", COLORS.expired],
    ] as const;
    rates.draw(
      {
        type: "line",
        data: {
          labels,
          datasets: rateSeries.map(([name, key, color]) => ({
            label: name,
            data: d.buckets.map((b) => Math.round((b.stats?.[key] ?? 0) * 1000) / 10),
            borderColor: color,
            backgroundColor: color,
            tension: 0.2,
          })),
        },
        options: { scales: { y: { beginAtZero: true, suggestedMax: 100, title: { display: true, text: "%" } } } },
      },
      rateSeries.map(([name, key]) => `${name} ${percent(t?.[key] ?? 0)}`).join(", "),
      ["Bucket", ...rateSeries.map(([name]) => `${name} rate`)],
      d.buckets.map((b) => [label(b, unit), ...rateSeries.map(([, key]) => percent(b.stats?.[key] ?? 0))]),
    );

    const customers = d.topCustomers;
    const latest = (c: (typeof customers)[number]) => when(c.latestCallAt ? timestampDate(c.latestCallAt) : undefined);
    top.draw(
      {
        type: "bar",
        data: {
          labels: customers.map((c) => short(c.customerId)),
          datasets: [{ label: "Calls", data: customers.map((c) => Number(c.calls)), backgroundColor: COLORS.requested }],
        },
        options: {
          indexAxis: "y",
          scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
          plugins: { legend: { display: false } },
        },
      },
      customers.map((c) => `${short(c.customerId)} ${c.calls} calls`).join(", ") || "none yet",
      ["Customer", "Calls", "Latest call"],
      customers.map((c) => [c.customerId, String(c.calls), latest(c)]),
    );
    fill(
      topTable,
      h(
        "table",
        { "data-testid": "top-customers" },
        h("caption", null, "Top customers"),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Customer"), h("th", { scope: "col" }, "Calls"), h("th", { scope: "col" }, "Latest call"))),
        h(
          "tbody",
          null,
          ...customers.map((c) =>
            h("tr", null, h("th", { scope: "row", class: "mono", title: c.customerId }, short(c.customerId)), h("td", null, String(c.calls)), h("td", null, latest(c))),
          ),
        ),
      ),
    );
  }

  void load();

  const el = h(
    "div",
    { class: "view analyst" },
    form,
    notice.el,
    h("section", { class: "card", "aria-labelledby": "totals-h" }, h("h2", { id: "totals-h" }, "Totals"), tiles),
    h("div", { class: "charts" }, perBucket.el, byType.el, revenue.el, rates.el, top.el),
    h("section", { class: "card", "aria-labelledby": "top-h" }, h("h2", { id: "top-h" }, "Top customers"), topTable),
  );
  return {
    el,
    dispose: () => {
      for (const c of [perBucket, byType, revenue, rates, top]) c.destroy();
    },
  };
}
