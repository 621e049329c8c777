// The selected session lives in the URL hash (`#/s/<id>`), so a reload or a
// second tab opens the same session.
import { useSyncExternalStore } from "react";

function read(): string | null {
  const match = /^#\/s\/(.+)$/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function subscribe(notify: () => void): () => void {
  window.addEventListener("hashchange", notify);
  return () => window.removeEventListener("hashchange", notify);
}

/** The session id in the URL, or null. */
export function useSelectedSession(): string | null {
  return useSyncExternalStore(subscribe, read, () => null);
}

/** Opens a session (or none). */
export function selectSession(sessionId: string | null): void {
  window.location.hash = sessionId ? `#/s/${encodeURIComponent(sessionId)}` : "";
}
