import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { DataTable, Pager } from "../DataTable";
import { AdminOnly, moment, useFrame, dataOf, QueryProblem } from "../ui";

type Entry = components["schemas"]["AuditEntry"];

const col = createColumnHelper<Entry>();
const columns = [
  col.accessor("createdAt", { header: "When", cell: (c) => moment(c.getValue()) }),
  col.accessor("action", { header: "Action", cell: (c) => <code>{c.getValue()}</code> }),
  col.accessor("actorEmail", { header: "By", cell: (c) => c.getValue() ?? c.row.original.actorType }),
  col.accessor("targetType", {
    header: "Target",
    cell: (c) => (c.getValue() ? `${c.getValue()} ${c.row.original.targetId ?? ""}` : "—"),
  }),
  col.accessor("ip", { header: "IP", cell: (c) => c.getValue() ?? "—" }),
  col.accessor("details", {
    header: "Details",
    cell: (c) => (c.getValue() == null ? "—" : <code className="details">{JSON.stringify(c.getValue())}</code>),
  }),
];

/** Who changed what (admins): filter by action and days (the partner's timezone). */
export function AuditLog() {
  const { admin, timezone } = useFrame();
  const [params, setParams] = useSearchParams();
  const action = params.get("action") ?? "";
  const from = params.get("from") ?? "";
  const to = params.get("to") ?? "";
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const [typed, setTyped] = useState({ action, from, to });

  const log = useQuery({
    queryKey: ["audit", action, from, to, page],
    enabled: admin,
    placeholderData: keepPreviousData,
    queryFn: async () => {
      return dataOf(api.GET("/partner/audit-log", {
        params: { query: { action: action || undefined, from: from || undefined, to: to || undefined, page, limit: 50 } },
      }));
    },
  });
  if (!admin) return <AdminOnly title="Audit log" />;

  function submit(e: FormEvent) {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(typed)) if (v.trim()) next.set(k, v.trim());
    setParams(next);
  }
  const pages = Math.max(1, log.data?.pagination.totalPages ?? 1);

  return (
    <section>
      <h1>Audit log</h1>
      <form className="filters" role="search" onSubmit={submit}>
        <label>
          Action
          <input value={typed.action} placeholder="e.g. vouchers.generate" onChange={(e) => setTyped({ ...typed, action: e.target.value })} />
        </label>
        <label>
          From
          <input type="date" value={typed.from} onChange={(e) => setTyped({ ...typed, from: e.target.value })} />
        </label>
        <label>
          To
          <input type="date" value={typed.to} onChange={(e) => setTyped({ ...typed, to: e.target.value })} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <p className="muted">Days in {timezone}.</p>
      {log.isError && <QueryProblem error={log.error} />}
      <DataTable data={log.data?.entries ?? []} columns={columns} label="Audit log entries" />
      <Pager page={page} pages={pages} onPage={(n) => setParams({ ...Object.fromEntries(params), page: String(n) })}>
        {` (${log.data?.pagination.total ?? "…"} entries)`}
      </Pager>
    </section>
  );
}
