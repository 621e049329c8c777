// The package entry for browsers and bundlers (Vite): the engine classes,
// `ready()` to load the WebAssembly once, and the transport.

import init from "./wasm/stream_wasm.js";

export * from "./api.js";

let loading: Promise<unknown> | null = null;

/** Loads the WebAssembly module; call (and await) once before using the classes. */
export function ready(): Promise<void> {
  loading ??= init();
  return loading.then(() => undefined);
}
