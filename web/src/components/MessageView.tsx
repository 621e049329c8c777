// One message. Memoised on object identity: the engine hands back the same
// object for every unchanged message, so a streaming frame re-renders only
// the message it touched. Its tool cards follow their own answers.
import { memo } from "react";
import type { Message } from "agent-stream";
import { Markdown } from "./Markdown";
import { ToolCard } from "./ToolCard";

interface Props {
  sessionId: string;
  message: Message;
  onRetry: (content: string, clientMessageId: string) => void;
}

function MessageViewImpl({ sessionId, message, onRetry }: Props) {
  switch (message.role) {
    case "user":
      return (
        <article className={`message user ${message.status}`} data-status={message.status} aria-label="You">
          <p className="text">{message.content}</p>
          {message.status === "pending" && <span className="badge">Sending…</span>}
          {message.status === "failed" && (
            <div className="failed" role="alert">
              <span>Not sent{message.error ? `: ${message.error}` : ""}</span>
              <button type="button" onClick={() => onRetry(message.content, message.client_message_id ?? message.id)}>
                Retry
              </button>
            </div>
          )}
        </article>
      );
    case "system":
      return (
        <article className="message system" role="alert" data-status={message.status}>
          {message.content || message.error}
        </article>
      );
    case "reasoning":
      // Open while it streams, folded once done; hidden thinking says so.
      return (
        <details className="message reasoning" data-status={message.status} open={message.status === "streaming"}>
          <summary>Thinking{message.reasoning_tokens ? ` · ${figures.format(message.reasoning_tokens)} tokens` : ""}</summary>
          {message.content ? <Markdown text={message.content} /> : <p className="hidden-thinking">The provider did not show this thinking.</p>}
        </details>
      );
    case "tool":
      // A result whose call is not in the list (e.g. deleted): shown on its own.
      return <ToolCard sessionId={sessionId} call={null} result={message} />;
    default:
      return (
        <article className={`message assistant ${message.status}`} data-status={message.status} aria-label="Agent" aria-busy={message.status === "streaming"}>
          {message.content && <Markdown text={message.content} />}
          {message.tool_calls.map((call) => (
            <ToolCard key={call.id} sessionId={sessionId} call={call} />
          ))}
          <Notice message={message} />
          <Footer message={message} />
        </article>
      );
  }
}

/** One formatter for every figure: `toLocaleString` builds one per call. */
const figures = new Intl.NumberFormat();

function Footer({ message }: { message: Message }) {
  const parts: string[] = [];
  if (message.model) parts.push(message.model);
  if (message.tokens_used !== undefined) parts.push(`${figures.format(message.tokens_used)} tokens`);
  if (message.ctx_used !== undefined && message.ctx_max) {
    parts.push(`context ${figures.format(message.ctx_used)} / ${figures.format(message.ctx_max)}`);
  }
  if (message.cache_tokens) parts.push(`${figures.format(message.cache_tokens)} cached`);
  if (message.reasoning_tokens) parts.push(`${figures.format(message.reasoning_tokens)} reasoning`);
  if (message.cost_usd !== undefined) parts.push(formatCost(message.cost_usd));
  return (
    <footer className="usage">
      {message.status === "streaming" && <span className="caret" aria-label="streaming" />}
      {message.status === "cancelled" && <span className="badge warn">Cancelled</span>}
      {message.status === "failed" && <span className="badge bad">Failed{message.error ? `: ${message.error}` : ""}</span>}
      {parts.length > 0 && <span>{parts.join(" · ")}</span>}
    </footer>
  );
}

/** US dollars, with the precision an agent's cost needs. */
export function formatCost(usd: number): string {
  return `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`;
}

/** The server's notice of a provider gone silent (cleared when it speaks again). */
function Notice({ message }: { message: Message }) {
  const notice = message.metadata && typeof message.metadata === "object" && !Array.isArray(message.metadata) ? message.metadata.notice : undefined;
  if (typeof notice !== "string" || message.status !== "streaming") return null;
  return (
    <p className="notice stall" role="status">
      {notice}
    </p>
  );
}

export const MessageView = memo(MessageViewImpl);
