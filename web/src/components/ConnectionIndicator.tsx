// Connected (over the WebSocket, or over HTTP when it is blocked), connecting,
// reconnecting in N s (counting down), or resyncing.
import { useEffect, useState } from "react";
import type { ConnectionState } from "agent-stream";

export function ConnectionIndicator(props: { connection: ConnectionState; resyncing: boolean }) {
  const { connection, resyncing } = props;
  const now = useNow(connection.kind === "reconnecting");
  let label: string;
  let tone: string;
  if (connection.kind === "reconnecting") {
    label = `Reconnecting in ${Math.max(0, Math.ceil((connection.retryAt - now) / 1000))} s`;
    tone = "warn";
  } else if (connection.kind === "open" && resyncing) {
    label = "Resyncing";
    tone = "warn";
  } else if (connection.kind === "open") {
    label = connection.via === "sse" ? "Connected (HTTP)" : "Connected";
    tone = "ok";
  } else if (connection.kind === "connecting") {
    label = "Connecting";
    tone = "warn";
  } else {
    label = "Offline";
    tone = "bad";
  }
  return (
    <span
      className={`connection ${tone}`}
      role="status"
      aria-live="polite"
      data-state={resyncing ? "resyncing" : connection.kind}
      data-via={connection.kind === "open" ? connection.via : undefined}
    >
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

/** The clock, ticking while `ticking` (for the countdown). */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!ticking) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}
