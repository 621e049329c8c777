// The providers a new session may use (`GET /v1/providers`), fetched once.
// `external` runs are driven by a process outside, over HTTP: nothing a
// person in this app can start, so it is not offered.
import { useEffect, useState } from "react";
import type { ProviderInfo } from "agent-stream";
import { useStreamClient } from "agent-stream/react";

export function useProviders(): ProviderInfo[] {
  const client = useStreamClient();
  const [providers, setProviders] = useState<ProviderInfo[]>([]);
  useEffect(() => {
    let current = true;
    client.listProviders().then(
      (list) => current && setProviders(list.filter((entry) => entry.kind !== "external")),
      () => current && setProviders([]),
    );
    return () => {
      current = false;
    };
  }, [client]);
  return providers;
}
