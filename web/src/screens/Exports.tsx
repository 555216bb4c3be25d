import { useState } from "react";
import { useSearchParams } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import type { components } from "../api/schema";
import { Pager } from "../DataTable";
import { downloadExport, moment, Problem, type Outcome, dataOf, QueryProblem } from "../ui";

type Job = components["schemas"]["portal_api.routes.exports.ExportStatus"];

const KINDS: Record<string, string> = { vouchers: "Vouchers", members: "Members", billing: "Billing" };

function expired(j: Job) {
  return j.status === "completed" && !j.downloadUrl;
}

/** Every export of the partner, newest first, polled every second while any is still running. */
export function Exports() {
  const [params, setParams] = useSearchParams();
  const page = Math.max(1, Number(params.get("page") ?? "1") || 1);
  const highlight = params.get("job");
  const [failure, setFailure] = useState<Outcome>(null);

  const jobs = useQuery({
    queryKey: ["exports", page],
    placeholderData: keepPreviousData,
    queryFn: async () => {
      return dataOf(api.GET("/partner/exports", { params: { query: { page, limit: 20 } } }));
    },
    refetchInterval: (q) =>
      q.state.data?.exports.some((j) => j.status === "queued" || j.status === "running") ? 1000 : false,
  });
  const pages = Math.max(1, jobs.data?.pagination.totalPages ?? 1);

  return (
    <section>
      <h1>Exports</h1>
      <p className="muted">
        Start an export from Members, Vouchers or Billing. Files can be downloaded until they expire.
      </p>
      {jobs.isError && <QueryProblem error={jobs.error} />}
      {failure && <Problem {...failure} />}
      {jobs.data?.exports.length === 0 && <p>No exports yet.</p>}
      <ul className="jobs">
        {(jobs.data?.exports ?? []).map((j) => (
          <li key={j.jobId} className={j.jobId === highlight ? "job current" : "job"} data-testid={`export-${j.jobId}`} data-status={j.status}>
            <div>
              <strong>{KINDS[j.kind] ?? j.kind}</strong> <span className="muted">{j.fileName}</span>
              <div className="muted">started {moment(j.createdAt)}</div>
            </div>
            <Progress job={j} />
            <div>
              {j.status === "completed" && j.downloadUrl && (
                <button
                  type="button"
                  onClick={async () => {
                    setFailure(await downloadExport(j.jobId, j.fileName));
                  }}
                >
                  Download<span className="sr"> {j.fileName}</span>
                </button>
              )}
              {expired(j) && <span className="badge expired">Expired</span>}
              {j.status === "failed" && <span className="badge revoked">Failed</span>}
            </div>
          </li>
        ))}
      </ul>
      <Pager page={page} pages={pages} onPage={(n) => setParams({ page: String(n) })} />
    </section>
  );
}

function Progress({ job }: { job: Job }) {
  const label = `${KINDS[job.kind] ?? job.kind} export progress`;
  if (job.status === "failed") return (
      <p className="error">
        {job.error ?? "The export failed"} — start it again from its screen.
      </p>
    );
  if (job.status === "queued") return <p className="muted">Waiting to start…</p>;
  const total = job.rowsTotal ?? undefined;
  const text = `${job.rowsWritten}${total !== undefined ? ` of ${total}` : ""} rows`;
  return (
    <div className="progress">
      <progress aria-label={label} value={job.status === "completed" ? 1 : job.rowsWritten} max={job.status === "completed" ? 1 : total} />
      <span data-testid="export-rows">{text}</span>
      {job.status === "completed" && job.expiresAt && !expired(job) && (
        <span className="muted"> · available until {moment(job.expiresAt)}</span>
      )}
    </div>
  );
}
