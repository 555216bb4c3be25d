import { lazy, Suspense } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { DataTable } from "../DataTable";
import { useFrame, dataOf, QueryProblem } from "../ui";

const WatchTimeChart = lazy(() => import("../charts"));

type Period = "week" | "month" | "quarter" | "custom";
type Category = components["schemas"]["CategoryStat"];
type ClassStat = components["schemas"]["ClassStat"];

const PERIODS: [Period, string][] = [
  ["week", "Week"],
  ["month", "Month"],
  ["quarter", "Quarter"],
  ["custom", "Custom"],
];

const cat = createColumnHelper<Category>();
const categoryColumns = [
  cat.accessor("category", { header: "Category" }),
  cat.accessor("views", { header: "Views" }),
  cat.accessor("watchTimeMinutes", { header: "Watch time (min)" }),
];
const cls = createColumnHelper<ClassStat>();
const classColumns = [
  cls.accessor("title", { header: "Class" }),
  cls.accessor("category", { header: "Category" }),
  cls.accessor("views", { header: "Views" }),
  cls.accessor("watchTimeMinutes", { header: "Watch time (min)" }),
];

/** Usage over a week, month, quarter or chosen days (days in the partner's timezone). */
export function Analytics() {
  const { timezone } = useFrame();
  const [params, setParams] = useSearchParams();
  const period = (params.get("period") ?? "month") as Period;
  const startDate = params.get("startDate") ?? "";
  const endDate = params.get("endDate") ?? "";
  const custom = period === "custom";
  const ready = !custom || (startDate !== "" && endDate !== "");

  const analytics = useQuery({
    queryKey: ["analytics", period, startDate, endDate],
    enabled: ready,
    placeholderData: keepPreviousData,
    queryFn: async () => {
      const query = custom ? { startDate, endDate } : { period };
      return dataOf(api.GET("/partner/analytics", { params: { query } }));
    },
  });
  const a = analytics.data;

  function choose(p: Period) {
    const next = new URLSearchParams(params);
    next.set("period", p);
    if (p !== "custom") {
      next.delete("startDate");
      next.delete("endDate");
    }
    setParams(next);
  }
  function setDay(name: "startDate" | "endDate", value: string) {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next);
  }

  return (
    <section>
      <h1>Analytics</h1>
      <div className="filters">
        <div role="group" aria-label="Period" className="segmented">
          {PERIODS.map(([p, label]) => (
            <button key={p} type="button" aria-pressed={period === p} onClick={() => choose(p)}>
              {label}
            </button>
          ))}
        </div>
        {custom && (
          <>
            <label>
              From
              <input type="date" value={startDate} max={endDate || undefined} onChange={(e) => setDay("startDate", e.target.value)} />
            </label>
            <label>
              To
              <input type="date" value={endDate} min={startDate || undefined} onChange={(e) => setDay("endDate", e.target.value)} />
            </label>
          </>
        )}
      </div>
      <p className="muted" data-testid="analytics-range">
        {a ? `${a.range.startDate} to ${a.range.endDate}` : custom && !ready ? "Choose the first and last day." : "…"} · days in{" "}
        {timezone}
      </p>
      {analytics.isError && <QueryProblem error={analytics.error} />}
      <div className="cards">
        <div className="card">
          <h2>Active members</h2>
          <p className="big" data-testid="analytics-active">{a?.totals.activeMembers ?? "…"}</p>
        </div>
        <div className="card">
          <h2>Watch time</h2>
          <p className="big" data-testid="analytics-minutes">{a ? `${a.totals.watchTimeMinutes} min` : "…"}</p>
        </div>
        <div className="card">
          <h2>Classes watched</h2>
          <p className="big">{a?.totals.classesWatched ?? "…"}</p>
        </div>
        <div className="card">
          <h2>Per active member</h2>
          <p className="big">{a ? `${a.totals.avgWatchTimeMinutesPerActiveMember} min` : "…"}</p>
        </div>
      </div>
      <h2>Watch time by day</h2>
      <div className="chart" role="img" aria-label="Watch time in minutes per day over the chosen range">
        {/* The chart's code loads once the numbers are in, so it never holds them up. */}
        {a && (
          <Suspense fallback={null}>
            <WatchTimeChart data={a?.watchTimeByDay ?? []} bars />
          </Suspense>
        )}
      </div>
      <div className="two">
        <div>
          <h2>Top categories</h2>
          <DataTable data={a?.popularCategories ?? []} columns={categoryColumns} label="Top categories" />
        </div>
        <div>
          <h2>Top classes</h2>
          <DataTable data={a?.popularClasses ?? []} columns={classColumns} label="Top classes" />
        </div>
      </div>
    </section>
  );
}
