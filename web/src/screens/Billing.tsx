import { Link, useSearchParams } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { DataTable, Pager } from "../DataTable";
import { dataOf, Problem, QueryProblem, useStartExport } from "../ui";
import { api } from "../api/client";
import type { components } from "../api/schema";

type Billable = components["schemas"]["BillableMember"];

const col = createColumnHelper<Billable>();
const columns = [
  col.accessor("name", { header: "Name", cell: (c) => <Link to={`/members/${c.row.original.id}`}>{c.getValue()}</Link> }),
  col.accessor("email", { header: "Email" }),
  col.accessor("watchTimeMinutes", { header: "Watch time (min)" }),
  col.accessor("classesWatched", { header: "Classes" }),
  col.accessor("firstActiveAt", { header: "First active", cell: (c) => new Date(c.getValue()).toLocaleDateString() }),
  col.accessor("lastActiveAt", { header: "Last active", cell: (c) => new Date(c.getValue()).toLocaleDateString() }),
];

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

/** Billing: a month's billable (active) members, their count and figures; export as CSV. */
export function Billing() {
  const [params, setParams] = useSearchParams();
  const month = params.get("month") ?? thisMonth();
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const [year, mm] = month.split("-").map(Number);
  const exporter = useStartExport();

  const report = useQuery({
    queryKey: ["billing", month, page],
    placeholderData: keepPreviousData,
    queryFn: () => dataOf(api.GET("/partner/billing", { params: { query: { month: mm, year, page, limit: 50 } } })),
  });
  const pages = Math.max(1, report.data?.pagination.totalPages ?? 1);


  return (
    <section>
      <h1>Billing</h1>
      <div className="filters">
        <label>
          Month
          <input
            type="month"
            value={month}
            max={thisMonth()}
            onChange={(e) => e.target.value && setParams({ month: e.target.value })}
          />
        </label>
        {/* Exports are reads: viewers may start them too, as the API allows. */}
        <button type="button" onClick={() => exporter.start(() => api.GET("/partner/billing/export", { params: { query: { month: mm, year } } }))}>
          Export CSV
        </button>
      </div>
      {exporter.failure && <Problem {...exporter.failure} />}
      {report.isError && <QueryProblem error={report.error} />}
      <div className="cards">
        <div className="card">
          <h2>Billable members</h2>
          <p className="big" data-testid="billable-count">{report.data?.activeMemberCount ?? "…"}</p>
        </div>
      </div>
      <h2>Members active in {month}</h2>
      <DataTable data={report.data?.members ?? []} columns={columns} label="Billable members" />
      <Pager page={page} pages={pages} onPage={(n) => setParams({ month, page: String(n) })} />
    </section>
  );
}
