// The sidebar's session list: `GET /v1/sessions`, fetched again after every
// change this page makes and whenever the running map changes (a run started
// elsewhere may have created a session).
import { useCallback, useEffect, useState } from "react";
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
  }, [refresh, running]);
  return { sessions, loaded, error, refresh };
}
