import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { DataTable, Pager } from "../DataTable";
import { dataOf, day, Problem, QueryProblem, useStartExport, useListParams } from "../ui";
import { api } from "../api/client";
import type { components } from "../api/schema";

type Member = components["schemas"]["portal_api.routes.members.MemberRowDto"];
type Sort = "name" | "-name" | "email" | "-email" | "registeredAt" | "-registeredAt" | "lastActiveAt" | "-lastActiveAt" | "watchTime" | "-watchTime";

const SORTS: [Sort, string][] = [
  ["-registeredAt", "Newest members"],
  ["registeredAt", "Oldest members"],
  ["name", "Name A–Z"],
  ["-name", "Name Z–A"],
  ["-lastActiveAt", "Recently active"],
  ["-watchTime", "Most watch time"],
];


const col = createColumnHelper<Member>();
const columns = [
  col.accessor("name", {
    header: "Name",
    cell: (c) => <Link to={`/members/${c.row.original.id}`}>{c.getValue()}</Link>,
  }),
  col.accessor("email", { header: "Email" }),
  col.accessor("status", { header: "Status" }),
  col.accessor("registeredAt", { header: "Registered", cell: (c) => day(c.getValue()) }),
  col.accessor("lastActiveAt", { header: "Last active", cell: (c) => day(c.getValue()) }),
  col.accessor("totalWatchTimeMinutes", { header: "Watch time (min)" }),
  col.accessor("classesWatched", { header: "Classes" }),
];

/** Members: search, status filter, sort, pages; the state lives in the URL, so a view can be shared. */
export function Members() {
  const [params, set] = useListParams();
  const search = params.get("search") ?? "";
  const status = (params.get("status") ?? "") as "" | "active" | "inactive";
  const sort = (params.get("sort") ?? "-registeredAt") as Sort;
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const [typed, setTyped] = useState(search);
  const exporter = useStartExport();

  const list = useQuery({
    queryKey: ["members", search, status, sort, page],
    placeholderData: keepPreviousData,
    queryFn: () =>
      dataOf(
        api.GET("/partner/members", {
          params: {
            query: { search: search || undefined, status: status || undefined, sort, page, limit: 20 },
          },
        }),
      ),
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    set({ search: typed.trim() });
  }
  const pages = Math.max(1, list.data?.pagination.totalPages ?? 1);

  return (
    <section>
      <h1>Members</h1>
      <form className="filters" onSubmit={submit} role="search">
        <label>
          Search
          <input type="search" value={typed} placeholder="Name or email" onChange={(e) => setTyped(e.target.value)} />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">All</option>
            <option value="active">Active (30 days)</option>
            <option value="inactive">Inactive</option>
          </select>
        </label>
        <label>
          Sort
          <select value={sort} onChange={(e) => set({ sort: e.target.value })}>
            {SORTS.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Search</button>
        <button type="button" className="secondary" onClick={() => exporter.start(() => api.GET("/partner/members/export"))}>
          Export CSV
        </button>
      </form>
      {exporter.failure && <Problem {...exporter.failure} />}
      {list.isError && <QueryProblem error={list.error} />}
      <DataTable data={list.data?.members ?? []} columns={columns} label="Members" />
      <Pager page={page} pages={pages} onPage={(n) => set({ page: String(n) })}>
        {` (${list.data?.pagination.total ?? "…"} members)`}
      </Pager>
    </section>
  );
}

/** One member: aggregate figures and viewing history (newest first, paged). */
export function MemberDetail() {
  const { id = "" } = useParams();
  const [historyPage, setHistoryPage] = useState(1);
  const detail = useQuery({
    queryKey: ["member", id, historyPage],
    placeholderData: keepPreviousData,
    queryFn: () =>
      dataOf(
        api.GET("/partner/members/{id}", {
          params: { path: { id }, query: { historyPage, historyLimit: 20 } },
        }),
      ),
  });
  const m = detail.data;
  if (detail.isLoading) return <p>Loading…</p>;
  if (!m) return detail.isError ? <QueryProblem error={detail.error} /> : <p role="alert">No such member.</p>;
  const pages = Math.max(1, m.historyPagination.totalPages);
  return (
    <section>
      <p>
        <Link to="/members">← Members</Link>
      </p>
      <h1>{m.name}</h1>
      <p>
        {m.email} · registered {day(m.registeredAt)} · {m.status}
        {m.voucherCode ? ` · voucher ${m.voucherCode}` : ""}
      </p>
      <div className="cards">
        <div className="card">
          <h2>Watch time</h2>
          <p className="big">{m.stats.totalWatchTimeMinutes} min</p>
        </div>
        <div className="card">
          <h2>Classes watched</h2>
          <p className="big">{m.stats.classesWatched}</p>
        </div>
        <div className="card">
          <h2>Active days</h2>
          <p className="big">{m.stats.activeDays}</p>
        </div>
        <div className="card">
          <h2>Favourite category</h2>
          <p className="big">{m.stats.favoriteCategory ?? "—"}</p>
        </div>
      </div>
      <h2>Viewing history</h2>
      {m.viewingHistory.length === 0 && <p>No classes watched yet.</p>}
      <div className="table-wrap" role="region" aria-label="Viewing history" tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Watched</th>
              <th scope="col">Class</th>
              <th scope="col">Category</th>
              <th scope="col">Minutes</th>
            </tr>
          </thead>
          <tbody>
            {m.viewingHistory.map((h, i) => (
              <tr key={`${h.watchedAt}-${i}`}>
                <td>{new Date(h.watchedAt).toLocaleString()}</td>
                <td>{h.title}</td>
                <td>{h.category}</td>
                <td>{h.watchedMinutes}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager page={historyPage} pages={pages} onPage={setHistoryPage} label="History pages" previous="Newer" next="Older" />
    </section>
  );
}
