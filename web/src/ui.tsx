// Small pieces every screen uses: the signed-in frame's facts, a confirmation dialog, field errors,
// exports that lead to the Exports page, and downloads of files made in the browser.
import { useRef, useState, type ReactNode } from "react";
import { useNavigate, useOutletContext, useSearchParams } from "react-router";
import { api, errorMessage } from "./api/client";

/** What the signed-in frame knows: the role decides which controls a screen shows. */
export type Frame = { admin: boolean; timezone: string; clientId: string };
export function useFrame() {
  return useOutletContext<Frame>();
}

type Failure = { error?: { message?: string; details?: { field: string; message: string }[] | null } };

/** The failure of a request as a person reads it: the message, and each field's problem. */
export function Problem({ error, response }: { error: unknown; response?: Response }) {
  const details = (error as Failure | undefined)?.error?.details ?? [];
  return (
    <div role="alert" className="error">
      <p>{errorMessage(error, response)}</p>
      {details.length > 0 && (
        <ul>
          {details.map((d) => (
            <li key={d.field + d.message}>
              <strong>{d.field}</strong>: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export type Outcome = { error: unknown; response?: Response } | null;

type Answer<T> = { data?: { data: T }; error?: unknown; response: Response };

/** The `data` of a successful answer. A failure is thrown as `{ error, response }`, which a query
 *  keeps as its error and [`QueryProblem`] shows. */
export async function dataOf<T>(answer: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await answer;
  if (!data) throw { error, response };
  return data.data;
}

/** A failed query's error (thrown by [`dataOf`]), as a person reads it. */
export function QueryProblem({ error }: { error: unknown }) {
  return <Problem {...(error as { error: unknown; response?: Response })} />;
}

/** A button that asks first, in a modal dialog (native `<dialog>`: focus and Escape for free). */
export function Confirm({
  label,
  question,
  confirm,
  onConfirm,
  className = "danger",
}: {
  label: ReactNode;
  question: string;
  confirm: string;
  onConfirm: () => void | Promise<void>;
  className?: string;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <button type="button" className={className} onClick={() => dialog.current?.showModal()}>
        {label}
      </button>
      <dialog ref={dialog} aria-label={question}>
        <p>{question}</p>
        <div className="actions">
          <button type="button" className="secondary" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button
            type="button"
            className={className}
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              await onConfirm();
              setBusy(false);
              dialog.current?.close();
            }}
          >
            {confirm}
          </button>
        </div>
      </dialog>
    </>
  );
}

type Queued = { data?: { data: { jobId: string } }; error?: unknown; response: Response };

/** Starting an export leads to the Exports page, where its progress shows. */
export function useStartExport() {
  const navigate = useNavigate();
  const [failure, setFailure] = useState<Outcome>(null);
  async function start(request: () => Promise<Queued>) {
    setFailure(null);
    const { data, error, response } = await request();
    if (data) navigate(`/exports?job=${data.data.jobId}`);
    else setFailure({ error, response });
  }
  return { start, failure };
}

/** Saves text made in the browser as a file. */
export function saveText(fileName: string, text: string, type = "text/csv") {
  saveBlob(fileName, new Blob([text], { type }));
}

export function saveBlob(fileName: string, blob: Blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Downloads a finished export (the download needs the access token, so a plain link won't do). */
export async function downloadExport(jobId: string, fileName: string): Promise<Outcome> {
  const { data, error, response } = await api.GET("/partner/exports/{jobId}/download", {
    params: { path: { jobId } },
    parseAs: "blob",
  });
  if (!data) return { error, response };
  saveBlob(fileName, data as Blob);
  return null;
}

export function day(iso: string | null | undefined) {
  return iso ? new Date(iso).toLocaleDateString() : "—";
}
export function moment(iso: string | null | undefined) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** What a viewer sees on an admin screen instead of a raw 403. */
export function AdminOnly({ title }: { title: string }) {
  return (
    <section>
      <h1>{title}</h1>
      <p role="status">Only admins of your programme can see this page. Ask an admin if you need it.</p>
    </section>
  );
}

/** A list's state in the URL (search, filters, sort, page), so a view can be shared or reloaded.
 *  `set` changes some parameters (an empty value removes one) and goes back to the first page
 *  unless the page itself is what changes. */
export function useListParams(): [URLSearchParams, (changes: Record<string, string>) => void] {
  const [params, setParams] = useSearchParams();
  function set(changes: Record<string, string>) {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!("page" in changes)) next.delete("page");
    setParams(next);
  }
  return [params, set];
}
