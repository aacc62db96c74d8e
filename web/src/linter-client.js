// The page's side of the worker: starts it from a Blob URL (works from file:// and any
// static host; no separate file to fetch), matches answers to requests, and replaces
// the worker when it takes too long or dies, so a pathological input costs one
// message on the page, never a frozen tab.

import workerSource from 'flink-ha-worker-source';

/** An answer slower than this means the worker is stuck; it is replaced. */
export const WORKER_TIMEOUT_MS = 10_000;

export class LinterClient {
  constructor({ timeoutMs = WORKER_TIMEOUT_MS } = {}) {
    this.timeoutMs = timeoutMs;
    this.nextId = 1;
    this.pending = new Map();
    this.url = URL.createObjectURL(new Blob([workerSource], { type: 'text/javascript' }));
    this.start();
  }

  start() {
    this.worker = new Worker(this.url, { name: 'flink-ha-lint' });
    this.worker.onmessage = ({ data }) => this.settle(data.id, data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.restart(`the linter stopped: ${event.message || 'unknown error'}`);
    };
    this.ready = this.call('hello', {});
  }

  /** Fails every waiting request with `reason` and starts a fresh worker. */
  restart(reason) {
    this.worker.terminate();
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) {
      clearTimeout(p.timer);
      p.reject(new Error(reason));
    }
    this.start();
  }

  settle(id, data) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (data.ok) p.resolve(data.result);
    else p.reject(new Error(data.error));
  }

  call(op, args, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.restart(`linting took longer than ${this.timeoutMs / 1000} s and was stopped`),
        this.timeoutMs,
      );
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** `{json, detected, ms}`: the CLI's JSON for one input. `bytes` is transferred. */
  lint(name, bytes, format) {
    return this.call('lint', { name, bytes, format }, [bytes.buffer]);
  }

  /** `{sarif}`: the CLI's SARIF for one input. */
  sarif(name, bytes, format) {
    return this.call('sarif', { name, bytes, format }, [bytes.buffer]);
  }

  /** `{perLintMs}`: `batches` samples, each the mean time of `runs` lints in the worker. */
  bench(name, bytes, format, runs, batches) {
    return this.call('bench', { name, bytes, format, runs, batches }, [bytes.buffer]);
  }
}
