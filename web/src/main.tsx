import { lazy, StrictMode, Suspense, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createBrowserRouter, RouterProvider } from "react-router";
import "./index.css";
import { Layout } from "./Layout";
import { Login } from "./screens/Login";
import { NotYet } from "./screens/NotYet";

// Each screen is its own chunk: the login page loads none of the chart or table code.
const Dashboard = lazy(() => import("./screens/Dashboard").then((m) => ({ default: m.Dashboard })));
const Members = lazy(() => import("./screens/Members").then((m) => ({ default: m.Members })));
const Billing = lazy(() => import("./screens/Billing").then((m) => ({ default: m.Billing })));
const MemberDetail = lazy(() => import("./screens/Members").then((m) => ({ default: m.MemberDetail })));

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
      { index: true, element: screen(<Dashboard />) },
      { path: "members", element: screen(<Members />) },
      { path: "members/:id", element: screen(<MemberDetail />) },
      { path: "billing", element: screen(<Billing />) },
      ...["analytics", "vouchers", "exports", "content", "affiliate", "audit-log", "team"].map(
        (path) => ({ path: `${path}/*`, element: <NotYet /> }),
      ),
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
