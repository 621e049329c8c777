// The package entry for Node ≥ 20: the WebAssembly module is loaded
// synchronously at import, so the classes are usable at once.

import { readFileSync } from "node:fs";
import { initSync } from "./wasm/stream_wasm.js";

initSync({ module: readFileSync(new URL("./wasm/stream_wasm_bg.wasm", import.meta.url)) });

export * from "./api.js";

/** Already loaded in Node; kept for code shared with browsers. */
export function ready(): Promise<void> {
  return Promise.resolve();
}
