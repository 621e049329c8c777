// The browser transport: one WebSocket for every session a page follows,
// resume from each session's cursor on reconnect, heartbeats, backoff, REST
// sends with optimistic messages, and the listeners of each session, of its
// id list and of each message.
//
// It is a small TypeScript module rather than web-sys code: it is I/O glue
// (sockets, timers, fetch) that the platform's own APIs express directly, it
// keeps the .wasm small, and every decision it acts on (how a socket message
// splits into sessions, what to subscribe with, when to resync, how to merge
// echoes, what changed) is made by the Rust engine. Socket messages go to the
// engine as they came: no JSON is parsed or built here on the way in.

import { ClientEngine } from "./wasm/stream_wasm.js";
import type { ClientResult, Message, RunInfo, RunningEntry } from "./wasm/stream_wasm.js";
import { offsetAfter, readEvents } from "./sse.js";

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
  /** Live: over the WebSocket, or over HTTP (SSE) while the WebSocket cannot connect. */
  | { kind: "open"; via: "websocket" | "sse" }
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

/** The answer to `POST /v1/sessions`. */
export interface CreatedSession {
  session_id: string;
  name: string;
  /** The provider its sends use, when one was named. */
  provider: string | null;
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

/** A session's state apart from its messages (the same object while unchanged). */
export interface SessionInfo {
  run: RunInfo | null;
  name: string | null;
  /** The model of the latest message that names one. */
  model: string | null;
  /** What the session has cost in US dollars, when its provider said. */
  cost_usd: number | null;
  /** True while the engine waits for a resubscribe to repair a gap. */
  resyncing: boolean;
  /** What was wrong with the last bad frame, until frames apply again. */
  error: string | null;
}

/** What a session's subscribers see. */
export interface SessionSnapshot extends SessionInfo {
  messages: Message[];
}

type Listener = () => void;

interface Channel {
  /** Watchers, and sends in flight: the channel lives while there are any. */
  users: number;
  /** Told of any change. */
  listeners: Set<Listener>;
  /** Told when the id list changes. */
  idListeners: Set<Listener>;
  /** Told when the top-level id list changes. */
  topListeners: Set<Listener>;
  /** Told when that message changes. */
  messageListeners: Map<string, Set<Listener>>;
  /** Told when that tool call's answer or inner messages change. */
  callListeners: Map<string, Set<Listener>>;
  /** The inner message ids of each call read since it last changed. */
  childIds: Map<string, string[]>;
  info: SessionInfo;
  /** Built when read, after a change. */
  snapshot: SessionSnapshot | null;
}

const NO_INFO: SessionInfo = Object.freeze({ run: null, name: null, model: null, cost_usd: null, resyncing: false, error: null });
const NO_IDS: string[] = Object.freeze([]) as unknown as string[];
const NO_SNAPSHOT: SessionSnapshot = Object.freeze({ ...NO_INFO, messages: NO_IDS as unknown as Message[] });

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
  private readonly engine = new ClientEngine();
  private readonly options: Required<Omit<StreamClientOptions, "token" | "WebSocket" | "fetch">> & StreamClientOptions;
  private readonly channels = new Map<string, Channel>();
  /** Sessions to refresh at the next flush. */
  private readonly dirtyChannels = new Set<string>();
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
  private stallTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** Sessions followed over HTTP (SSE) while the WebSocket cannot connect. */
  private readonly httpFollowers = new Map<string, AbortController>();
  private fallingBack = false;
  private readonly scheduleFlush = frameScheduler(() => this.flush());

  constructor(options: StreamClientOptions = {}) {
    this.options = { baseUrl: "", backoffMs: 1000, maxBackoffMs: 30000, runningPollMs: 5000, ...options };
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
    return this.engine.runningSessions();
  }

  /** Follows changes of the running map. */
  onRunning(listener: Listener): () => void {
    this.runningListeners.add(listener);
    return () => this.runningListeners.delete(listener);
  }

  /** Follows every change of a session: subscribes on first use. Returns the unsubscribe. */
  watch(sessionId: string, listener: Listener): () => void {
    return this.follow(sessionId, (channel) => channel.listeners, listener);
  }

  /** Follows a session's id list: told only when a message is added, removed or moved. */
  watchIds(sessionId: string, listener: Listener): () => void {
    return this.follow(sessionId, (channel) => channel.idListeners, listener);
  }

  /** Follows a session's top-level ids (those not shown inside a tool call's card). */
  watchTop(sessionId: string, listener: Listener): () => void {
    return this.follow(sessionId, (channel) => channel.topListeners, listener);
  }

  /** Follows one message: told only when it changes. */
  watchMessage(sessionId: string, messageId: string, listener: Listener): () => void {
    return this.followKey(sessionId, (channel) => channel.messageListeners, messageId, listener);
  }

  /** Follows one tool call's answer and inner messages: told when either changes. */
  watchCall(sessionId: string, callId: string, listener: Listener): () => void {
    return this.followKey(sessionId, (channel) => channel.callListeners, callId, listener);
  }

  /** The session's top-level message ids, in order (same array while they are the same). */
  topLevelIds(sessionId: string): string[] {
    return this.channels.has(sessionId) ? this.engine.topLevelIds(sessionId) : NO_IDS;
  }

  /** The id of the tool message answering a call, if one has. */
  toolAnswerId(sessionId: string, callId: string): string | undefined {
    return this.channels.has(sessionId) ? this.engine.toolAnswerId(sessionId, callId) : undefined;
  }

  /** The ids of the messages written inside a call (a subagent's), in order (same array while unchanged). */
  toolChildIds(sessionId: string, callId: string): string[] {
    const channel = this.channels.get(sessionId);
    if (!channel) return NO_IDS;
    let ids = channel.childIds.get(callId);
    if (!ids) channel.childIds.set(callId, (ids = this.engine.toolChildIds(sessionId, callId)));
    return ids;
  }

  /** The session's state with its messages (same object while unchanged). */
  snapshot(sessionId: string): SessionSnapshot {
    const channel = this.channels.get(sessionId);
    if (!channel) return NO_SNAPSHOT;
    channel.snapshot ??= { ...channel.info, messages: this.engine.messages(sessionId) };
    return channel.snapshot;
  }

  /** The session's state apart from its messages (same object while unchanged). */
  session(sessionId: string): SessionInfo {
    return this.channels.get(sessionId)?.info ?? NO_INFO;
  }

  /** The session's message ids, in order (same array until one comes, goes or moves). */
  messageIds(sessionId: string): string[] {
    return this.channels.has(sessionId) ? this.engine.messageIds(sessionId) : NO_IDS;
  }

  /** One message (same object until it changes), or undefined. */
  message(sessionId: string, messageId: string): Message | undefined {
    return this.channels.has(sessionId) ? this.engine.message(sessionId, messageId) : undefined;
  }

  /** The session's state hash, as the server computes it (16 hex digits). */
  stateHash(sessionId: string): string | undefined {
    return this.engine.stateHash(sessionId);
  }

  /** Sends a user message: shown at once as pending, POSTed, marked failed
   *  if the POST fails; calling again with the same id retries it. A session
   *  nobody watches is followed for as long as the POST takes. */
  async send(sessionId: string, content: string, clientMessageId: string = newClientMessageId()): Promise<string> {
    const release = this.hold(sessionId);
    try {
      const outcome = this.engine.sendLocal(sessionId, content, clientMessageId, Date.now());
      this.sent(sessionId);
      if (outcome === "duplicate") return clientMessageId;
      try {
        const response = await this.request(`/v1/sessions/${encodeURIComponent(sessionId)}/messages`, "POST", {
          client_message_id: clientMessageId,
          content,
        });
        if (!response.ok) throw new Error(await errorMessage(response));
      } catch (error) {
        this.engine.markSendFailed(sessionId, clientMessageId, error instanceof Error ? error.message : String(error));
        this.sent(sessionId);
      }
      return clientMessageId;
    } finally {
      release();
    }
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
  createSession(name?: string, provider?: string): Promise<CreatedSession> {
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
    this.stopHttpFallback();
    for (const timer of [this.reconnectTimer, this.heartbeatTimer, this.pollTimer, this.stallTimer]) {
      if (timer) clearTimeout(timer);
    }
    this.socket?.close(1000, "client closed");
    this.setState({ kind: "closed" });
  }

  /** Adds `listener` to a set of the session's channel, for as long as it follows. */
  private follow(sessionId: string, set: (channel: Channel) => Set<Listener>, listener: Listener): () => void {
    const release = this.hold(sessionId);
    const channel = this.channels.get(sessionId)!;
    const listeners = set(channel);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      release();
    };
  }

  /** Adds `listener` to the set under `key` of one of the channel's maps, for as long as it follows. */
  private followKey(
    sessionId: string,
    map: (channel: Channel) => Map<string, Set<Listener>>,
    key: string,
    listener: Listener,
  ): () => void {
    const unfollow = this.follow(
      sessionId,
      (channel) => {
        const sets = map(channel);
        let listeners = sets.get(key);
        if (!listeners) sets.set(key, (listeners = new Set()));
        return listeners;
      },
      listener,
    );
    return () => {
      unfollow();
      const channel = this.channels.get(sessionId);
      if (channel && map(channel).get(key)?.size === 0) map(channel).delete(key);
    };
  }

  /** Keeps a session open (subscribing on first use) until the returned release. */
  private hold(sessionId: string): () => void {
    let channel = this.channels.get(sessionId);
    if (!channel) {
      this.engine.open(sessionId);
      channel = {
        users: 0,
        listeners: new Set(),
        idListeners: new Set(),
        topListeners: new Set(),
        messageListeners: new Map(),
        callListeners: new Map(),
        childIds: new Map(),
        info: NO_INFO,
        snapshot: null,
      };
      this.channels.set(sessionId, channel);
      this.subscribe(sessionId);
      if (this.fallingBack) this.followOverHttp(sessionId);
    }
    const held = channel;
    held.users += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users > 0 || this.channels.get(sessionId) !== held) return;
      this.sendFrame({ type: "unsubscribe", channel: sessionId });
      this.httpFollowers.get(sessionId)?.abort();
      this.httpFollowers.delete(sessionId);
      this.engine.close(sessionId);
      this.channels.delete(sessionId);
      this.dirtyChannels.delete(sessionId);
    };
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
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      this.stopHttpFallback();
      this.setState({ kind: "open", via: "websocket" });
      socket.send(JSON.stringify({ type: "watch_running" }));
      for (const sessionId of this.channels.keys()) this.subscribe(sessionId);
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
      // A socket that never opened may be blocked (a proxy, a firewall): follow over HTTP meanwhile.
      if (!opened) this.startHttpFallback();
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.attempt += 1;
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (this.attempt - 1));
    // Jitter spreads reconnects of many clients after a server restart.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    if (!(this.fallingBack && this.state.kind === "open")) {
      this.setState({ kind: "reconnecting", attempt: this.attempt, retryAt: Date.now() + delay });
    }
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.startPolling();
  }

  private startHttpFallback(): void {
    if (this.fallingBack || this.closed) return;
    this.fallingBack = true;
    for (const sessionId of this.channels.keys()) this.followOverHttp(sessionId);
  }

  private stopHttpFallback(): void {
    this.fallingBack = false;
    for (const follower of this.httpFollowers.values()) follower.abort();
    this.httpFollowers.clear();
  }

  /** Follows a session over its Durable Streams read: a snapshot first (the
   *  engine may be on another epoch), then SSE from the engine's cursor, again
   *  after each response ends, until the WebSocket opens. */
  private followOverHttp(sessionId: string): void {
    if (this.httpFollowers.has(sessionId)) return;
    const follower = new AbortController();
    this.httpFollowers.set(sessionId, follower);
    const { signal } = follower;
    const path = `/v1/sessions/${encodeURIComponent(sessionId)}`;
    void (async () => {
      let needSnapshot = true;
      let failures = 0;
      while (!signal.aborted) {
        try {
          if (needSnapshot) {
            const snapshot = await this.request(path, "GET", undefined, signal);
            if (!snapshot.ok) throw new Error(`HTTP ${snapshot.status}`);
            this.receive(await snapshot.text());
            needSnapshot = false;
          }
          const offset = offsetAfter(this.engine.cursorSeq(sessionId) ?? 0);
          const response = await this.request(`${path}/stream?offset=${offset}&live=sse`, "GET", undefined, signal);
          // 410: retention dropped what follows the cursor; start again from a snapshot.
          if (response.status === 410) needSnapshot = true;
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          failures = 0;
          if (this.socket?.readyState !== OPEN) this.setState({ kind: "open", via: "sse" });
          await readEvents(response.body, (event) => event.event === "data" && this.receive(event.data), signal);
        } catch {
          if (signal.aborted) return;
          failures += 1;
          const delay = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (failures - 1));
          await new Promise((done) => setTimeout(done, delay));
        }
      }
    })();
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
      // Over SSE nothing pushes the running list: keep polling it.
      if (this.state.kind === "open" && this.state.via === "websocket") {
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
      if (response.ok && this.engine.syncRunning(await response.text(), Date.now())) this.runningChanged();
    } catch {
      // The socket path and the next poll cover it.
    }
  }

  /** Subscribes from the session's cursor (or for a snapshot, when the engine says so). */
  private subscribe(sessionId: string): void {
    const frame = this.engine.subscribeFrame(sessionId);
    if (frame && this.socket?.readyState === OPEN) this.socket.send(frame);
  }

  private sendFrame(frame: object): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  /** Hands one socket message to the engine, as it came. */
  private receive(text: string): void {
    this.act(this.engine.ingest(text, Date.now()));
  }

  /** Does what the engine said. */
  private act(result: ClientResult): void {
    if (result.heartbeat_ms) this.heartbeatMs = result.heartbeat_ms;
    for (const sessionId of result.resync) this.subscribe(sessionId);
    for (const sessionId of result.touched) this.changed(sessionId);
    if (result.running_changed) this.runningChanged();
    this.armStallTimer();
  }

  /** Lets the engine give up on a gap that does not fill. */
  private armStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    const deadline = this.engine.pollTimeout();
    if (deadline === undefined) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      this.act(this.engine.handleTimeout(Date.now()));
    }, Math.max(0, deadline - Date.now()));
  }

  /** After a local send or its failure: the session changed, and the running map may have. */
  private sent(sessionId: string): void {
    if (this.engine.takeRunningChanged()) this.runningChanged();
    this.changed(sessionId);
  }

  /** Marks a session for the next flush. */
  private changed(sessionId: string): void {
    if (!this.channels.has(sessionId)) return;
    this.dirtyChannels.add(sessionId);
    this.scheduleFlush();
  }

  /** Tells each changed session's listeners, once per frame: the session's,
   *  the id list's when it changed, and those of the messages that changed. */
  private flush(): void {
    const sessions = [...this.dirtyChannels];
    this.dirtyChannels.clear();
    for (const sessionId of sessions) {
      const channel = this.channels.get(sessionId);
      if (!channel) continue;
      const change = this.engine.refresh(sessionId);
      const info = this.readInfo(sessionId, channel.info);
      if (!change && info === channel.info) continue;
      channel.info = info;
      channel.snapshot = null;
      if (change?.ids) for (const listener of channel.idListeners) listener();
      if (change?.top) for (const listener of channel.topListeners) listener();
      if (change?.all) {
        channel.childIds.clear();
        for (const sets of [channel.messageListeners, channel.callListeners]) {
          for (const listeners of sets.values()) for (const listener of listeners) listener();
        }
      } else if (change) {
        for (const messageId of change.messages) {
          for (const listener of channel.messageListeners.get(messageId) ?? []) listener();
        }
        for (const callId of change.calls) {
          channel.childIds.delete(callId);
          for (const listener of channel.callListeners.get(callId) ?? []) listener();
        }
      }
      for (const listener of channel.listeners) listener();
    }
  }

  /** The session's info; `previous` when nothing in it changed. */
  private readInfo(sessionId: string, previous: SessionInfo): SessionInfo {
    const info: SessionInfo = {
      run: this.engine.run(sessionId),
      name: this.engine.name(sessionId) ?? null,
      model: this.engine.model(sessionId) ?? null,
      cost_usd: this.engine.costUsd(sessionId) ?? null,
      resyncing: this.engine.resyncing(sessionId),
      error: this.engine.error(sessionId) ?? null,
    };
    const same = (Object.keys(info) as (keyof SessionInfo)[]).every((key) =>
      key === "run" ? info.run?.run_id === previous.run?.run_id : info[key] === previous[key],
    );
    return same ? previous : info;
  }

  private runningChanged(): void {
    this.engine.expireLocal(Date.now());
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

  private request(path: string, method: string, body?: object, signal?: AbortSignal): Promise<Response> {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    const headers: Record<string, string> = {};
    if (body) headers["content-type"] = "application/json";
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    return fetchImpl(new URL(path, this.options.baseUrl || location.origin).toString(), {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
      signal,
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
