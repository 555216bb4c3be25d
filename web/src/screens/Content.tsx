import { useEffect, useMemo, useState } from "react";
import { useSearchParams } from "react-router";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/client";
import { Problem, useFrame, type Outcome, dataOf, QueryProblem } from "../ui";

const PAGES: [string, string][] = [
  ["st_aboutus", "About"],
  ["st_privacypolicy", "Privacy"],
];

function useSettled<T>(value: T, ms: number) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return settled;
}

/** The app's About and Privacy pages: an HTML editor beside a live preview of exactly what the app
 *  will show (the API sanitizes the draft as a save would, without saving it). */
export function Content() {
  const { admin } = useFrame();
  const queries = useQueryClient();
  const [params, setParams] = useSearchParams();
  const key = PAGES.some(([k]) => k === params.get("page")) ? params.get("page")! : PAGES[0][0];
  const label = PAGES.find(([k]) => k === key)![1];
  const stored = useQuery({
    queryKey: ["strings"],
    queryFn: async () => {
      return dataOf(api.GET("/partner/strings"));
    },
  });
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const draft = drafts[key] ?? stored.data?.[key] ?? "";
  const settled = useSettled(draft, 300);
  const [failure, setFailure] = useState<Outcome>(null);
  const [saved, setSaved] = useState(false);

  const preview = useQuery({
    queryKey: ["strings", "preview", key, settled],
    enabled: admin && stored.isSuccess,
    placeholderData: keepPreviousData,
    queryFn: async () => {
      const sanitized = await dataOf(api.POST("/partner/strings/preview", { body: { [key]: settled } }));
      return sanitized[key] ?? "";
    },
  });
  // Viewers read what is stored (sanitized when it was saved).
  const shown = admin ? (preview.data ?? "") : (stored.data?.[key] ?? "");
  const missingAlt = useMemo(
    () => new DOMParser().parseFromString(shown, "text/html").querySelectorAll("img:not([alt])").length,
    [shown],
  );
  const dirty = drafts[key] !== undefined && drafts[key] !== (stored.data?.[key] ?? "");

  async function save() {
    setFailure(null);
    setSaved(false);
    const { data, error, response } = await api.PUT("/partner/strings", { body: { [key]: draft } });
    if (!data) return setFailure({ error, response });
    queries.setQueryData(["strings"], data.data);
    setDrafts((d) => {
      const { [key]: _, ...rest } = d;
      return rest;
    });
    setSaved(true);
  }

  return (
    <section>
      <h1>Content</h1>
      <div role="tablist" aria-label="Page" className="segmented">
        {PAGES.map(([k, l]) => (
          <button key={k} type="button" role="tab" aria-selected={k === key} onClick={() => setParams({ page: k })}>
            {l}
          </button>
        ))}
      </div>
      {stored.isError && <QueryProblem error={stored.error} />}
      <div className={admin ? "two" : ""}>
        {admin && (
          <div>
            <label className="stack">
              {label} page (HTML)
              <textarea
                className="editor"
                rows={18}
                value={draft}
                spellCheck={false}
                onChange={(e) => {
                  setSaved(false);
                  setDrafts((d) => ({ ...d, [key]: e.target.value }));
                }}
              />
            </label>
            <div className="actions">
              <button type="button" onClick={save} disabled={!dirty}>
                Save {label}
              </button>
              {saved && <span role="status">Saved.</span>}
              {dirty && <span className="muted">Unsaved changes</span>}
            </div>
            {failure && <Problem {...failure} />}
            {preview.isError && <QueryProblem error={preview.error} />}
          </div>
        )}
        <div>
          <h2>{admin ? "Preview, as the app shows it" : `${label} page, as the app shows it`}</h2>
          {missingAlt > 0 && (
            <p className="hint" data-testid="alt-hint">
              {missingAlt === 1 ? "1 image has" : `${missingAlt} images have`} no alt text: screen readers in the app
              cannot describe {missingAlt === 1 ? "it" : "them"}. Add <code>alt="…"</code> to each image.
            </p>
          )}
          {/* Sanitized by the API (ammonia): no scripts, styles, handlers or javascript: URLs. */}
          <article className="preview" data-testid="content-preview" dangerouslySetInnerHTML={{ __html: shown }} />
        </div>
      </div>
    </section>
  );
}
