// The client API key the voucher screens need (the seed's rule: voucher routes take the partner's
// X-API-Key as well as a staff token). It is the key the partner's app carries, not a login: an
// admin's newly created key can be kept in this browser (localStorage, per partner), other staff
// enter it once. It is only ever sent to this origin, in the X-API-Key header of voucher requests.
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();
const slot = (clientId: string) => `portal.apiKey.${clientId}`;

export function keepApiKey(clientId: string, key: string | null) {
  if (key) localStorage.setItem(slot(clientId), key);
  else localStorage.removeItem(slot(clientId));
  listeners.forEach((l) => l());
}

export function useApiKey(clientId: string): string | null {
  return useSyncExternalStore(
    (cb) => {
      listeners.add(cb);
      return () => {
        listeners.delete(cb);
      };
    },
    () => localStorage.getItem(slot(clientId)),
  );
}
