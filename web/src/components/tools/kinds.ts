// Which view shows a tool call, from its name (Claude Code's and Codex's
// tools, and the common names of others), and the reading of its input and
// output that the views share.
import type { Json, ToolCall } from "agent-stream";

export type ToolKind = "shell" | "edit" | "read" | "todo" | "subagent" | "generic";

const KINDS: Record<string, ToolKind> = {
  bash: "shell",
  shell: "shell",
  exec_command: "shell",
  local_shell: "shell",
  run_command: "shell",
  edit: "edit",
  multiedit: "edit",
  write: "edit",
  file_change: "edit",
  read: "read",
  read_file: "read",
  todowrite: "todo",
  todo_list: "todo",
  update_plan: "todo",
  task: "subagent",
  agent: "subagent",
  subagent: "subagent",
};

export function toolKind(name: string): ToolKind {
  return KINDS[name.toLowerCase()] ?? "generic";
}

/** A field of an object input, when it is one. */
export function field(input: Json, key: string): Json | undefined {
  return input !== null && typeof input === "object" && !Array.isArray(input) ? input[key] : undefined;
}

export function text(value: Json | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** What a tool printed: a string, `{output}` (Codex), text blocks, or JSON. */
export function outputText(output: Json | undefined): string {
  if (output === undefined || output === null) return "";
  if (typeof output === "string") return output;
  const inner = text(field(output, "output"));
  if (inner !== undefined) return inner;
  if (Array.isArray(output) && output.every((block) => typeof text(field(block, "text")) === "string")) {
    return output.map((block) => text(field(block, "text"))).join("");
  }
  return JSON.stringify(output, null, 2);
}

/** The one-line label of a call in its card's summary. */
export function summaryLabel(call: ToolCall): string {
  const input = call.input;
  const command = field(input, "command");
  return (
    text(field(input, "description")) ??
    (Array.isArray(command) ? command.join(" ") : text(command)) ??
    text(field(input, "file_path")) ??
    text(field(input, "path")) ??
    text(field(input, "pattern")) ??
    text(field(input, "query")) ??
    ""
  );
}

/** A refusal of permission reads as an error; it is shown as denied. */
export function isDenial(error: string | undefined): boolean {
  return !!error && /requires approval|permission|denied|rejected|not allowed/i.test(error);
}
