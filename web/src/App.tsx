// The page: the session sidebar beside the chat pane of the selected session.
import { useCallback } from "react";
import { useStreamClient } from "agent-stream/react";
import { ChatPane } from "./components/ChatPane";
import { Sidebar } from "./components/Sidebar";
import { selectSession, useSelectedSession } from "./route";
import { useSessionList } from "./sessions";

export function App() {
  const client = useStreamClient();
  const selected = useSelectedSession();
  const list = useSessionList();
  const create = useCallback(async (provider?: string) => {
    const created = await client.createSession(undefined, provider);
    await list.refresh();
    selectSession(created.session_id);
  }, [client, list]);
  return (
    <div className="app">
      <Sidebar list={list} selected={selected} onCreate={create} />
      <main className="main">
        {selected ? (
          <ChatPane
            key={selected}
            sessionId={selected}
            provider={list.sessions.find((session) => session.session_id === selected)?.provider ?? null}
            onNamed={list.refresh}
          />
        ) : (
          <div className="empty-state">
            <p>Pick a session, or start a new one.</p>
            <button type="button" className="primary" onClick={() => void create()}>
              New session
            </button>
          </div>
        )}
      </main>
    </div>
  );
}
