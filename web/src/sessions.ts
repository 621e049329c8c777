// The sidebar's session list: `GET /v1/sessions`, fetched once, again after
// every change this page makes, when the running map names a session the
// list lacks (a run started elsewhere created it), and when a run ends (its
// cost is in the list); other running changes need no fetch, since the
// sidebar reads the running map itself.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { SessionSummary } from "agent-stream";
import { useRunningSessions, useStreamClient } from "agent-stream/react";

export interface SessionList {
  sessions: SessionSummary[];
  loaded: boolean;
  error: string | null;
  refresh: () => Promise<void>;
}

export function useSessionList(): SessionList {
  const client = useStreamClient();
  const running = useRunningSessions();
  const [sessions, setSessions] = useState<SessionSummary[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const refresh = useCallback(async () => {
    try {
      setSessions(await client.listSessions());
      setError(null);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setLoaded(true);
    }
  }, [client]);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  const unlisted = useMemo(() => {
    const listed = new Set(sessions.map((session) => session.session_id));
    return Object.keys(running)
      .filter((id) => !listed.has(id))
      .sort()
      .join("\n");
  }, [sessions, running]);
  useEffect(() => {
    if (unlisted) void refresh();
  }, [refresh, unlisted]);
  const runningIds = Object.keys(running).sort().join("\n");
  const previous = useRef(runningIds);
  useEffect(() => {
    const ended = previous.current.split("\n").some((id) => id && !runningIds.split("\n").includes(id));
    previous.current = runningIds;
    if (ended) void refresh();
  }, [refresh, runningIds]);
  return { sessions, loaded, error, refresh };
}
