// The prompt box: Enter sends, Shift+Enter breaks the line; Stop aborts the
// run. The box clears on send, so a second click has nothing to send twice.
import { useRef, useState } from "react";
import type { FormEvent, KeyboardEvent } from "react";

export function Composer(props: { busy: boolean; running: boolean; onSend: (content: string) => void; onAbort: () => void }) {
  const [draft, setDraft] = useState("");
  const box = useRef<HTMLTextAreaElement>(null);
  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const field = box.current;
    // The DOM value, not `draft`: a second click of a double-click may run a
    // handler from before the re-render, and must find the box empty.
    const content = field?.value.trim() ?? "";
    if (!field || !content || props.busy) return;
    field.value = "";
    setDraft("");
    props.onSend(content);
    field.focus();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  };
  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor="prompt" className="visually-hidden">
        Message
      </label>
      <textarea
        id="prompt"
        ref={box}
        autoFocus
        rows={2}
        placeholder="Ask the agent… (Enter to send, Shift+Enter for a new line)"
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={onKeyDown}
      />
      {props.running ? (
        <button type="button" className="danger" onClick={props.onAbort}>
          Stop
        </button>
      ) : (
        <button type="submit" className="primary" disabled={props.busy || !draft.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
