import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { keepApiKey, useApiKey } from "../apiKey";
import { DataTable, Pager } from "../DataTable";
import { Confirm, day, Problem, saveText, useFrame, useStartExport, type Outcome, useListParams, dataOf } from "../ui";

type Voucher = components["schemas"]["portal_api.routes.vouchers.VoucherDto"];
type Status = "" | "active" | "redeemed" | "expired" | "revoked";

/** The voucher screens need the partner's client API key (the seed's rule); without one kept in
 *  this browser, they ask for it. */
export function Vouchers() {
  const { clientId } = useFrame();
  const key = useApiKey(clientId);
  if (!key) return <EnterKey clientId={clientId} />;
  return <VoucherScreen apiKey={key} clientId={clientId} />;
}

function EnterKey({ clientId }: { clientId: string }) {
  const [typed, setTyped] = useState("");
  const [failure, setFailure] = useState<Outcome>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    const key = typed.trim();
    const { data, error, response } = await api.GET("/partner/vouchers/stats", { headers: { "X-API-Key": key } });
    if (data) keepApiKey(clientId, key);
    else setFailure({ error, response });
  }
  return (
    <section>
      <h1>Vouchers</h1>
      <form className="panel" onSubmit={submit}>
        <p>
          Voucher codes are managed with your programme's client API key (the one your app uses). Enter it once; this browser
          keeps it for you and sends it only to this portal. An admin can create one under Team &amp; API keys.
        </p>
        <label>
          Client API key
          <input value={typed} required autoComplete="off" spellCheck={false} onChange={(e) => setTyped(e.target.value)} />
        </label>
        {failure && <Problem {...failure} />}
        <button type="submit">Use this key</button>
      </form>
    </section>
  );
}

function VoucherScreen({ apiKey, clientId }: { apiKey: string; clientId: string }) {
  const { admin } = useFrame();
  const queries = useQueryClient();
  const headers = { "X-API-Key": apiKey };
  const [params, set] = useListParams();
  const status = (params.get("status") ?? "") as Status;
  const search = params.get("search") ?? "";
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const [typed, setTyped] = useState(search);
  const [failure, setFailure] = useState<Outcome>(null);
  const exporter = useStartExport();

  const stats = useQuery({
    queryKey: ["vouchers", "stats"],
    queryFn: async () => {
      return dataOf(api.GET("/partner/vouchers/stats", { headers }));
    },
  });
  const list = useQuery({
    queryKey: ["vouchers", "list", status, search, page],
    placeholderData: keepPreviousData,
    queryFn: async () => {
      return dataOf(api.GET("/partner/vouchers", {
        headers,
        params: { query: { status: status || undefined, search: search || undefined, page, limit: 25, sort: "-createdAt" } },
      }));
    },
  });
  const keyRefused = [stats.error, list.error].some(
    (e) => (e as { response?: Response } | null)?.response?.status === 401,
  );


  async function revoke(v: Voucher) {
    setFailure(null);
    const { error, response } = await api.DELETE("/partner/vouchers/{id}", { headers, params: { path: { id: v.id } } });
    if (!response.ok) setFailure({ error, response });
    await queries.invalidateQueries({ queryKey: ["vouchers"] });
  }

  const col = createColumnHelper<Voucher>();
  const columns = [
    col.accessor("code", { header: "Code", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("status", { header: "Status", cell: (c) => <span className={`badge ${c.getValue()}`}>{c.getValue()}</span> }),
    col.accessor("createdAt", { header: "Created", cell: (c) => day(c.getValue()) }),
    col.accessor("expiresAt", { header: "Expires", cell: (c) => day(c.getValue()) }),
    col.accessor("redeemedBy", {
      header: "Redeemed by",
      cell: (c) => (c.getValue() ? `${c.getValue()!.name} (${day(c.row.original.redeemedAt)})` : "—"),
    }),
    ...(admin
      ? [
          col.display({
            id: "actions",
            header: () => <span className="sr">Actions</span>,
            cell: (c) =>
              c.row.original.status === "active" ? (
                <Confirm
                  label={<>Revoke<span className="sr"> {c.row.original.code}</span></>}
                  question={`Revoke ${c.row.original.code}? It can no longer be redeemed.`}
                  confirm="Revoke"
                  onConfirm={() => revoke(c.row.original)}
                />
              ) : null,
          }),
        ]
      : []),
  ];
  const s = stats.data;
  const pages = Math.max(1, list.data?.pagination.totalPages ?? 1);

  return (
    <section>
      <h1>Vouchers</h1>
      {keyRefused && (
        <div role="alert" className="error">
          <p>The client API key kept in this browser was refused (revoked, or of another programme).</p>
          <button type="button" onClick={() => keepApiKey(clientId, null)}>
            Enter another key
          </button>
        </div>
      )}
      <div className="cards">
        {(
          [
            ["Issued", s?.total, "vouchers-total"],
            ["Active", s?.active, "vouchers-active"],
            ["Redeemed", s?.redeemed, "vouchers-redeemed"],
            ["Expired", s?.expired, "vouchers-expired"],
            ["Revoked", s?.revoked, "vouchers-revoked"],
          ] as [string, number | undefined, string][]
        ).map(([label, value, id]) => (
          <div className="card" key={label}>
            <h2>{label}</h2>
            <p className="big" data-testid={id}>
              {value ?? "…"}
            </p>
          </div>
        ))}
        <div className="card">
          <h2>Redemption rate</h2>
          <p className="big" data-testid="redemption-rate">{s ? `${s.redemptionRate}%` : "…"}</p>
        </div>
      </div>
      {admin && <Generate headers={headers} />}
      <h2>Codes</h2>
      <form
        className="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          set({ search: typed.trim() });
        }}
      >
        <label>
          Search
          <input type="search" value={typed} placeholder="Code" onChange={(e) => setTyped(e.target.value)} />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">All</option>
            <option value="active">Active</option>
            <option value="redeemed">Redeemed</option>
            <option value="expired">Expired</option>
            <option value="revoked">Revoked</option>
          </select>
        </label>
        <button type="submit">Search</button>
        <button
          type="button"
          className="secondary"
          onClick={() => exporter.start(() => api.GET("/partner/vouchers/export", { headers, params: { query: { status: status || undefined } } }))}
        >
          Export CSV
        </button>
        <button type="button" className="secondary" onClick={() => keepApiKey(clientId, null)}>
          Forget the API key
        </button>
      </form>
      {exporter.failure && <Problem {...exporter.failure} />}
      {failure && <Problem {...failure} />}
      <DataTable data={list.data?.vouchers ?? []} columns={columns} label="Voucher codes" />
      <Pager page={page} pages={pages} onPage={(n) => set({ page: String(n) })}>
        {` (${list.data?.pagination.total ?? "…"} codes)`}
      </Pager>
    </section>
  );
}

/** Generate a batch (admins): quantity, prefix, expiry; the new codes are shown to copy or download. */
function Generate({ headers }: { headers: Record<string, string> }) {
  const queries = useQueryClient();
  const [quantity, setQuantity] = useState(10);
  const [prefix, setPrefix] = useState("");
  const [expires, setExpires] = useState("");
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<Outcome>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [copied, setCopied] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setFailure(null);
    setCopied(false);
    const { data, error, response } = await api.POST("/partner/vouchers", {
      // One key per submitted form: a retried request cannot make a second batch.
      headers: { ...headers, "Idempotency-Key": crypto.randomUUID() },
      body: {
        quantity,
        prefix: prefix.trim() || null,
        // The end of the chosen day, this browser's time.
        expiresAt: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
      },
    });
    setBusy(false);
    if (!data) return setFailure({ error, response });
    setCodes(data.data.vouchers.map((v) => v.code));
    await queries.invalidateQueries({ queryKey: ["vouchers"] });
  }

  return (
    <details className="panel">
      <summary>Generate codes</summary>
      <form className="filters" onSubmit={submit}>
        <label>
          Quantity
          <input type="number" min={1} max={500} required value={quantity} onChange={(e) => setQuantity(Number(e.target.value))} />
        </label>
        <label>
          Prefix (optional)
          <input value={prefix} maxLength={16} pattern="\s*[A-Za-z0-9]{0,16}\s*" onChange={(e) => setPrefix(e.target.value)} />
        </label>
        <label>
          Expires (optional)
          <input type="date" value={expires} min={new Date().toISOString().slice(0, 10)} onChange={(e) => setExpires(e.target.value)} />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? "Generating…" : "Generate"}
        </button>
      </form>
      {failure && <Problem {...failure} />}
      {codes && (
        <div className="generated">
          <p role="status">{codes.length} new codes.</p>
          <label>
            New codes
            <textarea readOnly rows={Math.min(10, codes.length)} value={codes.join("\n")} data-testid="new-codes" />
          </label>
          <div className="actions">
            <button
              type="button"
              className="secondary"
              onClick={async () => {
                await navigator.clipboard.writeText(codes.join("\n")).then(
                  () => setCopied(true),
                  () => setCopied(false),
                );
              }}
            >
              {copied ? "Copied" : "Copy codes"}
            </button>
            <button type="button" className="secondary" onClick={() => saveText("voucher-codes.csv", `code\n${codes.join("\n")}\n`)}>
              Download codes
            </button>
          </div>
        </div>
      )}
    </details>
  );
}
