import { lazy, StrictMode, Suspense, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createBrowserRouter, Link, RouterProvider } from "react-router";
import "./index.css";
import { Layout } from "./Layout";
import { Login } from "./screens/Login";
import { Dashboard } from "./screens/Dashboard";

// The dashboard (the landing page, small without its chart) is in the main bundle: behind a lazy
// boundary React would hold its first paint back by up to 300 ms. Every other screen is its own
// chunk, and no screen's numbers wait for the chart or table code.
const Members = lazy(() => import("./screens/Members").then((m) => ({ default: m.Members })));
const Billing = lazy(() => import("./screens/Billing").then((m) => ({ default: m.Billing })));
const MemberDetail = lazy(() => import("./screens/Members").then((m) => ({ default: m.MemberDetail })));
const Analytics = lazy(() => import("./screens/Analytics").then((m) => ({ default: m.Analytics })));
const Vouchers = lazy(() => import("./screens/Vouchers").then((m) => ({ default: m.Vouchers })));
const Exports = lazy(() => import("./screens/Exports").then((m) => ({ default: m.Exports })));
const Content = lazy(() => import("./screens/Content").then((m) => ({ default: m.Content })));
const Products = lazy(() => import("./screens/Products").then((m) => ({ default: m.Products })));
const AuditLog = lazy(() => import("./screens/AuditLog").then((m) => ({ default: m.AuditLog })));
const Team = lazy(() => import("./screens/Team").then((m) => ({ default: m.Team })));

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no such page in the portal. <Link to="/">Go to the dashboard</Link>.
      </p>
    </section>
  );
}

function screen(node: ReactNode) {
  return <Suspense fallback={<p>Loading…</p>}>{node}</Suspense>;
}

const queries = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false, staleTime: 30_000 } },
});

const router = createBrowserRouter([
  { path: "/login", element: <Login /> },
  {
    path: "/",
    element: <Layout />,
    children: [
      { index: true, element: <Dashboard /> },
      { path: "members", element: screen(<Members />) },
      { path: "members/:id", element: screen(<MemberDetail />) },
      { path: "billing", element: screen(<Billing />) },
      { path: "analytics", element: screen(<Analytics />) },
      { path: "vouchers", element: screen(<Vouchers />) },
      { path: "exports", element: screen(<Exports />) },
      { path: "content", element: screen(<Content />) },
      { path: "affiliate", element: screen(<Products />) },
      { path: "audit-log", element: screen(<AuditLog />) },
      { path: "team", element: screen(<Team />) },
      { path: "*", element: <NotFound /> },
    ],
  },
]);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queries}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);
