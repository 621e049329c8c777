// React hooks over a StreamClient, built on useSyncExternalStore. The client
// notifies at most once per animation frame, so a burst of frames is one render.

import { createContext, createElement, useCallback, useContext, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import type { ConnectionState, SessionSnapshot, StreamClient } from "./transport.js";
import type { Message, RunningEntry } from "./wasm/stream_wasm.js";

const ClientContext = createContext<StreamClient | null>(null);

/** Makes a StreamClient available to the hooks below it. */
export function StreamProvider(props: { client: StreamClient; children?: ReactNode }): ReactNode {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

/** The StreamClient of the nearest StreamProvider. */
export function useStreamClient(): StreamClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("useStreamClient needs a <StreamProvider client={...}> above it");
  return client;
}

/** What `useSessionStream` returns. */
export interface SessionStream {
  messages: Message[];
  /** `running` while the session has a run going. */
  status: "idle" | "running";
  connected: boolean;
  connection: ConnectionState;
  resyncing: boolean;
  error: string | null;
  name: string | null;
  send: (content: string, clientMessageId?: string) => Promise<string>;
  abort: () => Promise<void>;
}

/** Follows one session: its messages, run status and connection. */
export function useSessionStream(sessionId: string): SessionStream {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watch(sessionId, notify), [client, sessionId]);
  const read = () => client.snapshot(sessionId);
  // The same read serves server rendering, so the hooks also work under SSR.
  const snapshot: SessionSnapshot = useSyncExternalStore(subscribe, read, read);
  const connection = useConnection();
  const send = useCallback(
    (content: string, clientMessageId?: string) => client.send(sessionId, content, clientMessageId),
    [client, sessionId],
  );
  const abort = useCallback(() => client.abort(sessionId), [client, sessionId]);
  return {
    messages: snapshot.messages,
    status: snapshot.run ? "running" : "idle",
    connected: connection.kind === "open",
    connection,
    resyncing: snapshot.resyncing,
    error: snapshot.error,
    name: snapshot.name,
    send,
    abort,
  };
}

/** The running sessions by id, right at once after a reload (REST) and live after (`watch_running`). */
export function useRunningSessions(): Record<string, RunningEntry> {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.onRunning(notify), [client]);
  const read = () => client.runningSessions();
  return useSyncExternalStore(subscribe, read, read);
}

/** The connection state, for an indicator. */
export function useConnection(): ConnectionState {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.onConnection(notify), [client]);
  const read = () => client.connection();
  return useSyncExternalStore(subscribe, read, read);
}
