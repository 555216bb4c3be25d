import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { keepApiKey, useApiKey } from "../apiKey";
import { DataTable } from "../DataTable";
import { AdminOnly, Confirm, day, moment, Problem, useFrame, type Outcome, dataOf, QueryProblem } from "../ui";

type Staff = components["schemas"]["portal_api.routes.team.StaffDto"];
type Key = components["schemas"]["portal_api.routes.team.ApiKeyDto"];
type Role = "admin" | "viewer";

/** Team and API keys (admins): add staff, change roles, deactivate; create and revoke keys. */
export function Team() {
  const { admin } = useFrame();
  if (!admin) return <AdminOnly title="Team & API keys" />;
  return (
    <section>
      <h1>Team &amp; API keys</h1>
      <StaffPanel />
      <KeysPanel />
    </section>
  );
}

function StaffPanel() {
  const queries = useQueryClient();
  const [failure, setFailure] = useState<Outcome>(null);
  const staff = useQuery({
    queryKey: ["staff"],
    queryFn: async () => {
      return (await dataOf(api.GET("/partner/staff"))).staff;
    },
  });
  async function update(s: Staff, body: { role?: Role; active?: boolean }) {
    setFailure(null);
    const { data, error, response } = await api.PATCH("/partner/staff/{id}", { params: { path: { id: s.id } }, body });
    if (!data) setFailure({ error, response });
    await queries.invalidateQueries({ queryKey: ["staff"] });
  }

  const col = createColumnHelper<Staff>();
  const columns = [
    col.accessor("name", { header: "Name" }),
    col.accessor("email", { header: "Email" }),
    col.accessor("role", {
      header: "Role",
      cell: (c) => (
        <select
          aria-label={`Role of ${c.row.original.email}`}
          value={c.getValue()}
          onChange={(e) => update(c.row.original, { role: e.target.value as Role })}
        >
          <option value="admin">Admin</option>
          <option value="viewer">Viewer</option>
        </select>
      ),
    }),
    col.accessor("active", { header: "Status", cell: (c) => (c.getValue() ? "Active" : "Deactivated") }),
    col.accessor("lastLoginAt", { header: "Last login", cell: (c) => moment(c.getValue()) }),
    col.display({
      id: "actions",
      header: () => <span className="sr">Actions</span>,
      cell: (c) =>
        c.row.original.active ? (
          <Confirm
            label={<>Deactivate<span className="sr"> {c.row.original.email}</span></>}
            question={`Deactivate ${c.row.original.email}? Their sessions end at once.`}
            confirm="Deactivate"
            onConfirm={() => update(c.row.original, { active: false })}
          />
        ) : (
          <button type="button" className="secondary" onClick={() => update(c.row.original, { active: true })}>
            Reactivate<span className="sr"> {c.row.original.email}</span>
          </button>
        ),
    }),
  ];

  return (
    <>
      <h2>Team</h2>
      {staff.isError && <QueryProblem error={staff.error} />}
      {failure && <Problem {...failure} />}
      <DataTable data={staff.data ?? []} columns={columns} label="Team" />
      <AddStaff />
    </>
  );
}

function AddStaff() {
  const queries = useQueryClient();
  const [form, setForm] = useState({ name: "", email: "", password: "", role: "viewer" as Role });
  const [failure, setFailure] = useState<Outcome>(null);
  const [added, setAdded] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setFailure(null);
    setAdded(null);
    const { data, error, response } = await api.POST("/partner/staff", { body: form });
    if (!data) return setFailure({ error, response });
    setAdded(data.data.email);
    setForm({ name: "", email: "", password: "", role: "viewer" });
    await queries.invalidateQueries({ queryKey: ["staff"] });
  }
  return (
    <details className="panel">
      <summary>Add a team member</summary>
      <form className="filters" onSubmit={submit}>
        <label>
          Name
          <input required maxLength={200} value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </label>
        <label>
          Email
          <input type="email" required value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />
        </label>
        <label>
          First password
          <input
            type="password"
            required
            minLength={8}
            autoComplete="new-password"
            value={form.password}
            onChange={(e) => setForm({ ...form, password: e.target.value })}
          />
        </label>
        <label>
          Role
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
            <option value="viewer">Viewer (read only)</option>
            <option value="admin">Admin</option>
          </select>
        </label>
        <button type="submit">Add</button>
      </form>
      {added && <p role="status">{added} can now sign in.</p>}
      {failure && <Problem {...failure} />}
    </details>
  );
}

function KeysPanel() {
  const { clientId } = useFrame();
  const kept = useApiKey(clientId);
  const queries = useQueryClient();
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ key: string; name: string } | null>(null);
  const [failure, setFailure] = useState<Outcome>(null);
  const keys = useQuery({
    queryKey: ["api-keys"],
    queryFn: async () => {
      return (await dataOf(api.GET("/partner/api-keys"))).apiKeys;
    },
  });
  async function create(e: FormEvent) {
    e.preventDefault();
    setFailure(null);
    const { data, error, response } = await api.POST("/partner/api-keys", { body: { name } });
    if (!data) return setFailure({ error, response });
    setCreated({ key: data.data.key, name: data.data.name });
    setName("");
    await queries.invalidateQueries({ queryKey: ["api-keys"] });
  }
  async function revoke(k: Key) {
    setFailure(null);
    const { error, response } = await api.DELETE("/partner/api-keys/{id}", { params: { path: { id: k.id } } });
    if (!response.ok) setFailure({ error, response });
    if (kept?.startsWith(k.prefix)) keepApiKey(clientId, null);
    await queries.invalidateQueries({ queryKey: ["api-keys"] });
  }

  const col = createColumnHelper<Key>();
  const columns = [
    col.accessor("name", { header: "Name" }),
    col.accessor("prefix", { header: "Key", cell: (c) => <code>{c.getValue()}…</code> }),
    col.accessor("createdAt", { header: "Created", cell: (c) => day(c.getValue()) }),
    col.accessor("lastUsedAt", { header: "Last used", cell: (c) => moment(c.getValue()) }),
    col.accessor("revoked", { header: "Status", cell: (c) => (c.getValue() ? `Revoked ${day(c.row.original.revokedAt)}` : "Active") }),
    col.display({
      id: "actions",
      header: () => <span className="sr">Actions</span>,
      cell: (c) =>
        c.row.original.revoked ? null : (
          <Confirm
            label={<>Revoke<span className="sr"> key {c.row.original.name}</span></>}
            question={`Revoke the key “${c.row.original.name}”? Apps using it stop working at once.`}
            confirm="Revoke key"
            onConfirm={() => revoke(c.row.original)}
          />
        ),
    }),
  ];

  return (
    <>
      <h2>API keys</h2>
      <p className="muted">The app sends a client API key with every request; the voucher screens use one too.</p>
      {keys.isError && <QueryProblem error={keys.error} />}
      {failure && <Problem {...failure} />}
      <DataTable data={keys.data ?? []} columns={columns} label="API keys" />
      <form className="filters panel" onSubmit={create}>
        <label>
          New key name
          <input required maxLength={100} value={name} placeholder="e.g. iOS app" onChange={(e) => setName(e.target.value)} />
        </label>
        <button type="submit">Create key</button>
      </form>
      {created && (
        <div className="panel" role="status">
          <p>
            The key “{created.name}” is shown only now: copy it into your app's configuration.
          </p>
          <label>
            New key
            <input readOnly value={created.key} data-testid="new-api-key" onFocus={(e) => e.target.select()} />
          </label>
          <div className="actions">
            <button type="button" className="secondary" onClick={() => navigator.clipboard.writeText(created.key).catch(() => undefined)}>
              Copy key
            </button>
            <button type="button" className="secondary" disabled={kept === created.key} onClick={() => keepApiKey(clientId, created.key)}>
              {kept === created.key ? "Kept in this browser" : "Use it for vouchers in this browser"}
            </button>
          </div>
        </div>
      )}
    </>
  );
}
