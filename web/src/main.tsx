// Loads the engine's WebAssembly, opens one StreamClient for the page, and
// renders the app under it.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { StreamClient, ready } from "agent-stream";
import { StreamProvider } from "agent-stream/react";
import { App } from "./App";
import "./styles.css";

async function main(): Promise<void> {
  await ready();
  const client = new StreamClient();
  // End-to-end tests read the client's state from here.
  Object.assign(window, { streamClient: client });
  createRoot(document.getElementById("root")!).render(
    <StrictMode>
      <StreamProvider client={client}>
        <App />
      </StreamProvider>
    </StrictMode>,
  );
}

void main();
