// File edits and writes as a line diff (jsdiff), and Codex's file changes,
// which name paths only.
import { diffLines } from "diff";
import type { Json, ToolCall } from "agent-stream";
import { field, text } from "./kinds";

interface Hunk {
  before: string;
  after: string;
}

/** The edits a call makes: Edit, MultiEdit's list, or Write (all new). */
function hunks(input: Json): Hunk[] {
  const edits = field(input, "edits");
  if (Array.isArray(edits)) {
    return edits.map((edit) => ({ before: text(field(edit, "old_string")) ?? "", after: text(field(edit, "new_string")) ?? "" }));
  }
  const content = text(field(input, "content"));
  if (content !== undefined) return [{ before: "", after: content }];
  return [{ before: text(field(input, "old_string")) ?? "", after: text(field(input, "new_string")) ?? "" }];
}

export function DiffView({ call }: { call: ToolCall }) {
  const changes = field(call.input, "changes");
  if (Array.isArray(changes)) {
    return (
      <ul className="file-changes">
        {changes.map((change, i) => (
          <li key={i}>
            <span className="badge">{text(field(change, "kind")) ?? "change"}</span> <code>{text(field(change, "path"))}</code>
          </li>
        ))}
      </ul>
    );
  }
  const path = text(field(call.input, "file_path")) ?? text(field(call.input, "path"));
  return (
    <div className="diff">
      {path && <code className="path">{path}</code>}
      {hunks(call.input).map((hunk, i) => (
        <pre key={i} className="diff-hunk" aria-label="Diff">
          {diffLines(hunk.before, hunk.after).flatMap((part, j) =>
            part.value
              .replace(/\n$/, "")
              .split("\n")
              .map((line, k) => (
                <span key={`${j}.${k}`} className={part.added ? "added" : part.removed ? "removed" : "same"}>
                  {part.added ? "+ " : part.removed ? "- " : "  "}
                  {line}
                  {"\n"}
                </span>
              )),
          )}
        </pre>
      ))}
    </div>
  );
}
