import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { DataTable, Pager } from "../DataTable";
import { Confirm, Problem, useFrame, type Outcome, useListParams, dataOf } from "../ui";

type Product = components["schemas"]["Product"];
type Status = "draft" | "active" | "archived";
type Sort = "sort_order" | "newest" | "oldest" | "price_asc" | "price_desc";

const STATUS_OPTIONS = (
  [
    ["draft", "Draft"],
    ["active", "Active"],
    ["archived", "Archived"],
  ] as [Status, string][]
).map(([v, label]) => (
  <option key={v} value={v}>
    {label}
  </option>
));

const SORTS: [Sort, string][] = [
  ["sort_order", "Sort order"],
  ["newest", "Newest"],
  ["oldest", "Oldest"],
  ["price_asc", "Price, low to high"],
  ["price_desc", "Price, high to low"],
];

type Draft = {
  name: string;
  description: string;
  price: string;
  currency: string;
  productType: string;
  externalUrl: string;
  image: string;
  featured: boolean;
  sortOrder: number;
  status: Status;
};
const EMPTY: Draft = {
  name: "",
  description: "",
  price: "",
  currency: "USD",
  productType: "",
  externalUrl: "",
  image: "",
  featured: false,
  sortOrder: 0,
  status: "draft",
};
function draftOf(p: Product): Draft {
  return {
    name: p.name,
    description: p.description,
    price: p.price ?? "",
    currency: p.currency,
    productType: p.productType ?? "",
    externalUrl: p.externalUrl ?? "",
    image: p.image ?? "",
    featured: p.featured,
    sortOrder: p.sortOrder,
    status: p.status as Status,
  };
}
function bodyOf(d: Draft) {
  const orNull = (s: string) => (s.trim() === "" ? null : s.trim());
  return {
    name: d.name,
    description: orNull(d.description),
    price: orNull(d.price),
    currency: d.currency.trim().toUpperCase(),
    productType: orNull(d.productType),
    externalUrl: orNull(d.externalUrl),
    image: orNull(d.image),
    featured: d.featured,
    sortOrder: d.sortOrder,
    status: d.status,
  };
}

/** Affiliate products the app lists: filters, order, and (admins) create, edit and delete. */
export function Products() {
  const { admin } = useFrame();
  const queries = useQueryClient();
  const [params, set] = useListParams();
  const status = (params.get("status") ?? "") as "" | Status;
  const productType = params.get("type") ?? "";
  const sort = (params.get("sort") ?? "sort_order") as Sort;
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const [typedType, setTypedType] = useState(productType);
  const [editing, setEditing] = useState<Product | "new" | null>(null);
  const [failure, setFailure] = useState<Outcome>(null);

  const list = useQuery({
    queryKey: ["products", status, productType, sort, page],
    placeholderData: keepPreviousData,
    queryFn: async () => {
      return dataOf(api.GET("/partner/products", {
        params: { query: { status: status || undefined, productType: productType || undefined, sort, page, limit: 25 } },
      }));
    },
  });

  async function remove(p: Product) {
    setFailure(null);
    const { error, response } = await api.DELETE("/partner/products/{id}", { params: { path: { id: p.id } } });
    if (!response.ok) setFailure({ error, response });
    await queries.invalidateQueries({ queryKey: ["products"] });
  }

  const col = createColumnHelper<Product>();
  const columns = [
    col.accessor("name", { header: "Name" }),
    col.accessor("productType", { header: "Type", cell: (c) => c.getValue() ?? "—" }),
    col.accessor("price", { header: "Price", cell: (c) => (c.getValue() ? `${c.getValue()} ${c.row.original.currency}` : "—") }),
    col.accessor("status", { header: "Status", cell: (c) => <span className={`badge ${c.getValue()}`}>{c.getValue()}</span> }),
    col.accessor("featured", { header: "Featured", cell: (c) => (c.getValue() ? "Yes" : "No") }),
    col.accessor("sortOrder", { header: "Order" }),
    ...(admin
      ? [
          col.display({
            id: "actions",
            header: () => <span className="sr">Actions</span>,
            cell: (c) => (
              <div className="actions">
                <button type="button" className="secondary" onClick={() => setEditing(c.row.original)}>
                  Edit<span className="sr"> {c.row.original.name}</span>
                </button>
                <Confirm
                  label={<>Delete<span className="sr"> {c.row.original.name}</span></>}
                  question={`Delete ${c.row.original.name}? The app stops listing it.`}
                  confirm="Delete"
                  onConfirm={() => remove(c.row.original)}
                />
              </div>
            ),
          }),
        ]
      : []),
  ];
  const pages = Math.max(1, list.data?.pagination.totalPages ?? 1);

  return (
    <section>
      <h1>Products</h1>
      <form
        className="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          set({ type: typedType.trim() });
        }}
      >
        <label>
          Status
          <select value={status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">All</option>
            {STATUS_OPTIONS}
          </select>
        </label>
        <label>
          Type
          <input value={typedType} placeholder="e.g. equipment" onChange={(e) => setTypedType(e.target.value)} />
        </label>
        <label>
          Sort
          <select value={sort} onChange={(e) => set({ sort: e.target.value })}>
            {SORTS.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Filter</button>
        {admin && (
          <button type="button" className="secondary" onClick={() => setEditing("new")}>
            New product
          </button>
        )}
      </form>
      {failure && <Problem {...failure} />}
      {admin && editing && (
        <ProductForm
          key={editing === "new" ? "new" : editing.id}
          product={editing === "new" ? null : editing}
          onDone={async () => {
            setEditing(null);
            await queries.invalidateQueries({ queryKey: ["products"] });
          }}
        />
      )}
      <DataTable data={list.data?.products ?? []} columns={columns} label="Products" />
      <Pager page={page} pages={pages} onPage={(n) => set({ page: String(n) })}>
        {` (${list.data?.pagination.total ?? "…"} products)`}
      </Pager>
    </section>
  );
}

function ProductForm({ product, onDone }: { product: Product | null; onDone: () => void }) {
  const [d, setD] = useState<Draft>(product ? draftOf(product) : EMPTY);
  const [failure, setFailure] = useState<Outcome>(null);
  const [busy, setBusy] = useState(false);
  const field = <K extends keyof Draft>(k: K) => (v: Draft[K]) => setD((x) => ({ ...x, [k]: v }));

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setFailure(null);
    const r = product
      ? await api.PUT("/partner/products/{id}", { params: { path: { id: product.id } }, body: bodyOf(d) })
      : await api.POST("/partner/products", { body: bodyOf(d) });
    setBusy(false);
    if (!r.data) return setFailure({ error: r.error, response: r.response });
    onDone();
  }

  return (
    <form className="panel grid-form" onSubmit={submit} aria-label={product ? `Edit ${product.name}` : "New product"}>
      <h2>{product ? `Edit ${product.name}` : "New product"}</h2>
      <label>
        Name
        <input required maxLength={200} value={d.name} onChange={(e) => field("name")(e.target.value)} />
      </label>
      <label>
        Type
        <input maxLength={100} value={d.productType} onChange={(e) => field("productType")(e.target.value)} />
      </label>
      <label>
        Price
        <input inputMode="decimal" pattern="[0-9]{1,10}([.][0-9]{1,2})?" value={d.price} onChange={(e) => field("price")(e.target.value)} />
      </label>
      <label>
        Currency
        <input maxLength={3} pattern="[A-Za-z]{3}" value={d.currency} onChange={(e) => field("currency")(e.target.value)} />
      </label>
      <label>
        Link
        <input type="url" value={d.externalUrl} onChange={(e) => field("externalUrl")(e.target.value)} />
      </label>
      <label>
        Image URL
        <input type="url" value={d.image} onChange={(e) => field("image")(e.target.value)} />
      </label>
      <label>
        Status
        <select value={d.status} onChange={(e) => field("status")(e.target.value as Status)}>
          {STATUS_OPTIONS}
        </select>
      </label>
      <label>
        Sort order
        <input type="number" min={-1000000} max={1000000} value={d.sortOrder} onChange={(e) => field("sortOrder")(Number(e.target.value))} />
      </label>
      <label className="wide">
        Description
        <textarea maxLength={5000} rows={3} value={d.description} onChange={(e) => field("description")(e.target.value)} />
      </label>
      <label className="check">
        <input type="checkbox" checked={d.featured} onChange={(e) => field("featured")(e.target.checked)} /> Featured
      </label>
      {failure && <Problem {...failure} />}
      <div className="actions wide">
        <button type="submit" disabled={busy}>
          {product ? "Save product" : "Create product"}
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
