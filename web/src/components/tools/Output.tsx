// A tool's printed output in a scrollable monospace box. Very long output
// keeps its tail (where errors and results are) with a "Show all".
import { useState } from "react";

/** Lines shown before "Show all". */
const TAIL_LINES = 200;

export function Output({ text, label = "Output" }: { text: string; label?: string }) {
  const [all, setAll] = useState(false);
  if (!text) return null;
  const lines = text.replace(/\n$/, "").split("\n");
  const hidden = all ? 0 : Math.max(0, lines.length - TAIL_LINES);
  return (
    <section className="tool-output" aria-label={label}>
      {hidden > 0 && (
        <button type="button" className="link" onClick={() => setAll(true)}>
          Show all {lines.length} lines ({hidden} earlier hidden)
        </button>
      )}
      <pre className="terminal">{hidden > 0 ? lines.slice(hidden).join("\n") : lines.join("\n")}</pre>
    </section>
  );
}
