// A todo list as a checklist: Claude Code's TodoWrite (`todos` with a
// status) and Codex's `todo_list` (`items` with `completed`, final in the result).
import type { Json, Message, ToolCall } from "agent-stream";
import { field, text } from "./kinds";

interface Item {
  label: string;
  status: "pending" | "in_progress" | "completed";
}

function items(value: Json | undefined): Item[] {
  const list = Array.isArray(value) ? value : (field(value ?? null, "todos") ?? field(value ?? null, "items"));
  if (!Array.isArray(list)) return [];
  return list.map((item) => {
    const status = text(field(item, "status"));
    const completed = field(item, "completed") === true || status === "completed";
    return {
      label: text(field(item, "content")) ?? text(field(item, "text")) ?? text(field(item, "step")) ?? "",
      status: completed ? "completed" : status === "in_progress" ? "in_progress" : "pending",
    };
  });
}

export function TodoView({ call, result }: { call: ToolCall; result: Message | undefined }) {
  const final = items(result?.tool_result?.output);
  const list = final.length ? final : items(call.input);
  return (
    <ul className="todo" aria-label="Todo list">
      {list.map((item, i) => (
        <li key={i} data-status={item.status}>
          <input type="checkbox" checked={item.status === "completed"} readOnly aria-label={item.label} />
          <span>{item.label}</span>
          {item.status === "in_progress" && <span className="badge">in progress</span>}
        </li>
      ))}
    </ul>
  );
}
