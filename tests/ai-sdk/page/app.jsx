// A minimal useChat app, as AI SDK users write one, pointed at stream-server:
// the chat id is the URL's hash, and a reload resumes the reply in progress.
import { useState } from "react";
import { createRoot } from "react-dom/client";
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";

const chatId = decodeURIComponent(location.hash.slice(1)) || "page";
const transport = new DefaultChatTransport({ api: "/v1/ai-sdk/chat" });

function App() {
  const { messages, sendMessage, status, stop } = useChat({ id: chatId, transport, resume: true });
  const [text, setText] = useState("");
  window.chat = { messages, status };
  return (
    <main data-status={status}>
      {messages.map((message) => (
        <article key={message.id} data-role={message.role}>
          {message.parts.map((part, index) =>
            part.type === "text" ? (
              <p key={index} className="text">
                {part.text}
              </p>
            ) : part.type === "dynamic-tool" ? (
              <pre key={index} className="tool" data-state={part.state}>
                {part.toolName}
              </pre>
            ) : null,
          )}
        </article>
      ))}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          sendMessage({ text });
          setText("");
        }}
      >
        <input id="prompt" value={text} onChange={(event) => setText(event.target.value)} />
        <button type="submit">Send</button>
        <button type="button" onClick={() => { stop(); fetch(`/v1/ai-sdk/chat/${chatId}/stream`, { method: "DELETE" }); }}>
          Stop
        </button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
