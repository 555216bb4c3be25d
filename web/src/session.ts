import { useSyncExternalStore } from "react";
import { getAccessToken, onAuthChange } from "./api/client";

/** The in-memory access token (null when signed out), re-rendering on change. */
export function useAccessToken() {
  return useSyncExternalStore(
    (cb) => {
      const off = onAuthChange(cb);
      return () => {
        off();
      };
    },
    getAccessToken,
  );
}
