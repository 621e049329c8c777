// The browser transport: one WebSocket for every session a page follows,
// resume from each engine's cursor on reconnect, heartbeats, backoff, the
// running map, and REST sends with optimistic messages.
//
// It is a small TypeScript module rather than web-sys code: it is I/O glue
// (sockets, timers, fetch) that the platform's own APIs express directly, it
// keeps the .wasm small, and every decision it acts on (what to subscribe
// with, when to resync, how to merge echoes) is made by the Rust engine.

import { ProcessingMap, SessionEngine } from "./wasm/stream_wasm.js";
import type { IngestResult, Message, RunInfo, RunningEntry, RunningList } from "./wasm/stream_wasm.js";

/** The WebSocket constructor to use (the browser's, or e.g. the `ws` package in Node). */
export type WebSocketLike = {
  new (url: string): WebSocketInstance;
};

/** The part of a WebSocket the transport uses. */
export interface WebSocketInstance {
  readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface StreamClientOptions {
  /** Base URL of the server, e.g. `http://localhost:8080`; empty for the page's origin. */
  baseUrl?: string;
  /** Bearer token, when the server requires one. */
  token?: string;
  /** WebSocket implementation; defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketLike;
  /** fetch implementation; defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** First reconnect delay (ms); doubles up to `maxBackoffMs`. Default 1000. */
  backoffMs?: number;
  /** Longest reconnect delay (ms). Default 30000. */
  maxBackoffMs?: number;
  /** Poll period of `GET /v1/sessions/running` while the socket is down (ms). Default 5000. */
  runningPollMs?: number;
}

/** The state of the connection, for an indicator. */
export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "open" }
  | { kind: "reconnecting"; attempt: number; retryAt: number }
  | { kind: "closed" };

/** One entry of `GET /v1/sessions`. */
export interface SessionSummary {
  session_id: string;
  name: string | null;
  created_at: number;
  updated_at: number;
  /** The provider the session was created with; its sends use it. */
  provider: string | null;
  /** What the session has cost in US dollars, when its provider said. */
  cost_usd: number | null;
  running: boolean;
}

/** One entry of `GET /v1/providers`. */
export interface ProviderInfo {
  name: string;
  /** `demo`, `command`, `claude-code`, `codex`, `openai` or `anthropic`. */
  kind: string;
  model?: string;
  /** Whether sends of a session without a provider use this one. */
  default: boolean;
}

/** What a session's subscribers see. */
export interface SessionSnapshot {
  messages: Message[];
  run: RunInfo | null;
  name: string | null;
  /** True while the engine waits for a resubscribe to repair a gap. */
  resyncing: boolean;
  error: string | null;
}

type Listener = () => void;

interface Channel {
  engine: SessionEngine;
  listeners: Set<Listener>;
  users: number;
  snapshot: SessionSnapshot;
  resyncing: boolean;
  error: string | null;
  stallTimer: ReturnType<typeof setTimeout> | null;
}

const OPEN = 1;

/** Calls `flush` at most once per animation frame (or per 16 ms without one). */
function frameScheduler(flush: () => void): () => void {
  let scheduled = false;
  const raf: (callback: () => void) => unknown =
    typeof requestAnimationFrame === "function" ? requestAnimationFrame : (callback) => setTimeout(callback, 16);
  return () => {
    if (scheduled) return;
    scheduled = true;
    raf(() => {
      scheduled = false;
      flush();
    });
  };
}

/** A connection to a stream-server shared by every session of a page. */
export class StreamClient {
  readonly running: ProcessingMap;
  private readonly options: Required<Omit<StreamClientOptions, "token" | "WebSocket" | "fetch">> & StreamClientOptions;
  private readonly channels = new Map<string, Channel>();
  private readonly dirtyChannels = new Set<Channel>();
  private readonly connectionListeners = new Set<Listener>();
  private readonly runningListeners = new Set<Listener>();
  private socket: WebSocketInstance | null = null;
  private state: ConnectionState = { kind: "connecting" };
  private attempt = 0;
  private heartbeatMs = 15000;
  private lastMessageAt = 0;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private runningEntries: Record<string, RunningEntry> = {};
  private closed = false;
  private readonly scheduleFlush = frameScheduler(() => this.flush());

  constructor(options: StreamClientOptions = {}) {
    this.options = { baseUrl: "", backoffMs: 1000, maxBackoffMs: 30000, runningPollMs: 5000, ...options };
    this.running = new ProcessingMap();
    void this.pollRunning();
    this.connect();
  }

  /** The connection state. */
  connection(): ConnectionState {
    return this.state;
  }

  /** Follows connection state changes. */
  onConnection(listener: Listener): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  /** The running sessions (same object while unchanged). */
  runningSessions(): Record<string, RunningEntry> {
    return this.runningEntries;
  }

  /** Follows changes of the running map. */
  onRunning(listener: Listener): () => void {
    this.runningListeners.add(listener);
    return () => this.runningListeners.delete(listener);
  }

  /** Follows a session: subscribes on first use. Returns the unsubscribe. */
  watch(sessionId: string, listener: Listener): () => void {
    const channel = this.channel(sessionId);
    channel.users += 1;
    channel.listeners.add(listener);
    if (channel.users === 1) this.subscribe(channel);
    return () => {
      channel.listeners.delete(listener);
      channel.users -= 1;
      if (channel.users === 0) {
        this.sendFrame({ type: "unsubscribe", channel: sessionId });
        if (channel.stallTimer) clearTimeout(channel.stallTimer);
        this.channels.delete(sessionId);
      }
    };
  }

  /** The session's current state (same object while unchanged). */
  snapshot(sessionId: string): SessionSnapshot {
    return this.channel(sessionId).snapshot;
  }

  /** Sends a user message: shown at once as pending, POSTed, marked failed
   *  if the POST fails; calling again with the same id retries it. */
  async send(sessionId: string, content: string, clientMessageId: string = newClientMessageId()): Promise<string> {
    const channel = this.channel(sessionId);
    const outcome = channel.engine.sendLocal(content, clientMessageId, Date.now());
    this.touch(channel);
    if (outcome === "duplicate") return clientMessageId;
    this.running.markLocal(sessionId, Date.now());
    this.runningChanged();
    try {
      const response = await this.request(`/v1/sessions/${encodeURIComponent(sessionId)}/messages`, "POST", {
        client_message_id: clientMessageId,
        content,
      });
      if (!response.ok) throw new Error(await errorMessage(response));
    } catch (error) {
      channel.engine.markSendFailed(clientMessageId, error instanceof Error ? error.message : String(error));
      this.running.clearLocal(sessionId);
      this.runningChanged();
      this.touch(channel);
    }
    return clientMessageId;
  }

  /** Aborts the session's running run. */
  async abort(sessionId: string): Promise<void> {
    const response = await this.request(`/v1/sessions/${encodeURIComponent(sessionId)}/abort`, "POST");
    // 404: the run ended already, which is what an abort wants.
    if (!response.ok && response.status !== 404) throw new Error(await errorMessage(response));
  }

  /** Every session the server keeps, oldest first. */
  listSessions(): Promise<SessionSummary[]> {
    return this.call<SessionSummary[]>("/v1/sessions", "GET");
  }

  /** Creates a session with a server-chosen id (named "New session" without
   *  `name`); with `provider`, its sends use that provider. */
  createSession(name?: string, provider?: string): Promise<{ session_id: string; name: string; provider: string | null }> {
    return this.call("/v1/sessions", "POST", { ...(name === undefined ? {} : { name }), ...(provider === undefined ? {} : { provider }) });
  }

  /** The providers a session may use (`GET /v1/providers`). */
  listProviders(): Promise<ProviderInfo[]> {
    return this.call<ProviderInfo[]>("/v1/providers", "GET");
  }

  /** Renames a session; its subscribers get a `renamed` frame. */
  async renameSession(sessionId: string, name: string): Promise<void> {
    await this.call(`/v1/sessions/${encodeURIComponent(sessionId)}`, "PATCH", { name });
  }

  /** Deletes a session and its log. */
  async deleteSession(sessionId: string): Promise<void> {
    await this.call(`/v1/sessions/${encodeURIComponent(sessionId)}`, "DELETE");
  }

  /** Closes the socket and stops every timer. */
  close(): void {
    this.closed = true;
    for (const timer of [this.reconnectTimer, this.heartbeatTimer, this.pollTimer]) {
      if (timer) clearTimeout(timer);
    }
    for (const channel of this.channels.values()) {
      if (channel.stallTimer) clearTimeout(channel.stallTimer);
    }
    this.socket?.close(1000, "client closed");
    this.setState({ kind: "closed" });
  }

  private channel(sessionId: string): Channel {
    let channel = this.channels.get(sessionId);
    if (!channel) {
      const engine = new SessionEngine(sessionId);
      channel = {
        engine,
        listeners: new Set(),
        users: 0,
        snapshot: { messages: engine.messages(), run: null, name: null, resyncing: false, error: null },
        resyncing: false,
        error: null,
        stallTimer: null,
      };
      this.channels.set(sessionId, channel);
    }
    return channel;
  }

  private connect(): void {
    if (this.closed) return;
    const WebSocketImpl = this.options.WebSocket ?? (globalThis.WebSocket as unknown as WebSocketLike | undefined);
    if (!WebSocketImpl) throw new Error("no WebSocket implementation: pass options.WebSocket");
    const base = this.options.baseUrl || (typeof location !== "undefined" ? location.origin : "");
    const url = new URL("/v1/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.options.token) url.searchParams.set("token", this.options.token);
    this.setState(this.attempt === 0 ? { kind: "connecting" } : this.state);
    const socket = new WebSocketImpl(url.toString());
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      this.setState({ kind: "open" });
      socket.send(JSON.stringify({ type: "watch_running" }));
      for (const channel of this.channels.values()) {
        if (channel.users > 0) this.subscribe(channel);
      }
      this.startHeartbeat();
    };
    socket.onmessage = (event) => {
      this.lastMessageAt = Date.now();
      if (typeof event.data === "string") this.receive(event.data);
    };
    socket.onerror = () => socket.close();
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.attempt += 1;
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (this.attempt - 1));
    // Jitter spreads reconnects of many clients after a server restart.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.setState({ kind: "reconnecting", attempt: this.attempt, retryAt: Date.now() + delay });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.startPolling();
  }

  private startHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      // Two heartbeats of silence: the link is dead even if the socket has not noticed.
      if (Date.now() - this.lastMessageAt > this.heartbeatMs * 2 + 1000) this.socket?.close(4000, "heartbeat timeout");
    }, Math.max(1000, this.heartbeatMs / 2));
  }

  private startPolling(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      if (this.state.kind === "open") {
        if (this.pollTimer) clearInterval(this.pollTimer);
        this.pollTimer = null;
        return;
      }
      void this.pollRunning();
    }, this.options.runningPollMs);
  }

  /** The REST fallback of `watch_running`. */
  private async pollRunning(): Promise<void> {
    try {
      const response = await this.request("/v1/sessions/running", "GET");
      if (response.ok && this.running.sync(await response.text(), Date.now())) this.runningChanged();
    } catch {
      // The socket path and the next poll cover it.
    }
  }

  /** Subscribes from the engine's cursor (or for a snapshot, when the engine says so). */
  private subscribe(channel: Channel): void {
    if (this.socket?.readyState === OPEN) this.socket.send(channel.engine.subscribeFrame());
  }

  private sendFrame(frame: object): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  /** Routes one WebSocket message: control frames here, the rest to each channel's engine. */
  private receive(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    const frames = (Array.isArray(parsed) ? parsed : [parsed]) as { type?: string; channel?: string }[];
    const byChannel = new Map<string, unknown[]>();
    let routedAll = true;
    for (const frame of frames) {
      if (frame.type === "hello") {
        this.heartbeatMs = Number((frame as { heartbeat_ms?: number }).heartbeat_ms) || this.heartbeatMs;
        routedAll = false;
      } else if (frame.type === "running") {
        if (this.running.sync(frame as unknown as RunningList, Date.now())) this.runningChanged();
        routedAll = false;
      } else if (typeof frame.channel === "string" && this.channels.has(frame.channel)) {
        const list = byChannel.get(frame.channel) ?? [];
        list.push(frame);
        byChannel.set(frame.channel, list);
      } else {
        routedAll = false;
      }
    }
    for (const [sessionId, list] of byChannel) {
      const channel = this.channels.get(sessionId);
      if (!channel) continue;
      // The common case, one channel per message: hand over the text as it came.
      const input = routedAll && byChannel.size === 1 ? text : JSON.stringify(list);
      this.apply(sessionId, channel, channel.engine.ingest(input, Date.now()));
    }
  }

  private apply(sessionId: string, channel: Channel, result: IngestResult): void {
    if (result.runEvents.length > 0) {
      this.running.applyRunEvents(channel.engine);
      this.runningChanged();
    }
    if (result.errors.length > 0) channel.error = result.errors.map((error) => error.message).join("; ");
    if (result.needResync) {
      channel.resyncing = true;
      this.subscribe(channel);
    } else if (result.applied > 0) {
      channel.resyncing = false;
    }
    this.armStallTimer(sessionId, channel);
    const changed = result.changedIds.length > 0 || result.everythingChanged || result.renamed;
    if (changed || result.needResync || result.runEvents.length > 0) {
      this.touch(channel);
    }
  }

  /** Lets the engine give up on a gap that does not fill. */
  private armStallTimer(sessionId: string, channel: Channel): void {
    if (channel.stallTimer) clearTimeout(channel.stallTimer);
    channel.stallTimer = null;
    const deadline = channel.engine.pollTimeout();
    if (deadline === undefined) return;
    channel.stallTimer = setTimeout(() => {
      channel.stallTimer = null;
      if (channel.engine.handleTimeout(Date.now())) {
        channel.resyncing = true;
        this.subscribe(channel);
        this.touch(channel);
      }
      this.armStallTimer(sessionId, channel);
    }, Math.max(0, deadline - Date.now()));
  }

  private touch(channel: Channel): void {
    this.dirtyChannels.add(channel);
    this.scheduleFlush();
  }

  /** Rebuilds the snapshots of changed channels and notifies, once per frame. */
  private flush(): void {
    const channels = [...this.dirtyChannels];
    this.dirtyChannels.clear();
    for (const channel of channels) {
      channel.snapshot = {
        messages: channel.engine.messages(),
        run: channel.engine.run(),
        name: channel.engine.name() ?? null,
        resyncing: channel.resyncing,
        error: channel.error,
      };
      for (const listener of channel.listeners) listener();
    }
  }

  private runningChanged(): void {
    this.running.expireLocal(Date.now());
    const entries = this.running.entries();
    if (entries === this.runningEntries) return;
    this.runningEntries = entries;
    for (const listener of this.runningListeners) listener();
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    for (const listener of this.connectionListeners) listener();
  }

  /** A REST call whose failure is thrown with the server's message. */
  private async call<T>(path: string, method: string, body?: object): Promise<T> {
    const response = await this.request(path, method, body);
    if (!response.ok) throw new Error(await errorMessage(response));
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private request(path: string, method: string, body?: object): Promise<Response> {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    const headers: Record<string, string> = {};
    if (body) headers["content-type"] = "application/json";
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    return fetchImpl(new URL(path, this.options.baseUrl || location.origin).toString(), {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
    });
  }
}

function newClientMessageId(): string {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return `c-${random}`;
}

async function errorMessage(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: { message?: string } };
    return body.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}
