// The session list: create, rename, delete; an "All" and a "Running" view
// with a count; a loader on every session with a run in progress; a filter.
import { useEffect, useMemo, useState } from "react";
import type { RunningEntry, SessionSummary } from "agent-stream";
import { useRunningSessions, useStreamClient } from "agent-stream/react";
import { selectSession } from "../route";
import { formatCost } from "./MessageView";
import { useProviders } from "../providers";
import type { SessionList } from "../sessions";

type View = "all" | "running";

export function Sidebar(props: { list: SessionList; selected: string | null; onCreate: (provider?: string) => Promise<void> }) {
  const { list, selected } = props;
  const providers = useProviders();
  const [provider, setProvider] = useState<string>("");
  useEffect(() => {
    if (!provider) setProvider(providers.find((entry) => entry.default)?.name ?? "");
  }, [providers, provider]);
  const running = useRunningSessions();
  const [view, setView] = useState<View>("all");
  const [filter, setFilter] = useState("");
  const runningCount = Object.keys(running).length;
  const shown = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return list.sessions.filter(
      (session) =>
        (view === "all" || session.session_id in running) &&
        (!needle || displayName(session).toLowerCase().includes(needle)),
    );
  }, [list.sessions, running, view, filter]);

  return (
    <nav className="sidebar" aria-label="Sessions">
      <div className="sidebar-head">
        <h2>Sessions</h2>
        <button type="button" className="primary" onClick={() => void props.onCreate(provider || undefined)}>
          New session
        </button>
      </div>
      {providers.length > 1 && (
        <label className="provider-pick">
          <span>Agent</span>
          <select aria-label="Provider for new sessions" value={provider} onChange={(e) => setProvider(e.target.value)}>
            {providers.map((entry) => (
              <option key={entry.name} value={entry.name}>
                {entry.name}
                {entry.model ? ` (${entry.model})` : ""}
              </option>
            ))}
          </select>
        </label>
      )}
      <div className="tabs" role="tablist" aria-label="Session views">
        <ViewTab view="all" current={view} onSelect={setView} label="All" />
        <ViewTab view="running" current={view} onSelect={setView} label={`Running ${runningCount}`} />
      </div>
      <label className="filter">
        <span className="visually-hidden">Filter sessions</span>
        <input type="search" placeholder="Filter sessions" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </label>
      {list.error && <p className="notice error">Could not load sessions: {list.error}</p>}
      <ul className="session-list" role="tabpanel" aria-label={view === "all" ? "All sessions" : "Running sessions"}>
        {shown.map((session) => (
          <SessionItem
            key={session.session_id}
            session={session}
            active={session.session_id === selected}
            processing={session.session_id in running}
            notice={noticeOf(running[session.session_id])}
            onChanged={list.refresh}
          />
        ))}
      </ul>
      {list.loaded && shown.length === 0 && <p className="notice">{emptyText(view, filter, list.sessions.length)}</p>}
    </nav>
  );
}

function ViewTab(props: { view: View; current: View; label: string; onSelect: (view: View) => void }) {
  const active = props.view === props.current;
  return (
    <button type="button" role="tab" aria-selected={active} className={active ? "tab active" : "tab"} onClick={() => props.onSelect(props.view)}>
      {props.label}
    </button>
  );
}

/** The server's notice on a running session's run (a silent provider). */
function noticeOf(entry: RunningEntry | undefined): string | undefined {
  return entry?.source === "run" ? entry.notice : undefined;
}

function SessionItem(props: {
  session: SessionSummary;
  active: boolean;
  processing: boolean;
  notice: string | undefined;
  onChanged: () => Promise<void>;
}) {
  const { session } = props;
  const client = useStreamClient();
  const [renaming, setRenaming] = useState(false);
  const [draft, setDraft] = useState("");
  const name = displayName(session);

  const commitRename = async () => {
    setRenaming(false);
    if (draft.trim() && draft.trim() !== session.name) {
      await client.renameSession(session.session_id, draft.trim());
      await props.onChanged();
    }
  };
  const remove = async () => {
    await client.deleteSession(session.session_id);
    if (props.active) selectSession(null);
    await props.onChanged();
  };

  return (
    <li className={props.active ? "session active" : "session"} data-session-id={session.session_id}>
      {renaming ? (
        <input
          className="rename"
          aria-label={`New name for ${name}`}
          autoFocus
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onBlur={() => void commitRename()}
          onKeyDown={(e) => {
            if (e.key === "Enter") void commitRename();
            if (e.key === "Escape") setRenaming(false);
          }}
        />
      ) : (
        <button type="button" className="session-open" aria-current={props.active ? "page" : undefined} onClick={() => selectSession(session.session_id)}>
          {props.processing && <span className="spinner" role="img" aria-label="processing" />}
          <span className="session-name">{name}</span>
          {props.notice && (
            <span className="stall" role="img" aria-label={props.notice} title={props.notice}>
              ⚠
            </span>
          )}
          {session.cost_usd != null && <span className="session-cost">{formatCost(session.cost_usd)}</span>}
        </button>
      )}
      <button
        type="button"
        className="icon"
        aria-label={`Rename ${name}`}
        title="Rename"
        onClick={() => {
          setDraft(session.name ?? "");
          setRenaming(true);
        }}
      >
        ✎
      </button>
      <button type="button" className="icon" aria-label={`Delete ${name}`} title="Delete" onClick={() => void remove()}>
        ✕
      </button>
    </li>
  );
}

function displayName(session: SessionSummary): string {
  return session.name ?? session.session_id;
}

function emptyText(view: View, filter: string, total: number): string {
  if (filter.trim()) return "No session matches the filter.";
  if (view === "running") return "Nothing is running.";
  return total === 0 ? "No sessions yet." : "";
}
