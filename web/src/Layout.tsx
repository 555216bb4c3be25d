import { useEffect, useState } from "react";
import { NavLink, Outlet, useNavigate } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { api, refreshSession, setAccessToken } from "./api/client";
import { useAccessToken } from "./session";
import type { Frame } from "./ui";

const NAV: [string, string][] = [
  ["/", "Dashboard"],
  ["/analytics", "Analytics"],
  ["/members", "Members"],
  ["/vouchers", "Vouchers"],
  ["/billing", "Billing"],
  ["/exports", "Exports"],
  ["/content", "Content"],
  ["/affiliate", "Products"],
];

/** The signed-in frame: navigation, who is signed in, logout. A reload restores the session from
 *  the refresh cookie before anything is shown. */
export function Layout() {
  const token = useAccessToken();
  const navigate = useNavigate();
  const [restoring, setRestoring] = useState(token === null);

  useEffect(() => {
    if (token !== null) return;
    refreshSession().then((ok) => {
      setRestoring(false);
      if (!ok) navigate("/login", { replace: true });
    });
  }, [token, navigate]);

  const me = useQuery({
    queryKey: ["me"],
    enabled: token !== null,
    queryFn: async () => {
      const { data } = await api.GET("/partner-auth/me");
      if (!data) throw new Error("no account");
      return data.data;
    },
  });

  if (restoring || token === null) return <p className="centered">Loading…</p>;
  if (!me.data) return me.isError ? <p role="alert">The portal could not load your account.</p> : <p className="centered">Loading…</p>;
  const frame: Frame = { admin: me.data.role === "admin", timezone: me.data.client.timezone, clientId: me.data.client.id };
  const admin = frame.admin;

  async function logout() {
    await fetch("/partner-auth/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: "{}",
    }).catch(() => undefined);
    setAccessToken(null);
    navigate("/login", { replace: true });
  }

  return (
    <div className="frame">
      <header className="top">
        <strong>{me.data.client.name}</strong>
        <span className="who">
          {`${me.data.name} (${me.data.role})`}
          <button type="button" onClick={logout}>
            Log out
          </button>
        </span>
      </header>
      <nav aria-label="Main">
        <ul>
          {[...NAV, ...(admin ? ([["/audit-log", "Audit log"], ["/team", "Team & API keys"]] as [string, string][]) : [])].map(
            ([to, label]) => (
              <li key={to}>
                <NavLink to={to} end={to === "/"}>
                  {label}
                </NavLink>
              </li>
            ),
          )}
        </ul>
      </nav>
      <main>
        <Outlet context={frame} />
      </main>
    </div>
  );
}
