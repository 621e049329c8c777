// Assistant text as markdown (GitHub flavour). Raw HTML in the text is shown
// as text, never injected: react-markdown does not render it. Fenced code
// with a language is highlighted by highlight.js, fetched on the first such
// block, so a page without code never loads it.
import { memo, useEffect, useState, type ReactNode } from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";

const plugins = [remarkGfm];

type Highlighter = typeof import("highlight.js/lib/common").default;
let highlighter: Promise<Highlighter> | null = null;

function loadHighlighter(): Promise<Highlighter> {
  highlighter ??= import("highlight.js/lib/common").then((module) => module.default);
  return highlighter;
}

/** highlight.js's markup for `source`, once the library has loaded; null before, or for an unknown language. */
function useHighlighted(source: string, language: string | undefined): string | null {
  const [html, setHtml] = useState<string | null>(null);
  useEffect(() => {
    if (!language) return;
    let current = true;
    void loadHighlighter().then((hljs) => {
      // highlight.js escapes the source: its markup holds only its own spans.
      if (current && hljs.getLanguage(language)) setHtml(hljs.highlight(source, { language }).value);
    });
    return () => {
      current = false;
    };
  }, [source, language]);
  return html;
}

function Code({ className, children }: { className?: string; children?: ReactNode }) {
  const language = /language-([\w+#-]+)/.exec(className ?? "")?.[1];
  const source = String(children ?? "").replace(/\n$/, "");
  const html = useHighlighted(source, language);
  if (html === null) return <code className={className}>{children}</code>;
  return <code className={`${className ?? ""} hljs`} dangerouslySetInnerHTML={{ __html: html }} />;
}

const components: Components = { code: Code };

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown remarkPlugins={plugins} components={components}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
