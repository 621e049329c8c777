#!/usr/bin/env python3
"""Streams an agent's reply into a session from outside the server.

Standard library only. It opens an external run, appends the reply in
batches of the `command` provider's events with idempotent-producer headers
(retrying a batch is safe: the server answers a repeat with 204), and ends
with a `finish` event. Usage:

    python3 examples/external_producer.py http://127.0.0.1:8080 my-session "Tell me a story"

Add `--token T` when the server runs with `--auth-token`.
"""

import argparse
import json
import time
import urllib.error
import urllib.request
import uuid


def call(method, url, body, headers, token):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Producer:
    """Appends batches to one run, retrying each until the server has it."""

    def __init__(self, base, events_path, token):
        self.url = base + events_path
        self.token = token
        self.id = "example-" + uuid.uuid4().hex[:8]
        self.epoch = 0
        self.seq = 0

    def append(self, batch):
        headers = {"Producer-Id": self.id, "Producer-Epoch": str(self.epoch), "Producer-Seq": str(self.seq)}
        for attempt in range(5):
            try:
                status, body = call("POST", self.url, batch, headers, self.token)
            except OSError:
                status, body = None, b""
            if status in (200, 204):  # stored now, or already stored by an earlier try
                self.seq += 1
                return
            if status in (400, 403, 404, 409):  # a bad batch, a newer producer, an ended run
                raise SystemExit(f"the server refused the batch ({status}): {body.decode(errors='replace')}")
            time.sleep(0.2 * 2**attempt)
        raise SystemExit("the server did not take the batch")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("session", help="the session id (created when new)")
    parser.add_argument("prompt", help="the user's message the run answers")
    parser.add_argument("--token", help="the server's --auth-token")
    args = parser.parse_args()

    opened = {"client_message_id": "m-" + uuid.uuid4().hex[:12], "content": args.prompt, "provider": "external"}
    status, body = call("POST", f"{args.base}/v1/sessions/{args.session}/runs", opened, {}, args.token)
    if status != 202:
        raise SystemExit(f"could not open a run ({status}): {body.decode(errors='replace')}")
    run = json.loads(body)
    producer = Producer(args.base, run["events"], args.token)

    producer.append([{"type": "reasoning", "content": "The user wants a reply; I will echo it word by word."}])
    producer.append([{"type": "tool_call", "id": "t1", "name": "count_words", "input": {"text": args.prompt}}])
    producer.append([{"type": "tool_result", "tool_call_id": "t1", "output": {"words": len(args.prompt.split())}}])
    for word in args.prompt.split():
        producer.append([{"type": "text", "content": word + " "}])
        time.sleep(0.05)
    producer.append([{"type": "usage", "tokens_used": len(args.prompt.split()), "model": "example-producer"}])
    producer.append([{"type": "finish", "status": "complete"}])
    print(f"run {run['run_id']} finished in session {args.session}")


if __name__ == "__main__":
    main()
