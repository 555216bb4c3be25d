import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createBrowserRouter, RouterProvider } from "react-router";
import "./index.css";
import { Layout } from "./Layout";
import { Login } from "./screens/Login";
import { Dashboard } from "./screens/Dashboard";
import { NotYet } from "./screens/NotYet";
import { MemberDetail, Members } from "./screens/Members";

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
      { path: "members", element: <Members /> },
      { path: "members/:id", element: <MemberDetail /> },
      ...["analytics", "vouchers", "billing", "exports", "content", "affiliate", "audit-log", "team"].map(
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
