// React hooks over a StreamClient, built on useSyncExternalStore. The client
// notifies at most once per animation frame, so a burst of frames is one render.
// `useSessionStream` gives a session with its whole message list, for simple
// apps; `useSession`, `useMessageIds` and `useMessage` let a long chat render
// only what changed: a streaming delta re-renders the one message it touched.

import { createContext, createElement, useCallback, useContext, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import type { ConnectionState, SessionInfo, SessionSnapshot, StreamClient } from "./transport.js";
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

/** What `useSession` returns: a session apart from its messages. */
export interface SessionHandle {
  /** `running` while the session has a run going. */
  status: "idle" | "running";
  model: string | null;
  /** What the session has cost in US dollars, when its provider said. */
  costUsd: number | null;
  connected: boolean;
  connection: ConnectionState;
  resyncing: boolean;
  error: string | null;
  name: string | null;
  send: (content: string, clientMessageId?: string) => Promise<string>;
  abort: () => Promise<void>;
}

/** What `useSessionStream` returns. */
export interface SessionStream extends SessionHandle {
  messages: Message[];
}

/** Follows one session apart from its messages: its run status, name and
 *  connection. Re-renders when one of those changes, not on every delta. */
export function useSession(sessionId: string): SessionHandle {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watch(sessionId, notify), [client, sessionId]);
  const read = () => client.session(sessionId);
  // The same read serves server rendering, so the hooks also work under SSR.
  const info: SessionInfo = useSyncExternalStore(subscribe, read, read);
  return useHandle(client, sessionId, info);
}

/** Follows one session: its messages, run status and connection. */
export function useSessionStream(sessionId: string): SessionStream {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watch(sessionId, notify), [client, sessionId]);
  const read = () => client.snapshot(sessionId);
  const snapshot: SessionSnapshot = useSyncExternalStore(subscribe, read, read);
  return { ...useHandle(client, sessionId, snapshot), messages: snapshot.messages };
}

/** A session's message ids in order; re-renders only when one is added, removed or moved. */
export function useMessageIds(sessionId: string): string[] {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watchIds(sessionId, notify), [client, sessionId]);
  const read = () => client.messageIds(sessionId);
  return useSyncExternalStore(subscribe, read, read);
}

/** A session's top-level message ids (those not shown inside a tool call's
 *  card), in order; re-renders only when they change. */
export function useTopLevelIds(sessionId: string): string[] {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watchTop(sessionId, notify), [client, sessionId]);
  const read = () => client.topLevelIds(sessionId);
  return useSyncExternalStore(subscribe, read, read);
}

/** The tool message answering a call; re-renders when it comes or changes. */
export function useToolAnswer(sessionId: string, callId: string): Message | undefined {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watchCall(sessionId, callId, notify), [client, sessionId, callId]);
  const read = () => client.toolAnswerId(sessionId, callId) ?? "";
  return useMessage(sessionId, useSyncExternalStore(subscribe, read, read));
}

/** The ids of the messages written inside a call (a subagent's), in order. */
export function useToolChildIds(sessionId: string, callId: string): string[] {
  const client = useStreamClient();
  const subscribe = useCallback((notify: () => void) => client.watchCall(sessionId, callId, notify), [client, sessionId, callId]);
  const read = () => client.toolChildIds(sessionId, callId);
  return useSyncExternalStore(subscribe, read, read);
}

/** One message; re-renders only when it changes. */
export function useMessage(sessionId: string, messageId: string): Message | undefined {
  const client = useStreamClient();
  const subscribe = useCallback(
    (notify: () => void) => client.watchMessage(sessionId, messageId, notify),
    [client, sessionId, messageId],
  );
  const read = () => client.message(sessionId, messageId);
  return useSyncExternalStore(subscribe, read, read);
}

function useHandle(client: StreamClient, sessionId: string, info: SessionInfo): SessionHandle {
  const connection = useConnection();
  const send = useCallback(
    (content: string, clientMessageId?: string) => client.send(sessionId, content, clientMessageId),
    [client, sessionId],
  );
  const abort = useCallback(() => client.abort(sessionId), [client, sessionId]);
  return {
    status: info.run ? "running" : "idle",
    model: info.model,
    costUsd: info.cost_usd,
    connected: connection.kind === "open",
    connection,
    resyncing: info.resyncing,
    error: info.error,
    name: info.name,
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
