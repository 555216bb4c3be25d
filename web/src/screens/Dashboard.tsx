import { lazy, Suspense } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import { dataOf, QueryProblem } from "../ui";

const WatchTimeChart = lazy(() => import("../charts"));

function isoDay(d: Date) {
  return d.toISOString().slice(0, 10);
}

function Trend({ value }: { value: string | null | undefined }) {
  if (!value) return <span className="trend flat">no earlier data</span>;
  const dir = value.startsWith("+") && value !== "+0%" ? "up" : value.startsWith("-") ? "down" : "flat";
  const arrow = dir === "up" ? "▲" : dir === "down" ? "▼" : "■";
  return (
    <span className={`trend ${dir}`}>
      <span aria-hidden="true">{arrow}</span> {value} <span className="sr">vs the 30 days before</span>
    </span>
  );
}

/** The four totals with their trends, and watch time over the last 30 days. */
export function Dashboard() {
  const dashboard = useQuery({
    queryKey: ["dashboard"],
    queryFn: () => dataOf(api.GET("/partner/dashboard")),
  });
  const end = new Date();
  const start = new Date(end.getTime() - 29 * 86_400_000);
  const analytics = useQuery({
    queryKey: ["analytics", "last30"],
    queryFn: () =>
      dataOf(
        api.GET("/partner/analytics", {
          params: { query: { startDate: isoDay(start), endDate: isoDay(end) } },
        }),
      ),
  });

  const funnel = useQuery({
    queryKey: ["funnel", "last30"],
    queryFn: () =>
      dataOf(
        api.GET("/partner/funnel", {
          params: { query: { startDate: isoDay(start), endDate: isoDay(end) } },
        }),
      ),
  });

  const d = dashboard.data;
  const f = funnel.data;
  return (
    <section>
      <h1>Dashboard</h1>
      {dashboard.isError && <QueryProblem error={dashboard.error} />}
      <div className="cards">
        <div className="card">
          <h2>Members</h2>
          <p className="big" data-testid="total-members">{d?.totalMembers ?? "…"}</p>
          <Trend value={d?.trends.membersChange} />
        </div>
        <div className="card">
          <h2>Active (30 days)</h2>
          <p className="big" data-testid="active-members">{d?.activeMembers ?? "…"}</p>
        </div>
        <div className="card">
          <h2>Watch time</h2>
          <p className="big" data-testid="watch-minutes">{d ? `${d.totalWatchTimeMinutes} min` : "…"}</p>
          <Trend value={d?.trends.watchTimeChange} />
        </div>
        <div className="card">
          <h2>Classes watched</h2>
          <p className="big" data-testid="classes-watched">{d?.totalClassesWatched ?? "…"}</p>
        </div>
      </div>
      <h2>Onboarding, last 30 days</h2>
      <ol className="funnel" aria-label="Onboarding funnel, last 30 days">
        {(
          [
            ["Vouchers issued", f?.vouchersIssued],
            ["Registered", f?.registered],
            ["Active", f?.active],
            ["Billable", f?.billable],
          ] as [string, number | undefined][]
        ).map(([label, value]) => (
          <li key={label}>
            <span className="big">{value ?? "…"}</span> {label}
          </li>
        ))}
      </ol>
      <h2>Watch time, last 30 days</h2>
      <div className="chart" role="img" aria-label="Watch time in minutes per day over the last 30 days">
        {/* The chart's code loads once the numbers are in, so it never holds them up. */}
        {analytics.data && (
          <Suspense fallback={null}>
            <WatchTimeChart data={analytics.data?.watchTimeByDay ?? []} />
          </Suspense>
        )}
      </div>
    </section>
  );
}
